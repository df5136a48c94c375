//! Shard spools: the external sort that replaces the plan's global sort.
//!
//! The engine's partitions hand each kept row to the spool of its shard in whatever order they
//! produce them, as small Arrow batches (`content_id`, `kind`, `created_at`, redacted `text`,
//! `member_id`). When the spools together hold more than their budget, the largest one is sorted
//! by `content_id` and written out as a *run* (an Arrow IPC stream in a spill directory next to
//! the dataset's temporary directory). Finishing a shard merges its runs with what is still in
//! memory, in `content_id` order, into `shards/part-NNNNN.parquet` in fixed batches of
//! [`CHUNK`] rows: a shard's bytes depend only on its rows, whatever the partitioning, the
//! budget or the order rows arrived in. Shards are finished independently, so several threads
//! (or, later, executors) can write them at once.
//!
//! Content that arrives in `content_id` order skips the spools: its shards are written while
//! the pass decides ([`crate::direct`]); the spools then only hold the pass's memory budget
//! and its records' spills.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use rustc_hash::FxHashSet;

use crate::BuildError;
use crate::layout::{CHUNK, ShardOut};

/// The columns a spool holds: the shard's columns, then the author (for the member keys) and
/// the row's position in the input (to skip quarantined later copies of a content id).
pub(crate) fn spool_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("content_id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("created_at", cg_io::schema::timestamp_type(), false),
        Field::new("text", DataType::Utf8, false),
        Field::new("member_id", DataType::Int64, false),
        Field::new("pos", DataType::UInt64, false),
    ]))
}

/// A spool smaller than this (or than 1/64 of the budget, if less) is not spilled: runs of a
/// few rows would make the merge slow.
const MIN_RUN_BYTES: usize = 1 << 20;

/// The spools of one pass, one per shard, sharing one memory budget.
pub(crate) struct ShardSpools {
    spools: Vec<Mutex<Spool>>,
    /// Bytes held in memory by all spools.
    buffered: AtomicUsize,
    /// Bytes the pass holds elsewhere that count against the same budget (its narrow decision
    /// records), so the spools spill earlier as those grow.
    reserved: AtomicUsize,
    /// Of `buffered`, the bytes taken out of their spool and being written as a run: freed
    /// when the run is written, so another thread over the budget does not spill a second
    /// spool for them (memory may exceed the budget by the spools being written, at most one
    /// per pass thread).
    spilling: AtomicUsize,
    /// Above this many buffered (plus reserved) bytes the largest spool is spilled.
    budget: usize,
    /// The smallest spool worth a run.
    min_run: usize,
    /// Where runs go (created on first spill, removed when the spools are dropped).
    spill_dir: PathBuf,
    runs_written: AtomicU64,
}

#[derive(Default)]
struct Spool {
    batches: Vec<RecordBatch>,
    bytes: usize,
    runs: Vec<PathBuf>,
}

/// What finishing a shard produced.
pub(crate) struct WrittenShard {
    /// Rows written.
    pub rows: u64,
    /// The finished file.
    pub path: PathBuf,
    /// Its SHA-256 (hex), computed as it was written.
    pub sha256: String,
    /// The distinct authors of its rows, ascending.
    pub members: Vec<i64>,
}

impl ShardSpools {
    /// `shards` empty spools holding at most about `budget` bytes in memory together; runs are
    /// written under `spill_dir`.
    pub(crate) fn new(shards: u32, budget: usize, spill_dir: PathBuf) -> ShardSpools {
        ShardSpools {
            spools: (0..shards).map(|_| Mutex::new(Spool::default())).collect(),
            buffered: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            spilling: AtomicUsize::new(0),
            budget: budget.max(1),
            min_run: MIN_RUN_BYTES.min(budget / 64).max(1),
            spill_dir,
            runs_written: AtomicU64::new(0),
        }
    }

    fn spool(&self, shard: u32) -> Result<MutexGuard<'_, Spool>, BuildError> {
        self.spools
            .get(shard as usize)
            .ok_or_else(|| BuildError::Engine(format!("no spool for shard {shard}")))?
            .lock()
            .map_err(|_| BuildError::Engine("a shard spool was poisoned by a failed thread".into()))
    }

    /// Adds rows (in [`spool_schema`]) to a shard; spills the largest spool when the budget is
    /// exceeded.
    pub(crate) fn push(&self, shard: u32, batch: RecordBatch) -> Result<(), BuildError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let bytes = batch.get_array_memory_size();
        {
            let mut spool = self.spool(shard)?;
            spool.batches.push(batch);
            spool.bytes += bytes;
        }
        self.buffered.fetch_add(bytes, Ordering::AcqRel);
        if self.over_budget() {
            self.spill_largest()?;
        }
        Ok(())
    }

    /// Counts `bytes` held elsewhere by the pass against the budget; spills when over it.
    pub(crate) fn reserve(&self, bytes: usize) -> Result<(), BuildError> {
        self.reserved.fetch_add(bytes, Ordering::AcqRel);
        if self.over_budget() {
            self.spill_largest()?;
        }
        Ok(())
    }

    /// Gives back `bytes` counted with [`ShardSpools::reserve`] (never below zero).
    pub(crate) fn release(&self, bytes: usize) {
        let _ = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            });
    }

    /// Sorts the largest spool and writes it out as a run. The spool's lock is held only to
    /// take its rows and to add the run: other threads keep adding rows to it meanwhile (every
    /// batch adds rows to most shards, so a lock held while a run is sorted and written would
    /// stop them all).
    fn spill_largest(&self) -> Result<(), BuildError> {
        let mut largest = (0, 0);
        for i in 0..self.spools.len() {
            let bytes = self.spool(i as u32)?.bytes;
            if bytes > largest.1 {
                largest = (i, bytes);
            }
        }
        let (batches, bytes) = {
            let mut spool = self.spool(largest.0 as u32)?;
            if spool.bytes < self.min_run {
                // Another thread spilled it first, or what is buffered is too little to be
                // worth a run (the budget is then taken by the reserved bytes; memory stays
                // bounded by shards × min_run above it).
                return Ok(());
            }
            (
                std::mem::take(&mut spool.batches),
                std::mem::take(&mut spool.bytes),
            )
        };
        self.spilling.fetch_add(bytes, Ordering::AcqRel);
        let run = self.write_run(SortedChunks::new(batches));
        self.buffered.fetch_sub(bytes, Ordering::AcqRel);
        self.spilling.fetch_sub(bytes, Ordering::AcqRel);
        // A shard is written only once every thread has stopped adding rows, so the run is
        // in its spool by then; the runs' order does not matter (they are merged by id).
        self.spool(largest.0 as u32)?.runs.push(run?);
        Ok(())
    }

    /// A new file name in the spill directory (created on first use), removed with it.
    pub(crate) fn run_path(&self, kind: &str) -> Result<PathBuf, BuildError> {
        std::fs::create_dir_all(&self.spill_dir).map_err(|e| BuildError::io(&self.spill_dir, e))?;
        let n = self.runs_written.fetch_add(1, Ordering::AcqRel);
        Ok(self.spill_dir.join(format!("{kind}-{n:06}")))
    }

    /// The shards holding rows (in memory or in runs), ascending.
    pub(crate) fn held(&self) -> Vec<u32> {
        (0..self.spools.len() as u32)
            .filter(|&i| {
                // A poisoned spool is listed: writing it fails the pass.
                self.spool(i)
                    .map(|s| !s.batches.is_empty() || !s.runs.is_empty())
                    .unwrap_or(true)
            })
            .collect()
    }

    /// The budget, in bytes.
    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    /// Whether the spools and the reserved bytes are over the budget together, not counting
    /// the spools being written as runs (their memory is on its way out).
    pub(crate) fn over_budget(&self) -> bool {
        let held = self
            .buffered
            .load(Ordering::Acquire)
            .saturating_sub(self.spilling.load(Ordering::Acquire));
        held + self.reserved.load(Ordering::Acquire) > self.budget
    }

    fn write_run(&self, mut sorted: SortedChunks) -> Result<PathBuf, BuildError> {
        let path = self.run_path("shard-rows")?;
        let file = File::create(&path).map_err(|e| BuildError::io(&path, e))?;
        let spill = |e: arrow::error::ArrowError| BuildError::Spill {
            path: path.clone(),
            source: e,
        };
        let mut w = StreamWriter::try_new(BufWriter::new(file), &spool_schema()).map_err(spill)?;
        while let Some(chunk) = sorted.next_chunk()? {
            w.write(&chunk).map_err(spill)?;
        }
        w.finish().map_err(spill)?;
        Ok(path)
    }

    /// Writes one shard: its runs and what is still in memory, merged in `content_id` order,
    /// without the rows whose input position is in `skip` (quarantined later copies).
    pub(crate) fn write_shard(
        &self,
        shard: u32,
        mut out: ShardOut,
        skip: &FxHashSet<u64>,
    ) -> Result<WrittenShard, BuildError> {
        let (batches, runs) = {
            let mut spool = self.spool(shard)?;
            let bytes = std::mem::take(&mut spool.bytes);
            self.buffered.fetch_sub(bytes, Ordering::AcqRel);
            (
                std::mem::take(&mut spool.batches),
                std::mem::take(&mut spool.runs),
            )
        };
        let mut members: Vec<i64> = Vec::new();
        let mut emit = |chunk: RecordBatch| -> Result<(), BuildError> {
            let chunk = without(chunk, skip)?;
            if chunk.num_rows() == 0 {
                return Ok(());
            }
            let authors = chunk.column(4).as_primitive::<Int64Type>();
            members.extend(authors.values().iter().copied());
            out.write(&chunk.project(&[0, 1, 2, 3]).map_err(arrow_err)?)
        };
        let mut memory = SortedChunks::new(batches);
        if runs.is_empty() {
            // Everything is in memory: its rows in order, a chunk at a time.
            while let Some(chunk) = memory.next_chunk()? {
                emit(chunk)?;
            }
        } else {
            let mut sources: Vec<Source> = Vec::with_capacity(runs.len() + 1);
            for run in &runs {
                let file = File::open(run).map_err(|e| BuildError::io(run, e))?;
                let reader = StreamReader::try_new(BufReader::new(file), None).map_err(|e| {
                    BuildError::Spill {
                        path: run.clone(),
                        source: e,
                    }
                })?;
                sources.push(Source::Run(run.clone(), Box::new(reader)));
            }
            sources.push(Source::Memory(memory));
            merge(sources, &mut emit)?;
            for run in &runs {
                let _ = std::fs::remove_file(run);
            }
        }
        members.sort_unstable();
        members.dedup();
        let rows = out.rows_written();
        let (path, sha256) = out.finish()?;
        Ok(WrittenShard {
            rows,
            path,
            sha256,
            members,
        })
    }
}

impl Drop for ShardSpools {
    fn drop(&mut self) {
        // Runs are scratch: never left behind, whether the pass succeeded or not.
        let _ = std::fs::remove_dir_all(&self.spill_dir);
    }
}

fn arrow_err(e: arrow::error::ArrowError) -> BuildError {
    BuildError::Arrow(e)
}

/// The rows of a spool's batches ordered by `content_id` (then input position, so the order
/// is total), handed out in chunks of [`CHUNK`] rows, each gathered from the batches as it is
/// asked for: the text is copied once, a chunk at a time, instead of into one concatenated
/// batch and again into one sorted batch as large as the spool.
struct SortedChunks {
    batches: Vec<RecordBatch>,
    /// `(batch, row)` of every row, in order.
    order: Vec<(usize, usize)>,
    /// The next row of `order` to hand out.
    at: usize,
}

impl SortedChunks {
    fn new(batches: Vec<RecordBatch>) -> SortedChunks {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let mut keyed: Vec<(i64, u64, usize, usize)> = Vec::with_capacity(rows);
        for (b, batch) in batches.iter().enumerate() {
            let ids = batch.column(0).as_primitive::<Int64Type>();
            let positions = batch
                .column(5)
                .as_primitive::<arrow::datatypes::UInt64Type>();
            keyed.extend(
                ids.values()
                    .iter()
                    .zip(positions.values().iter())
                    .enumerate()
                    .map(|(r, (id, pos))| (*id, *pos, b, r)),
            );
        }
        keyed.sort_unstable_by_key(|&(id, pos, _, _)| (id, pos));
        SortedChunks {
            batches,
            order: keyed.into_iter().map(|(_, _, b, r)| (b, r)).collect(),
            at: 0,
        }
    }

    /// The next [`CHUNK`] rows in order (fewer at the end), `None` when all were handed out.
    fn next_chunk(&mut self) -> Result<Option<RecordBatch>, BuildError> {
        if self.at >= self.order.len() {
            // Every row is out: the spool's batches are freed now, not with the merge.
            self.batches = Vec::new();
            return Ok(None);
        }
        let end = self.order.len().min(self.at + CHUNK);
        let refs: Vec<&RecordBatch> = self.batches.iter().collect();
        let chunk = arrow::compute::interleave_record_batch(&refs, &self.order[self.at..end])
            .map_err(arrow_err)?;
        self.at = end;
        Ok(Some(chunk))
    }
}

/// `batch` without the rows whose input position is in `skip`.
fn without(batch: RecordBatch, skip: &FxHashSet<u64>) -> Result<RecordBatch, BuildError> {
    if skip.is_empty() {
        return Ok(batch);
    }
    let positions = batch
        .column(5)
        .as_primitive::<arrow::datatypes::UInt64Type>();
    let keep: arrow::array::BooleanArray = positions
        .values()
        .iter()
        .map(|p| Some(!skip.contains(p)))
        .collect();
    arrow::compute::filter_record_batch(&batch, &keep).map_err(arrow_err)
}

/// One sorted input of a merge.
enum Source {
    Run(PathBuf, Box<StreamReader<BufReader<File>>>),
    Memory(SortedChunks),
}

impl Source {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, BuildError> {
        loop {
            let next = match self {
                Source::Run(path, reader) => {
                    reader.next().transpose().map_err(|e| BuildError::Spill {
                        path: path.clone(),
                        source: e,
                    })?
                }
                Source::Memory(chunks) => chunks.next_chunk()?,
            };
            match next {
                Some(b) if b.num_rows() == 0 => continue,
                other => return Ok(other),
            }
        }
    }
}

/// Where a merge stands in one source.
struct Cursor {
    source: Source,
    batch: RecordBatch,
    /// Index of `batch` in the merge's list of batches in use.
    slot: usize,
    row: usize,
}

impl Cursor {
    fn id(&self) -> i64 {
        self.batch
            .column(0)
            .as_primitive::<Int64Type>()
            .value(self.row)
    }
}

/// Merges sorted sources by `content_id` into chunks of exactly [`CHUNK`] rows (the last one
/// shorter).
fn merge(
    sources: Vec<Source>,
    emit: &mut dyn FnMut(RecordBatch) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let mut in_use: Vec<RecordBatch> = Vec::new();
    let mut cursors: Vec<Option<Cursor>> = Vec::new();
    let mut heap = BinaryHeap::new();
    for mut source in sources {
        if let Some(batch) = source.next_batch()? {
            in_use.push(batch.clone());
            let cursor = Cursor {
                source,
                batch,
                slot: in_use.len() - 1,
                row: 0,
            };
            heap.push(Reverse((cursor.id(), cursors.len())));
            cursors.push(Some(cursor));
        }
    }
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(CHUNK);
    let flush = |in_use: &mut Vec<RecordBatch>,
                 cursors: &mut [Option<Cursor>],
                 picks: &mut Vec<(usize, usize)>,
                 emit: &mut dyn FnMut(RecordBatch) -> Result<(), BuildError>|
     -> Result<(), BuildError> {
        if picks.is_empty() {
            return Ok(());
        }
        let refs: Vec<&RecordBatch> = in_use.iter().collect();
        let chunk = arrow::compute::interleave_record_batch(&refs, picks).map_err(arrow_err)?;
        picks.clear();
        // Keep only the batches the cursors still stand in.
        in_use.clear();
        for c in cursors.iter_mut().flatten() {
            in_use.push(c.batch.clone());
            c.slot = in_use.len() - 1;
        }
        emit(chunk)
    };
    while let Some(Reverse((_, i))) = heap.pop() {
        let Some(cursor) = cursors[i].as_mut() else {
            continue;
        };
        picks.push((cursor.slot, cursor.row));
        cursor.row += 1;
        if cursor.row == cursor.batch.num_rows() {
            match cursor.source.next_batch()? {
                Some(batch) => {
                    in_use.push(batch.clone());
                    cursor.batch = batch;
                    cursor.slot = in_use.len() - 1;
                    cursor.row = 0;
                }
                None => cursors[i] = None,
            }
        }
        if let Some(cursor) = &cursors[i] {
            heap.push(Reverse((cursor.id(), i)));
        }
        if picks.len() == CHUNK {
            flush(&mut in_use, &mut cursors, &mut picks, emit)?;
        }
    }
    flush(&mut in_use, &mut cursors, &mut picks, emit)
}

/// The spill directory of a pass writing into `dir`: a sibling, so it is never published.
pub(crate) fn spill_dir_for(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".spill");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};

    fn rows(ids: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            spool_schema(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(vec!["post"; ids.len()])),
                Arc::new(TimestampMicrosecondArray::from(ids.to_vec()).with_timezone("+00:00")),
                Arc::new(StringArray::from(
                    ids.iter().map(|i| format!("text {i}")).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    ids.iter().map(|i| i % 7).collect::<Vec<_>>(),
                )),
                Arc::new(arrow::array::UInt64Array::from_iter_values(
                    ids.iter().map(|i| pos_of(*i)),
                )),
            ],
        )
        .unwrap()
    }

    /// The test rows' input positions: one per id.
    fn pos_of(id: i64) -> u64 {
        (id + (1 << 40)) as u64
    }

    /// Writes one shard of `ids` pushed in `pieces` with `budget` bytes; returns the file's
    /// bytes, its ids in order and the members.
    fn shard_of(pieces: &[Vec<i64>], budget: usize, skip: &[i64]) -> (Vec<u8>, Vec<i64>, Vec<i64>) {
        let dir = cg_test_support::tempdir();
        std::fs::create_dir_all(dir.path().join("shards")).unwrap();
        let spill = dir.path().join("spill");
        let spools = ShardSpools::new(2, budget, spill.clone());
        for p in pieces {
            spools.push(1, rows(p)).unwrap();
        }
        let out = ShardOut::create(dir.path(), 1).unwrap();
        let skip: FxHashSet<u64> = skip.iter().map(|i| pos_of(*i)).collect();
        let written = spools.write_shard(1, out, &skip).unwrap();
        drop(spools);
        assert!(!spill.exists(), "runs are removed");
        let bytes = std::fs::read(&written.path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            File::open(&written.path).unwrap(),
            1024,
        )
        .unwrap();
        let mut ids = Vec::new();
        for b in reader {
            ids.extend(
                b.unwrap()
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        assert_eq!(written.rows, ids.len() as u64);
        (bytes, ids, written.members)
    }

    /// Threads pushing rows of both shards while spills run (the spool's lock is not held
    /// while a run is written): each shard is the same bytes as one made in memory on one
    /// thread, and every row is in it once.
    #[test]
    fn spools_filled_by_threads_while_they_spill_write_every_row_once() {
        let all: Vec<i64> = (0..40_000).map(|i| (i * 7919) % 40_009).collect();
        let pieces: Vec<Vec<i64>> = all.chunks(499).map(<[i64]>::to_vec).collect();
        let shard_rows = |shard: i64| -> Vec<Vec<i64>> {
            pieces
                .iter()
                .map(|p| p.iter().copied().filter(|i| i % 2 == shard).collect())
                .collect()
        };
        for budget in [1, 300_000] {
            let dir = cg_test_support::tempdir();
            std::fs::create_dir_all(dir.path().join("shards")).unwrap();
            let spools = ShardSpools::new(2, budget, dir.path().join("spill"));
            std::thread::scope(|scope| {
                for half in pieces.chunks(pieces.len() / 2 + 1) {
                    let spools = &spools;
                    scope.spawn(move || {
                        for p in half {
                            for shard in [0, 1] {
                                let ids: Vec<i64> =
                                    p.iter().copied().filter(|i| i % 2 == shard).collect();
                                spools.push(shard as u32, rows(&ids)).unwrap();
                            }
                        }
                    });
                }
            });
            assert!(
                spools.runs_written.load(Ordering::Acquire) > 2,
                "the budget of {budget} bytes spilled runs"
            );
            for shard in [0, 1] {
                let out = ShardOut::create(dir.path(), shard as u32).unwrap();
                let written = spools
                    .write_shard(shard as u32, out, &FxHashSet::default())
                    .unwrap();
                let (reference, ids, _) = shard_of(&shard_rows(shard), usize::MAX, &[]);
                assert_eq!(std::fs::read(&written.path).unwrap(), reference, "{budget}");
                let mut expected: Vec<i64> =
                    all.iter().copied().filter(|i| i % 2 == shard).collect();
                expected.sort_unstable();
                assert_eq!(ids, expected);
                assert_eq!(written.rows, expected.len() as u64);
            }
        }
    }

    #[test]
    fn a_shard_is_the_same_bytes_whatever_the_arrival_order_and_budget() {
        let all: Vec<i64> = (0..30_000).map(|i| (i * 7919) % 30_011).collect();
        let mut sorted = all.clone();
        sorted.sort_unstable();
        let one = vec![sorted.clone()];
        let scattered: Vec<Vec<i64>> = all.chunks(997).map(<[i64]>::to_vec).collect();
        let (reference, ids, members) = shard_of(&one, usize::MAX, &[]);
        assert_eq!(ids, sorted);
        assert_eq!(members, (0..7).collect::<Vec<_>>());
        // In memory, out of order.
        let (bytes, _, _) = shard_of(&scattered, usize::MAX, &[]);
        assert_eq!(bytes, reference);
        // Spilled after every batch: many runs merged.
        let (bytes, _, _) = shard_of(&scattered, 1, &[]);
        assert_eq!(bytes, reference);
        // Some runs and some rows still in memory.
        let (bytes, _, _) = shard_of(&scattered, 200_000, &[]);
        assert_eq!(bytes, reference);
    }

    #[test]
    fn skipped_ids_are_not_written_in_memory_or_merged() {
        let pieces = vec![vec![5, 1, 9], vec![3, 7], vec![2]];
        for budget in [usize::MAX, 1] {
            let (_, ids, _) = shard_of(&pieces, budget, &[7, 1]);
            assert_eq!(ids, vec![2, 3, 5, 9]);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Whatever the ids, the order and size of the pieces they arrive in, the budget and
        /// the ids skipped: the shard holds exactly the other ids, ascending, and its bytes
        /// are those of the same rows pushed sorted in one piece with no budget.
        #[test]
        fn a_shard_is_its_rows_sorted_whatever_the_arrival(
            ids in proptest::collection::hash_set(-1_000_000i64..1_000_000, 0..3_000),
            piece in 1usize..700,
            budget in proptest::sample::select(vec![1usize, 20_000, 200_000, usize::MAX]),
            skip_every in 0usize..5,
        ) {
            let ids: Vec<i64> = ids.into_iter().collect();
            let pieces: Vec<Vec<i64>> = ids.chunks(piece).map(<[i64]>::to_vec).collect();
            let skip: Vec<i64> = if skip_every == 0 {
                Vec::new()
            } else {
                ids.iter().copied().step_by(skip_every).collect()
            };
            let mut kept: Vec<i64> = ids.iter().copied().filter(|i| !skip.contains(i)).collect();
            kept.sort_unstable();
            let (bytes, written, _) = shard_of(&pieces, budget, &skip);
            proptest::prop_assert_eq!(&written, &kept);
            let (reference, _, _) = shard_of(&[kept.clone()], usize::MAX, &[]);
            proptest::prop_assert_eq!(bytes, reference);
        }
    }

    #[test]
    fn an_empty_shard_is_a_valid_file() {
        let (_, ids, members) = shard_of(&[], usize::MAX, &[]);
        assert!(ids.is_empty() && members.is_empty());
    }
}
