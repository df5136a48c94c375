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
//!
//! A ledger's snapshot arrives as folded members, not rows ([`cg_ledger::Store::facts_by_member`],
//! in id order): a [`LedgerPartitioner`] splits them the same way, every [`LEDGER_CHUNK`]
//! members a chunk of JSON lines ordered by shard (so id order holds within a shard), and
//! [`LedgerRuns::members`] reads one shard's members back.

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

/// Members of a ledger snapshot a chunk holds at most (~300 bytes each while buffered).
pub(crate) const LEDGER_CHUNK: usize = 1 << 16;

/// One chunk of ledger members: shard `s`'s lines are bytes `offsets[s]..offsets[s + 1]`.
#[derive(Debug)]
struct LedgerChunk {
    path: PathBuf,
    offsets: Vec<u64>,
}

/// A ledger snapshot's members split by shard: its chunk files, in id order.
#[derive(Debug)]
pub(crate) struct LedgerRuns {
    chunks: Vec<LedgerChunk>,
    members: u64,
}

/// Splits a ledger snapshot's members, taken in id order, by shard into chunk files in `dir`.
pub(crate) struct LedgerPartitioner<'a> {
    dir: &'a Path,
    sharding: Sharding<'a>,
    buffered: Vec<(u32, i64, cg_ledger::LedgerMember)>,
    out: LedgerRuns,
}

impl<'a> LedgerPartitioner<'a> {
    /// A partitioner writing into `dir`.
    pub(crate) fn new(dir: &'a Path, sharding: Sharding<'a>) -> LedgerPartitioner<'a> {
        LedgerPartitioner {
            dir,
            sharding,
            buffered: Vec::new(),
            out: LedgerRuns {
                chunks: Vec::new(),
                members: 0,
            },
        }
    }

    /// Takes the next member (ids ascending).
    pub(crate) fn push(
        &mut self,
        id: i64,
        member: cg_ledger::LedgerMember,
    ) -> Result<(), BuildError> {
        let shard = keyed_shard(self.sharding.key, id, self.sharding.shards);
        self.buffered.push((shard, id, member));
        if self.buffered.len() >= LEDGER_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered members as a chunk.
    fn flush(&mut self) -> Result<(), BuildError> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        // Stable: each shard's members stay in id order.
        self.buffered.sort_by_key(|(shard, _, _)| *shard);
        let path = self
            .dir
            .join(format!("ledger-{:05}.jsonl", self.out.chunks.len()));
        let mut w = std::io::BufWriter::with_capacity(1 << 20, create_private(&path)?);
        let mut offsets = Vec::with_capacity(self.sharding.shards as usize + 1);
        let mut written = 0u64;
        let mut members = self.buffered.drain(..).peekable();
        for shard in 0..self.sharding.shards {
            offsets.push(written);
            while let Some((_, id, m)) = members.next_if(|(s, _, _)| *s == shard) {
                let mut line = serde_json::to_vec(&(id, m.recorded, &m.facts))?;
                line.push(b'\n');
                std::io::Write::write_all(&mut w, &line).map_err(|e| BuildError::io(&path, e))?;
                written += line.len() as u64;
                self.out.members += 1;
            }
        }
        offsets.push(written);
        if members.next().is_some() {
            return Err(BuildError::Engine(
                "a ledger member's shard is past the build's shards".into(),
            ));
        }
        w.into_inner()
            .map_err(|e| BuildError::io(&path, e.into_error()))?;
        self.out.chunks.push(LedgerChunk { path, offsets });
        Ok(())
    }

    /// Writes what is still buffered and returns the runs.
    pub(crate) fn finish(mut self) -> Result<LedgerRuns, BuildError> {
        self.flush()?;
        Ok(self.out)
    }
}

impl LedgerRuns {
    /// The members of `shard`, ascending, as the ledger gave them.
    pub(crate) fn members(
        &self,
        shard: u32,
    ) -> Result<Vec<(i64, cg_ledger::LedgerMember)>, BuildError> {
        use std::io::{BufRead, Read, Seek};
        let mut out = Vec::new();
        for chunk in &self.chunks {
            let s = shard as usize;
            let (Some(start), Some(end)) = (chunk.offsets.get(s), chunk.offsets.get(s + 1)) else {
                return Err(BuildError::Engine(format!(
                    "`{}` has no shard {shard}",
                    chunk.path.display()
                )));
            };
            if start == end {
                continue;
            }
            let io = |e| BuildError::io(&chunk.path, e);
            let mut file = File::open(&chunk.path).map_err(io)?;
            file.seek(std::io::SeekFrom::Start(*start)).map_err(io)?;
            let lines = std::io::BufReader::new(file.take(end - start));
            for line in lines.lines() {
                let (id, recorded, facts): (i64, bool, cg_model::MemberFacts) =
                    serde_json::from_str(&line.map_err(io)?)?;
                out.push((id, cg_ledger::LedgerMember { recorded, facts }));
            }
        }
        Ok(out)
    }

    /// Members taken.
    pub(crate) fn members_split(&self) -> u64 {
        self.members
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

    /// A ledger's members, taken in id order past a chunk's size, come back by shard in id
    /// order with every fact, each once; a shard with none gives none; the chunks are 0600.
    #[test]
    fn ledger_members_come_back_by_shard_in_id_order() {
        let dir = cg_test_support::tempdir();
        let key = b"key".to_vec();
        let sharding = Sharding {
            key: &key,
            shards: 5,
        };
        let member = |id: i64| cg_ledger::LedgerMember {
            recorded: id % 3 != 0,
            facts: cg_model::MemberFacts {
                country: Some(format!("C{id}")),
                handle: (id % 2 == 0).then(|| format!("h{id}")),
                notice_at: Some(cg_model::Timestamp::from_micros(id)),
                ..Default::default()
            },
        };
        let mut p = LedgerPartitioner::new(dir.path(), sharding);
        let ids: Vec<i64> = (0..(LEDGER_CHUNK as i64 + 5_000))
            .map(|i| i * 3 - 70_000)
            .collect();
        for id in &ids {
            p.push(*id, member(*id)).unwrap();
        }
        let runs = p.finish().unwrap();
        assert_eq!(runs.members_split(), ids.len() as u64);
        assert_eq!(runs.chunks.len(), 2);
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&runs.chunks[1].path)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mut seen = 0;
        for shard in 0..5 {
            let members = runs.members(shard).unwrap();
            assert!(members.is_sorted_by_key(|(id, _)| *id), "shard {shard}");
            for (id, m) in &members {
                assert_eq!(keyed_shard(&key, *id, 5), shard);
                assert_eq!(m, &member(*id));
            }
            seen += members.len();
        }
        assert_eq!(seen, ids.len());
        assert!(runs.members(5).is_err(), "no such shard");
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
