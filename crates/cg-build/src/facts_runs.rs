//! Rows of a member-side input table split by their member's keyed shard on local disk, so
//! that a distributed build's client can fold the member facts one shard at a time instead of
//! holding every member ([`crate::facts::load_facts_by_shard`]).
//!
//! A [`Partitioner`] takes a table's batches in file order, adds each row's number in the file
//! (for errors that name the row), and every [`CHUNK_ROWS`] rows writes a *chunk*: one Arrow
//! IPC file holding the chunk's rows ordered by shard (stably, so file order holds within a
//! shard), one record batch per shard that has rows. [`TableRuns::batches`] reads one shard's
//! batch of every chunk, in file order. Memory is one chunk while partitioning and one shard's
//! rows while folding; the files are personal data (0600, in the caller's private directory)
//! and go with it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
use arrow_ipc::reader::FileReader;
use arrow_ipc::writer::FileWriter;

use crate::BuildError;
use crate::layout::keyed_shard;

/// Rows a chunk holds at most (a chunk is buffered whole before it is written).
pub(crate) const CHUNK_ROWS: usize = 1 << 18;

/// The name of the column holding each row's number in its file (from 1, as errors give it).
pub(crate) const ROW_COLUMN: &str = "_row";

/// How rows are assigned to shards: the build's shard key and count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sharding<'k> {
    /// The shard key.
    pub key: &'k [u8],
    /// How many shards.
    pub shards: u32,
}

/// One chunk file: the shard of each of its batches, ascending.
#[derive(Debug)]
struct Chunk {
    path: PathBuf,
    shards: Vec<u32>,
}

/// A table's rows split by shard: its chunk files, in file order.
#[derive(Debug)]
pub(crate) struct TableRuns {
    chunks: Vec<Chunk>,
    rows: u64,
}

/// Splits one table's batches by shard into chunk files in `dir`.
pub(crate) struct Partitioner<'a> {
    dir: &'a Path,
    table: &'static str,
    sharding: Sharding<'a>,
    /// The column holding the member id.
    member_column: usize,
    buffered: Vec<RecordBatch>,
    buffered_rows: usize,
    out: TableRuns,
    /// The last member id seen and its shard (a member's rows often follow each other).
    last: Option<(i64, u32)>,
}

impl<'a> Partitioner<'a> {
    /// A partitioner for `table` (its files are named after it) whose member id is column
    /// `member_column` (an `Int64` without nulls, as every member-side contract has it).
    pub(crate) fn new(
        dir: &'a Path,
        table: &'static str,
        member_column: usize,
        sharding: Sharding<'a>,
    ) -> Partitioner<'a> {
        Partitioner {
            dir,
            table,
            sharding,
            member_column,
            buffered: Vec::new(),
            buffered_rows: 0,
            out: TableRuns {
                chunks: Vec::new(),
                rows: 0,
            },
            last: None,
        }
    }

    /// Takes a batch whose first row is row `first` of the file.
    pub(crate) fn push(&mut self, batch: &RecordBatch, first: u64) -> Result<(), BuildError> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let numbers: UInt64Array = (first..first + rows as u64).collect();
        let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(ROW_COLUMN, DataType::UInt64, false)));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(numbers));
        let numbered = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        self.buffered.push(numbered);
        self.buffered_rows += rows;
        if self.buffered_rows >= CHUNK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered rows as a chunk.
    fn flush(&mut self) -> Result<(), BuildError> {
        let Some(first) = self.buffered.first() else {
            return Ok(());
        };
        let schema = first.schema();
        let batch = arrow::compute::concat_batches(&schema, &self.buffered)?;
        self.buffered.clear();
        self.buffered_rows = 0;
        let ids = batch
            .column(self.member_column)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| {
                BuildError::Engine(format!("{}: the member id is not an Int64", self.table))
            })?;
        if ids.null_count() > 0 {
            return Err(BuildError::Engine(format!(
                "{}: a member id is null after the contract's checks",
                self.table
            )));
        }
        let Sharding { key, shards } = self.sharding;
        let mut of_row = Vec::with_capacity(ids.len());
        let mut counts = vec![0usize; shards as usize];
        for &id in ids.values() {
            let shard = match self.last {
                Some((last, shard)) if last == id => shard,
                _ => {
                    let shard = keyed_shard(key, id, shards);
                    self.last = Some((id, shard));
                    shard
                }
            };
            counts[shard as usize] += 1;
            of_row.push(shard);
        }
        // A stable counting sort: each shard's rows keep their order in the file.
        let mut starts = Vec::with_capacity(counts.len());
        let mut at = 0usize;
        for c in &counts {
            starts.push(at);
            at += c;
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; of_row.len()];
        for (row, shard) in of_row.iter().enumerate() {
            let slot = &mut next[*shard as usize];
            order[*slot] = u32::try_from(row)
                .map_err(|_| BuildError::Engine("a chunk of more than 2³² rows".into()))?;
            *slot += 1;
        }
        let sorted = arrow::compute::take_record_batch(&batch, &UInt32Array::from(order))?;
        drop(batch);

        let path = self
            .dir
            .join(format!("{}-{:05}.arrow", self.table, self.out.chunks.len()));
        let file = create_private(&path)?;
        let mut writer =
            FileWriter::try_new(std::io::BufWriter::with_capacity(1 << 20, file), &schema)?;
        let mut chunk_shards = Vec::new();
        for (shard, (start, count)) in (0u32..).zip(starts.iter().zip(&counts)) {
            if *count > 0 {
                writer.write(&sorted.slice(*start, *count))?;
                chunk_shards.push(shard);
            }
        }
        writer.finish()?;
        self.out.rows += sorted.num_rows() as u64;
        self.out.chunks.push(Chunk {
            path,
            shards: chunk_shards,
        });
        Ok(())
    }

    /// Writes what is still buffered and returns the table's runs.
    pub(crate) fn finish(mut self) -> Result<TableRuns, BuildError> {
        self.flush()?;
        Ok(self.out)
    }
}

impl TableRuns {
    /// The rows of `shard`, in file order: one batch per chunk that has any, each with the
    /// rows' numbers in the file as its last column ([`ROW_COLUMN`]).
    pub(crate) fn batches(&self, shard: u32) -> Result<Vec<RecordBatch>, BuildError> {
        let mut out = Vec::new();
        for chunk in &self.chunks {
            let Ok(index) = chunk.shards.binary_search(&shard) else {
                continue;
            };
            let file = File::open(&chunk.path).map_err(|e| BuildError::io(&chunk.path, e))?;
            let mut reader = FileReader::try_new(std::io::BufReader::new(file), None)?;
            reader.set_index(index)?;
            let batch = reader.next().transpose()?.ok_or_else(|| {
                BuildError::Engine(format!(
                    "`{}` lost its batch for shard {shard}",
                    chunk.path.display()
                ))
            })?;
            out.push(batch);
        }
        Ok(out)
    }

    /// Rows taken.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }
}

/// The file numbers of a batch [`TableRuns::batches`] returned.
pub(crate) fn row_numbers(batch: &RecordBatch) -> Result<&[u64], BuildError> {
    batch
        .schema()
        .index_of(ROW_COLUMN)
        .ok()
        .and_then(|i| batch.column(i).as_primitive_opt::<UInt64Type>())
        .map(|a| a.values().as_ref())
        .ok_or_else(|| BuildError::Engine("a partitioned batch without row numbers".into()))
}

/// A new file only its owner may read (member facts are personal data).
fn create_private(path: &Path) -> Result<File, BuildError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BuildError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn batch(ids: &[i64]) -> RecordBatch {
        let names: StringArray = ids.iter().map(|i| Some(format!("n{i}"))).collect();
        RecordBatch::try_from_iter([
            ("member_id", Arc::new(Int64Array::from(ids.to_vec())) as _),
            ("name", Arc::new(names) as _),
        ])
        .unwrap()
    }

    /// Every row lands in its member's shard, once, in file order, with its row number; past
    /// a chunk's size the rows go to several chunks and still come back in order.
    #[test]
    fn rows_come_back_by_shard_in_file_order_with_their_numbers() {
        let dir = cg_test_support::tempdir();
        let key = b"key".to_vec();
        let sharding = Sharding {
            key: &key,
            shards: 7,
        };
        let mut p = Partitioner::new(dir.path(), "t", 0, sharding);
        // Ids repeat (a member's several rows), across batches and chunks.
        let ids: Vec<i64> = (0..(CHUNK_ROWS as i64 + 40_000))
            .map(|i| (i * 7919) % 50_000)
            .collect();
        let mut first = 1u64;
        for part in ids.chunks(65_536) {
            p.push(&batch(part), first).unwrap();
            first += part.len() as u64;
        }
        p.push(&batch(&[]), first).unwrap();
        let runs = p.finish().unwrap();
        assert_eq!(runs.rows(), ids.len() as u64);
        assert_eq!(runs.chunks.len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&runs.chunks[0].path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut seen = 0usize;
        for shard in 0..7 {
            let mut numbers = Vec::new();
            for b in runs.batches(shard).unwrap() {
                let got = b.column(0).as_primitive::<Int64Type>();
                let names = b.column(1).as_string::<i32>();
                for (r, n) in row_numbers(&b).unwrap().iter().enumerate() {
                    let id = got.value(r);
                    assert_eq!(id, ids[(*n - 1) as usize], "row {n}");
                    assert_eq!(names.value(r), format!("n{id}"));
                    assert_eq!(keyed_shard(&key, id, 7), shard);
                    numbers.push(*n);
                }
            }
            assert!(numbers.is_sorted(), "file order within shard {shard}");
            seen += numbers.len();
        }
        assert_eq!(seen, ids.len());
        assert!(runs.batches(7).unwrap().is_empty());
    }

    #[test]
    fn an_empty_table_has_no_chunks() {
        let dir = cg_test_support::tempdir();
        let p = Partitioner::new(
            dir.path(),
            "t",
            0,
            Sharding {
                key: b"k",
                shards: 3,
            },
        );
        let runs = p.finish().unwrap();
        assert_eq!(runs.rows(), 0);
        assert!(runs.batches(0).unwrap().is_empty());
    }
}
