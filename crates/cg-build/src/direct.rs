//! Shards written while the pass decides, when content arrives in `content_id` order.
//!
//! A content file in `content_id` order (what an export or a `COPY … ORDER BY` gives) needs
//! no sort: the pass's streams are consecutive ranges of the file, so the kept rows of one
//! stream after another, each in its own order, are every shard's rows in id order. A thread
//! that finishes a stream hands its kept rows over, per shard ([`StreamRows`]); whichever
//! thread finishes the lowest stream not yet written writes it, and every later stream already
//! finished, into the shards' writers ([`DirectShards`]) while the other threads go on
//! deciding. Each writer takes fixed batches of [`CHUNK`] rows, so a shard's bytes are the
//! same as those the spools write ([`crate::spool`]), without their sorting, spilled runs
//! and merges.
//!
//! The narrow decision records go the same way: each stream's records, in stream order, to
//! the thread writing `decisions.parquet` ([`ToRecord`], [`Handed`]), which so runs while the
//! pass decides instead of merging every thread's sorted runs after it.
//!
//! The order is checked, never assumed: a stream's ids must rise strictly (checked row by
//! row, excluded rows too, so a repeated id is caught) and each stream's first id must be
//! above the last id of the stream before it (checked as it is written), and no row may lack
//! an id (the record lists those first). Anything else stops the pass ([`Handover::Unsorted`]); the
//! pass then runs again with the spools, and nothing written here is kept (a shard writer's
//! partial file is created anew by the spools' writer, and the dataset's temporary directory
//! is never published without it).
//!
//! Memory: the rows of finished streams wait for the stream before them. They count against
//! the spools' budget as reserved bytes, and a thread over the budget waits for the writer
//! before it takes a new stream (the thread with the stream in the way never waits, so the
//! wait ends; every wait is bounded and gives up when the pass stops). Every shard's writer is
//! open at once, each holding its row group's encoded pages until the group is complete (up
//! to 256 Ki rows): many shards or long texts could hold more than the budget, and cutting
//! row groups short would change the shards' bytes. So when the writers hold more than
//! their limit the pass stops with [`Handover::OverBudget`] and runs again through the
//! spools, which write one shard per thread at a time.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;

use crate::BuildError;
use crate::layout::{CHUNK, ShardOut};
use crate::spool::{ShardSpools, WrittenShard, spool_schema};

/// Why handing a stream over failed.
#[derive(Debug)]
pub(crate) enum Handover {
    /// The content is not in id order.
    Unsorted,
    /// The shard writers hold more than their share of the memory budget.
    OverBudget,
    /// The record's writer stopped (its own error says why).
    RecordLost,
    /// Writing a shard failed.
    Failed(BuildError),
}

impl From<BuildError> for Handover {
    fn from(e: BuildError) -> Handover {
        Handover::Failed(e)
    }
}

/// What the record's writer is handed, stream after stream.
pub(crate) enum ToRecord<R> {
    /// One stream's records, in order.
    Block(Vec<R>),
    /// Every stream was handed over: the record is complete.
    End,
}

/// The records handed to the record's writer, in order; a channel closed before
/// [`ToRecord::End`] (the pass failed or started again) is an error, so the record is never
/// finished from part of the rows.
pub(crate) struct Handed<R> {
    from: Receiver<ToRecord<R>>,
    block: std::vec::IntoIter<R>,
    ended: bool,
}

impl<R> Handed<R> {
    pub(crate) fn new(from: Receiver<ToRecord<R>>) -> Handed<R> {
        Handed {
            from,
            block: Vec::new().into_iter(),
            ended: false,
        }
    }
}

impl<R> Iterator for Handed<R> {
    type Item = Result<R, BuildError>;

    fn next(&mut self) -> Option<Result<R, BuildError>> {
        loop {
            if let Some(r) = self.block.next() {
                return Some(Ok(r));
            }
            if self.ended {
                return None;
            }
            match self.from.recv() {
                Ok(ToRecord::Block(block)) => self.block = block.into_iter(),
                Ok(ToRecord::End) => self.ended = true,
                Err(_) => {
                    self.ended = true;
                    return Some(Err(BuildError::Engine(
                        "the pass stopped before its decision record was complete".into(),
                    )));
                }
            }
        }
    }
}

/// The kept rows and records of one stream, and the range of ids the stream held.
pub(crate) struct StreamRows<R> {
    /// The stream's first and last content id (rows without one apart).
    first: Option<i64>,
    last: Option<i64>,
    /// Rows in [`spool_schema`], by shard, in id order.
    shards: Vec<Vec<RecordBatch>>,
    /// Every row's record, in order.
    records: Vec<R>,
    /// The bytes of both (reserved against the spools' budget until written).
    bytes: usize,
}

impl<R> StreamRows<R> {
    /// An empty stream's rows for `shards` shards.
    pub(crate) fn new(shards: u32) -> StreamRows<R> {
        StreamRows {
            first: None,
            last: None,
            shards: vec![Vec::new(); shards as usize],
            records: Vec::new(),
            bytes: 0,
        }
    }

    /// The bytes held so far.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds the next row's record.
    #[inline]
    pub(crate) fn record(&mut self, r: R) {
        self.records.push(r);
        self.bytes += std::mem::size_of::<R>();
    }

    /// Notes the next row's content id; `false` (and nothing noted) when it is not above the
    /// one before: the content is out of order, or the id repeats.
    #[inline]
    #[must_use]
    pub(crate) fn see(&mut self, id: i64) -> bool {
        if self.last.is_some_and(|last| id <= last) {
            return false;
        }
        self.first.get_or_insert(id);
        self.last = Some(id);
        true
    }

    /// Adds kept rows (in [`spool_schema`]) of `shard`, in id order.
    pub(crate) fn push(&mut self, shard: u32, rows: RecordBatch) -> Result<(), BuildError> {
        let bytes = rows.get_array_memory_size();
        self.shards
            .get_mut(shard as usize)
            .ok_or_else(|| BuildError::Engine(format!("no shard {shard} in a stream's rows")))?
            .push(rows);
        self.bytes += bytes;
        Ok(())
    }
}

/// The shards (and the record) of a pass, written as streams finish in order.
pub(crate) struct DirectShards<R> {
    order: Mutex<Order<R>>,
    /// Signalled whenever a stream has been written (threads waiting for room).
    written: Condvar,
    /// The writers; locked only by the thread that is writing (see [`Order::writing`]).
    writers: Mutex<Writers<R>>,
    /// The most bytes the shard writers may hold in memory together.
    writers_limit: usize,
}

/// Which streams are finished and which is next.
struct Order<R> {
    /// The next stream to write.
    next: u64,
    /// Finished streams waiting for the ones before them.
    finished: BTreeMap<u64, StreamRows<R>>,
    /// A thread is writing streams (it writes every finished one in order before it stops).
    writing: bool,
    /// A write failed or the order broke: nothing more is written.
    halted: bool,
}

struct Writers<R> {
    /// The last content id of the streams written.
    last: Option<i64>,
    /// A writer per shard the pass writes (`None`: a shard it does not write).
    shards: Vec<Option<ShardWriter>>,
    /// The record's writer (`None`: the records are not kept, or no longer).
    records: Option<SyncSender<ToRecord<R>>>,
}

impl<R: Send> DirectShards<R> {
    /// Writers for `write` (shard numbers below `shards`) in `dir/shards/`, holding at most
    /// `writers_limit` bytes in memory together, and the record's writer `records` if any;
    /// streams are numbered from `first`.
    pub(crate) fn create(
        dir: &Path,
        shards: u32,
        write: &[u32],
        first: u64,
        records: Option<SyncSender<ToRecord<R>>>,
        writers_limit: usize,
    ) -> Result<DirectShards<R>, BuildError> {
        let mut writers: Vec<Option<ShardWriter>> = (0..shards).map(|_| None).collect();
        for &shard in write {
            let slot = writers
                .get_mut(shard as usize)
                .ok_or_else(|| BuildError::Engine(format!("no shard {shard}")))?;
            *slot = Some(ShardWriter::new(ShardOut::create(dir, shard)?));
        }
        Ok(DirectShards {
            order: Mutex::new(Order {
                next: first,
                finished: BTreeMap::new(),
                writing: false,
                halted: false,
            }),
            written: Condvar::new(),
            writers: Mutex::new(Writers {
                last: None,
                shards: writers,
                records,
            }),
            writers_limit,
        })
    }

    fn order(&self) -> Result<MutexGuard<'_, Order<R>>, BuildError> {
        self.order
            .lock()
            .map_err(|_| BuildError::Engine("the direct writers' order was poisoned".into()))
    }

    /// Hands over stream `index`'s rows. If it is the next stream to write and no thread is
    /// writing, this thread writes it and every finished stream after it, in order.
    pub(crate) fn finish_stream(
        &self,
        index: u64,
        rows: StreamRows<R>,
        spools: &ShardSpools,
    ) -> Result<(), Handover> {
        {
            let mut order = self.order()?;
            if order.halted {
                spools.release(rows.bytes);
                return Ok(());
            }
            order.finished.insert(index, rows);
            if order.writing {
                return Ok(());
            }
            order.writing = true;
        }
        let outcome = self.write_in_order(spools);
        if outcome.is_err() {
            let mut order = self.order()?;
            order.halted = true;
            order.writing = false;
            for (_, rows) in std::mem::take(&mut order.finished) {
                spools.release(rows.bytes);
            }
        }
        self.written.notify_all();
        outcome
    }

    /// Writes the next streams while they are finished (the caller set `writing`).
    fn write_in_order(&self, spools: &ShardSpools) -> Result<(), Handover> {
        let mut writers = self
            .writers
            .lock()
            .map_err(|_| BuildError::Engine("the direct writers were poisoned".into()))?;
        loop {
            let rows = {
                let mut order = self.order()?;
                let next = order.next;
                match order.finished.remove(&next) {
                    Some(rows) => {
                        order.next += 1;
                        rows
                    }
                    None => {
                        order.writing = false;
                        return Ok(());
                    }
                }
            };
            let bytes = rows.bytes;
            let outcome = writers.write_stream(rows, self.writers_limit);
            spools.release(bytes);
            self.written.notify_all();
            outcome?;
        }
    }

    /// Before a thread takes a new stream: while the pass is over its budget and finished
    /// streams wait for an earlier one, waits for them to be written (a stream in progress is
    /// never held up, so the wait ends), or for the pass to stop.
    pub(crate) fn wait_for_room(
        &self,
        spools: &ShardSpools,
        stop: &AtomicBool,
    ) -> Result<(), BuildError> {
        let mut order = self.order()?;
        while spools.over_budget()
            && !order.finished.is_empty()
            && !order.halted
            && !stop.load(Ordering::Acquire)
        {
            order = self
                .written
                .wait_timeout(order, Duration::from_millis(50))
                .map_err(|_| BuildError::Engine("the direct writers' order was poisoned".into()))?
                .0;
        }
        Ok(())
    }

    /// Once every stream is handed over (`end`: the number after the last stream's): tells
    /// the record's writer the record is complete and returns the shards' writers, to be
    /// finished, by shard.
    pub(crate) fn take_writers(&self, end: u64) -> Result<Vec<(u32, ShardWriter)>, Handover> {
        let order = self.order()?;
        if order.halted || order.writing || !order.finished.is_empty() || order.next != end {
            return Err(Handover::Failed(BuildError::Engine(format!(
                "the pass ended with streams up to {} of {end} written and {} waiting",
                order.next,
                order.finished.len()
            ))));
        }
        let mut writers = self
            .writers
            .lock()
            .map_err(|_| BuildError::Engine("the direct writers were poisoned".into()))?;
        if let Some(records) = writers.records.take() {
            records
                .send(ToRecord::End)
                .map_err(|_| Handover::RecordLost)?;
        }
        Ok(std::mem::take(&mut writers.shards)
            .into_iter()
            .enumerate()
            .filter_map(|(shard, w)| w.map(|w| (shard as u32, w)))
            .collect())
    }

    /// Closes the record writer's channel without [`ToRecord::End`] (the pass failed or
    /// starts again): it stops without finishing its file.
    pub(crate) fn abandon(&self) {
        // Even from a poisoned lock: a writer left waiting on its channel would never end.
        let mut writers = self
            .writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writers.records = None;
    }
}

impl<R> Writers<R> {
    fn write_stream(&mut self, rows: StreamRows<R>, limit: usize) -> Result<(), Handover> {
        if let (Some(last), Some(first)) = (self.last, rows.first)
            && first <= last
        {
            return Err(Handover::Unsorted);
        }
        self.last = rows.last.or(self.last);
        for (shard, batches) in rows.shards.into_iter().enumerate() {
            if batches.is_empty() {
                continue;
            }
            let writer = self
                .shards
                .get_mut(shard)
                .and_then(Option::as_mut)
                .ok_or_else(|| {
                    BuildError::Engine(format!("rows for shard {shard}, not written"))
                })?;
            for batch in batches {
                writer.append(batch)?;
            }
        }
        if let Some(records) = &self.records {
            records
                .send(ToRecord::Block(rows.records))
                .map_err(|_| Handover::RecordLost)?;
        }
        let held: usize = self
            .shards
            .iter()
            .flatten()
            .map(ShardWriter::buffered_bytes)
            .sum();
        if held > limit {
            return Err(Handover::OverBudget);
        }
        Ok(())
    }
}

/// One shard's file, fed rows in id order and writing them in batches of exactly [`CHUNK`]
/// rows (the last one shorter), as the spools do.
pub(crate) struct ShardWriter {
    out: ShardOut,
    /// Rows not yet written (fewer than [`CHUNK`] once `append` returns).
    pending: VecDeque<RecordBatch>,
    pending_rows: usize,
    /// The authors of the rows written.
    members: Vec<i64>,
}

impl ShardWriter {
    fn new(out: ShardOut) -> ShardWriter {
        ShardWriter {
            out,
            pending: VecDeque::new(),
            pending_rows: 0,
            members: Vec::new(),
        }
    }

    /// Bytes held in memory: the row group being written and the rows not yet in it.
    fn buffered_bytes(&self) -> usize {
        self.out.buffered_bytes()
            + self
                .pending
                .iter()
                .map(RecordBatch::get_array_memory_size)
                .sum::<usize>()
    }

    fn append(&mut self, rows: RecordBatch) -> Result<(), BuildError> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        self.pending_rows += rows.num_rows();
        self.pending.push_back(rows);
        while self.pending_rows >= CHUNK {
            self.emit(CHUNK)?;
        }
        Ok(())
    }

    /// Writes the first `n` pending rows as one batch.
    fn emit(&mut self, n: usize) -> Result<(), BuildError> {
        let mut parts = Vec::new();
        let mut need = n;
        while need > 0 {
            let batch = self
                .pending
                .pop_front()
                .ok_or_else(|| BuildError::Engine("a shard writer ran out of rows".into()))?;
            if batch.num_rows() <= need {
                need -= batch.num_rows();
                parts.push(batch);
            } else {
                parts.push(batch.slice(0, need));
                self.pending
                    .push_front(batch.slice(need, batch.num_rows() - need));
                need = 0;
            }
        }
        self.pending_rows -= n;
        let chunk = match parts.len() {
            1 => parts.swap_remove(0),
            _ => arrow::compute::concat_batches(&spool_schema(), &parts)
                .map_err(BuildError::Arrow)?,
        };
        let authors = chunk.column(4).as_primitive::<Int64Type>();
        self.members.extend(authors.values().iter().copied());
        self.out
            .write(&chunk.project(&[0, 1, 2, 3]).map_err(BuildError::Arrow)?)
    }

    /// Writes what is left and closes the file (fsynced, renamed into place).
    pub(crate) fn finish(mut self) -> Result<WrittenShard, BuildError> {
        if self.pending_rows > 0 {
            self.emit(self.pending_rows)?;
        }
        let mut members = std::mem::take(&mut self.members);
        members.sort_unstable();
        members.dedup();
        let rows = self.out.rows_written();
        let (path, sha256) = self.out.finish()?;
        Ok(WrittenShard {
            rows,
            path,
            sha256,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray, UInt64Array};

    fn rows(ids: &[i64]) -> RecordBatch {
        let n = ids.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(vec!["post"; n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_700_000_000_000_000; n])
                    .with_timezone("+00:00"),
            ),
            Arc::new(StringArray::from(
                ids.iter().map(|i| format!("text {i}")).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                ids.iter().map(|i| i % 97).collect::<Vec<_>>(),
            )),
            Arc::new(UInt64Array::from(
                ids.iter().map(|&i| i as u64).collect::<Vec<_>>(),
            )),
        ];
        RecordBatch::try_new(spool_schema(), columns).unwrap()
    }

    fn stream_of(shards: u32, ids: &[i64], shard: impl Fn(i64) -> u32) -> StreamRows<i64> {
        let mut s = StreamRows::new(shards);
        for &id in ids {
            assert!(s.see(id));
            s.record(id);
        }
        // Several small batches per shard, as a stream's batches give them.
        for piece in ids.chunks(700) {
            for k in 0..shards {
                let mine: Vec<i64> = piece.iter().copied().filter(|&i| shard(i) == k).collect();
                if !mine.is_empty() {
                    s.push(k, rows(&mine)).unwrap();
                }
            }
        }
        s
    }

    /// Direct writers of one shard in a new temporary directory, the receiving end of their
    /// record channel, and a roomy budget.
    fn one_shard() -> (
        tempfile::TempDir,
        DirectShards<i64>,
        Receiver<ToRecord<i64>>,
        ShardSpools,
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("shards")).unwrap();
        let (to_record, from_streams) = std::sync::mpsc::sync_channel(8);
        let direct =
            DirectShards::create(dir.path(), 1, &[0], 0, Some(to_record), 1 << 30).unwrap();
        let budget = ShardSpools::new(1, 1 << 30, dir.path().join("spill"));
        (dir, direct, from_streams, budget)
    }

    fn bytes_of(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn a_stream_sees_ids_rise_strictly() {
        let mut s = StreamRows::<()>::new(1);
        assert!(s.see(3));
        assert!(s.see(7));
        assert!(!s.see(7), "a repeated id is out of order");
        assert!(!s.see(5));
    }

    #[test]
    fn streams_finished_out_of_turn_write_the_spools_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (spool_dir, direct_dir) = (dir.path().join("spool"), dir.path().join("direct"));
        for d in [&spool_dir, &direct_dir] {
            std::fs::create_dir_all(d.join("shards")).unwrap();
        }
        let ids: Vec<i64> = (0..40_000).map(|i| i * 3 + 1).collect();
        let shard_of = |i: i64| (i % 5 == 0) as u32;
        // The spools' shards (shard 0 holds ~32 000 rows: several batches of `CHUNK`).
        let spools = ShardSpools::new(2, 1 << 30, dir.path().join("spill"));
        for piece in ids.chunks(999).rev() {
            for shard in 0..2 {
                let mine: Vec<i64> = piece
                    .iter()
                    .copied()
                    .filter(|&i| shard_of(i) == shard)
                    .collect();
                spools.push(shard, rows(&mine)).unwrap();
            }
        }
        let from_spools: Vec<WrittenShard> = (0..2)
            .map(|shard| {
                let out = ShardOut::create(&spool_dir, shard).unwrap();
                spools
                    .write_shard(shard, out, &rustc_hash::FxHashSet::default())
                    .unwrap()
            })
            .collect();
        // The direct writers, streams finished in the order 2, 0, 3, 1.
        let (to_record, from_streams) = std::sync::mpsc::sync_channel(8);
        let direct =
            DirectShards::create(&direct_dir, 2, &[0, 1], 0, Some(to_record), 1 << 30).unwrap();
        let budget = ShardSpools::new(2, 1 << 30, dir.path().join("spill2"));
        let streams: Vec<&[i64]> = ids.chunks(10_000).collect();
        for index in [2usize, 0, 3, 1] {
            let rows = stream_of(2, streams[index], shard_of);
            assert!(direct.finish_stream(index as u64, rows, &budget).is_ok());
        }
        // Streams 0..4 were handed over; a pass that had a fifth is not complete.
        assert!(direct.take_writers(5).is_err());
        let writers = direct.take_writers(4).unwrap();
        // Every record, in id order, and the end of the record.
        let handed: Vec<i64> = Handed::new(from_streams).map(Result::unwrap).collect();
        assert_eq!(handed, ids);
        assert_eq!(writers.len(), 2);
        for (shard, writer) in writers {
            let written = writer.finish().unwrap();
            let expected = &from_spools[shard as usize];
            assert!(written.rows > 0);
            assert_eq!(written.rows, expected.rows);
            assert_eq!(written.members, expected.members);
            assert_eq!(written.sha256, expected.sha256);
            assert_eq!(bytes_of(&written.path), bytes_of(&expected.path));
        }
    }

    #[test]
    fn a_stream_starting_below_the_last_written_id_is_unsorted() {
        let (_dir, direct, from_streams, budget) = one_shard();
        assert!(
            direct
                .finish_stream(0, stream_of(1, &[10, 20, 30], |_| 0), &budget)
                .is_ok()
        );
        // Stream 1 repeats the last id of stream 0.
        let outcome = direct.finish_stream(1, stream_of(1, &[30, 40], |_| 0), &budget);
        assert!(matches!(outcome, Err(Handover::Unsorted)));
        // Nothing is written after that, and the writers are not handed out.
        assert!(
            direct
                .finish_stream(2, stream_of(1, &[50], |_| 0), &budget)
                .is_ok()
        );
        assert!(direct.take_writers(2).is_err());
        // The pass starts again: the record's writer sees the first stream, then an error
        // instead of an end, so it never finishes its file.
        direct.abandon();
        let handed: Vec<Result<i64, BuildError>> = Handed::new(from_streams).collect();
        assert_eq!(handed.len(), 4);
        assert!(handed[..3].iter().all(Result::is_ok));
        assert!(handed[3].is_err());
    }

    #[test]
    fn writers_holding_more_than_their_limit_stop_the_direct_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("shards")).unwrap();
        let ids: Vec<i64> = (1..=20_000).collect();
        let budget = ShardSpools::new(1, 1 << 30, dir.path().join("spill"));
        // What the writer holds after a first stream of 12 000 rows (a batch of `CHUNK` rows
        // in its row group, the rest pending).
        let roomy = DirectShards::<i64>::create(dir.path(), 1, &[0], 0, None, 1 << 30).unwrap();
        let rows = stream_of(1, &ids[..12_000], |_| 0);
        assert!(roomy.finish_stream(0, rows, &budget).is_ok());
        let held: usize = roomy.writers.lock().unwrap().shards[0]
            .as_ref()
            .unwrap()
            .buffered_bytes();
        assert!(held > 0);
        // With a limit just above that, the first stream passes and the second does not.
        let tight = DirectShards::<i64>::create(dir.path(), 1, &[0], 0, None, held + 1).unwrap();
        let rows = stream_of(1, &ids[..12_000], |_| 0);
        assert!(tight.finish_stream(0, rows, &budget).is_ok());
        let rows = stream_of(1, &ids[12_000..], |_| 0);
        let outcome = tight.finish_stream(1, rows, &budget);
        assert!(matches!(outcome, Err(Handover::OverBudget)));
        assert!(tight.take_writers(2).is_err());
    }

    #[test]
    fn a_record_writer_that_stopped_is_told_apart_from_other_failures() {
        let (_dir, direct, from_streams, budget) = one_shard();
        // The record's writer is gone (it failed on its own): the pass is told so, and stops.
        drop(from_streams);
        let outcome = direct.finish_stream(0, stream_of(1, &[1, 2, 3], |_| 0), &budget);
        assert!(matches!(outcome, Err(Handover::RecordLost)), "{outcome:?}");
        assert!(direct.take_writers(2).is_err());
    }

    #[test]
    fn a_stream_never_handed_over_keeps_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("shards")).unwrap();
        let direct = DirectShards::<i64>::create(dir.path(), 1, &[0], 0, None, 1 << 30).unwrap();
        let budget = ShardSpools::new(1, 1 << 30, dir.path().join("spill"));
        // Stream 0 never arrives: stream 1 waits for it, so the pass cannot end here.
        assert!(
            direct
                .finish_stream(1, stream_of(1, &[10], |_| 0), &budget)
                .is_ok()
        );
        assert!(direct.take_writers(2).is_err());
    }
}
