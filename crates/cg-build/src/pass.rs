//! One pass of content through the gate, with every core busy and no global sort.
//!
//! ```text
//!            DataFusion plan, one stream per range of the file (scan → cg_gate), sixteen
//!            per core, taken in turn by one thread per core
//!                 │ thread 0                   │ thread 1                ...
//!                 ▼                            ▼
//!   per row: final verdict (quarantine, erasure, fail-closed checks), shard = keyed hash(member),
//!   redaction fingerprint; the text of kept rows of a written shard redacted into its column
//!        │ narrow record (ids, verdict code,      │ kept rows, taken per shard as Arrow batches
//!        │ shard, fingerprint, region, position) ▼
//!        │                  content in id order: each finished stream's rows, in stream
//!        │                  order, into the shards' writers while the pass decides
//!        │                  (crate::direct); otherwise ShardSpools (one per shard, shared
//!        ▼                  budget, sorted runs spilled to disk when over it)
//!   sorted per thread                             │
//!        │                                        │
//!        ├─► k-way merge: duplicate content ids ──┤ (spools: skipped in shards; quarantined
//!        │                                        │  or an error naming the file and rows)
//!        ▼                                        ▼
//!   decisions.parquet + counts (one thread)   shards/part-NNNNN.parquet, in content id order,
//!                                              each finished (or merged and written) whole by
//!                                              one of N threads, with the member keys of its
//!                                              members
//! ```
//!
//! The bytes of a shard depend only on its rows (sorted by `content_id`, written in fixed
//! batches), and `decisions.parquet` is in `content_id` order, so the dataset is the same
//! however the engine split the input, and whether the shards were written while deciding or
//! spooled. A full build is one pass with text; an incremental rebuild is a decisions-only
//! pass over every row, then a pass with text over the rows of the shards it rewrites.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondArray, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Int64Type, UInt32Type};
use cg_model::{Decision, ReasonCode, Verdict};
use cg_proof::commitment::MemberKey;
use cg_proof::member_key::MemberKeySecret;
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{
    CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext,
    col, lit,
};
use futures_lite::StreamExt;
use rustc_hash::{FxHashMap, FxHashSet};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::config::{BuildConfig, Engine, ShardWrites};
use crate::direct::{DirectShards, Handed, Handover, StreamRows, ToRecord};
use crate::engine_error;
use crate::gate::Gate;
use crate::layout::{DecisionsOut, ShardOut, keyed_shard};
use crate::manifest::FileRef;
use crate::spec::GateRef;
use crate::spool::{ShardSpools, WrittenShard, spill_dir_for, spool_schema};

/// What a pass reads and writes.
pub(crate) struct PassSpec<'a> {
    /// Read and redact text for kept rows (false: decisions only).
    pub text: bool,
    /// Only rows of these shards are read (None: every row).
    pub only_shards: Option<Arc<FxHashSet<u32>>>,
    /// The dataset's temporary directory, where `decisions.parquet` and shards are written.
    pub dir: &'a Path,
    /// Write `decisions.parquet`.
    pub decisions: bool,
    /// The shards written (a text pass; empty: none).
    pub shards: Vec<u32>,
    /// Derive the member keys of the written shards' members in this key domain.
    pub member_keys: Option<(&'a MemberKeySecret, &'a str)>,
    /// Keep each row's (shard, fingerprint) by content id.
    pub collect: bool,
    /// Make the member roster (every member of the decision record, and whether a row of
    /// theirs went to a shard), salted with this secret's salt key in this key domain: an
    /// embedded pass collects its members while the record is written ([`PassOut::roster`]);
    /// a distributed pass writes it as a stream from its tasks' runs, `members.commitment` in
    /// `dir` ([`PassOut::commitment_written`], [`crate::commit_runs`]).
    pub roster: Option<(&'a MemberKeySecret, &'a str)>,
    /// A distributed build publishing to an object store: the prefix under which the
    /// executors put the shards they write, one prefix per attempt
    /// ([`crate::sink::SinkSpec::store`]); the pass then returns them as
    /// [`PassOut::stored`] instead of files in `dir/shards/`. Ignored by an embedded pass.
    pub store: Option<&'a crate::store::ObjectUrl>,
}

/// What a pass saw.
#[derive(Default)]
pub(crate) struct PassOut {
    /// Rows by (decision, reason, region).
    pub counts: BTreeMap<(String, String, String), u64>,
    /// Rows by decision.
    pub totals: BTreeMap<String, u64>,
    /// Rows by region, per decision in [`cg_model::Decision::ALL`] order: each row once
    /// (unlike `counts`, where a row with several reasons counts under each).
    pub regions: BTreeMap<String, [u64; 3]>,
    /// Every member with a kept row, ascending.
    pub kept_members: Vec<i64>,
    /// Every member of the decision record → whether a row of theirs is in a shard (what the
    /// roster commits to), when asked for ([`PassSpec::roster`]) of an embedded pass.
    pub roster: Option<FxHashMap<i64, bool>>,
    /// The member commitment a distributed pass wrote as a stream (`members.commitment` in
    /// its directory): the roster, or the VRF intervals of [`PassSpec::member_keys`].
    pub commitment_written: Option<crate::commit_runs::WrittenCommitment>,
    /// content id → (shard, redaction fingerprint), when collected.
    pub rows: FxHashMap<i64, (Option<u32>, i64)>,
    /// `decisions.parquet`, when written.
    pub decisions: Option<FileRef>,
    /// The shards written, by index.
    pub shards: Vec<(u32, FileRef)>,
    /// Of those, the ones an executor put on the object store ([`PassSpec::store`]), to be
    /// copied into the dataset there.
    pub stored: Vec<crate::store::StoredShard>,
    /// The member keys of the written shards' members, when asked for.
    pub member_keys: Vec<MemberKey>,
    /// What the engine's streams delivered.
    pub received: crate::publish::Received,
}

/// A shard index meaning "not kept".
const NO_SHARD: u32 = u32::MAX;
const HAS_ID: u8 = 1;
const HAS_MEMBER: u8 = 2;
const ERASED: u8 = 4;

/// One row's decision as the pass keeps it until the record is written (no text).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decided {
    content_id: i64,
    member_id: i64,
    fingerprint: i64,
    code: u32,
    shard: u32,
    region: u8,
    flags: u8,
    /// Where the row is in the input: the stream's index in the top bits, the row's number in
    /// its stream below ([`position`]). Streams read consecutive ranges of the file, so this
    /// orders rows as the file does.
    pos: u64,
}

/// A row's [`Decided::pos`].
fn position(stream: u64, row: u64) -> u64 {
    (stream << 40) | row
}

impl Decided {
    /// Record order: missing content ids first (in input order), then by content id, copies of
    /// one id in input order.
    fn key(&self) -> RecordKey {
        (self.flags & HAS_ID != 0, self.content_id, self.pos)
    }

    fn id(&self) -> Option<i64> {
        (self.flags & HAS_ID != 0).then_some(self.content_id)
    }

    fn member(&self) -> Option<i64> {
        (self.flags & HAS_MEMBER != 0).then_some(self.member_id)
    }
}

/// Bytes of a record in a spilled run.
pub(crate) const RECORD_BYTES: usize = 48;
/// A partition spills its records only once they fill an eighth of the budget (runs of a few
/// records would make the merge slow).
fn min_spilled_records(spools: &ShardSpools) -> usize {
    (spools.budget() / 8 / RECORD_BYTES).max(1)
}

impl Decided {
    fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        b[0..8].copy_from_slice(&self.content_id.to_le_bytes());
        b[8..16].copy_from_slice(&self.member_id.to_le_bytes());
        b[16..24].copy_from_slice(&self.fingerprint.to_le_bytes());
        b[24..28].copy_from_slice(&self.code.to_le_bytes());
        b[28..32].copy_from_slice(&self.shard.to_le_bytes());
        b[32] = self.region;
        b[33] = self.flags;
        b[40..48].copy_from_slice(&self.pos.to_le_bytes());
        b
    }

    fn decode(b: &[u8; RECORD_BYTES]) -> Decided {
        let i64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            i64::from_le_bytes(x)
        };
        let u32_at = |i: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&b[i..i + 4]);
            u32::from_le_bytes(x)
        };
        Decided {
            content_id: i64_at(0),
            member_id: i64_at(8),
            fingerprint: i64_at(16),
            code: u32_at(24),
            shard: u32_at(28),
            region: b[32],
            flags: b[33],
            pos: {
                let mut x = [0u8; 8];
                x.copy_from_slice(&b[40..48]);
                u64::from_le_bytes(x)
            },
        }
    }
}

/// One partition's records: sorted runs spilled to disk, and the rest in memory as sorted
/// blocks.
#[derive(Default)]
pub(crate) struct Records {
    /// Sorted runs on disk.
    spilled: Vec<PathBuf>,
    /// Sorted blocks (each sorted on its own; the merge orders them together).
    memory: Vec<Vec<Decided>>,
    /// For a run another process wrote ([`Records::on_disk`]): the SHA-256 its writer
    /// reported, checked against the bytes every read of it reads.
    reported: Option<String>,
}

/// Capacity of a pass thread's first block of records; each next block is twice as large, up
/// to [`MAX_BLOCK_RECORDS`] (and to the records a thread may hold before it spills).
const FIRST_BLOCK_RECORDS: usize = 1 << 16;
/// The largest block of records (48 MiB).
const MAX_BLOCK_RECORDS: usize = 1 << 20;

/// A pass thread's decision records in memory: full blocks, each sorted when it filled, and
/// the block filling now.
///
/// Blocks, not one growing vector: a vector doubling to hundreds of megabytes copies itself at
/// every step into fresh memory the kernel must clear first (~4 % of a 10 M-row build's CPU in
/// a `perf` profile, under `take_batch`'s reallocation). A block is allocated once, filled once
/// and sorted once; after a spill it is emptied and filled again.
#[derive(Default)]
struct RecordBlocks {
    full: Vec<Vec<Decided>>,
    filling: Vec<Decided>,
    /// Emptied blocks (after a spill), reused before any new one is allocated.
    spare: Vec<Vec<Decided>>,
    /// Capacity of the next block allocated.
    next_block: usize,
    /// Records held.
    len: usize,
}

impl RecordBlocks {
    /// Makes room for `rows` more records in the block being filled, so that pushing them
    /// allocates nothing; returns the bytes newly allocated (the caller counts them against
    /// its budget). A new block holds at least `rows`, else up to `max_block` records.
    fn make_room(&mut self, rows: usize, max_block: usize) -> usize {
        if self.filling.capacity() - self.filling.len() >= rows {
            return 0;
        }
        self.seal();
        if let Some(i) = self.spare.iter().position(|b| b.capacity() >= rows) {
            self.filling = self.spare.swap_remove(i);
            return 0;
        }
        let capacity = self
            .next_block
            .max(FIRST_BLOCK_RECORDS)
            .min(max_block.max(1))
            .max(rows);
        self.next_block = capacity.saturating_mul(2);
        self.filling = Vec::with_capacity(capacity);
        self.filling.capacity() * std::mem::size_of::<Decided>()
    }

    /// Adds a record; [`RecordBlocks::make_room`] made room for it first.
    fn push(&mut self, d: Decided) {
        self.filling.push(d);
        self.len += 1;
    }

    /// Sorts the block being filled and sets it with the full ones.
    fn seal(&mut self) {
        let mut block = std::mem::take(&mut self.filling);
        if block.is_empty() {
            if block.capacity() > 0 {
                self.spare.push(block);
            }
            return;
        }
        block.sort_unstable_by_key(Decided::key);
        self.full.push(block);
    }

    /// Takes blocks back after their records were written out: emptied, kept as spares (their
    /// capacity stays counted against the budget), and no record is held any more.
    fn recycle(&mut self, blocks: Vec<Vec<Decided>>) {
        for mut block in blocks {
            block.clear();
            self.spare.push(block);
        }
        self.len = 0;
    }

    /// The sorted blocks, the spare ones dropped.
    fn finish(mut self) -> Vec<Vec<Decided>> {
        self.seal();
        self.full
    }
}

impl Records {
    /// One sorted run written by another process (a distributed task), with the SHA-256 the
    /// task reported for it: every read of the run ([`Merged`]) hashes what it reads and fails
    /// at the run's end unless it is that, so a run changed between two reads (the merge into
    /// `decisions.parquet`, the scan for repeated ids, the roster) is never used.
    pub(crate) fn on_disk(path: PathBuf, sha256: String) -> Records {
        Records {
            spilled: vec![path],
            memory: Vec::new(),
            reported: Some(sha256),
        }
    }
}

/// One sorted input of [`Merged`].
enum RecordSource<'a> {
    Memory(std::slice::Iter<'a, Decided>),
    /// A run on disk, with the digest of what was read of it and the one its writer reported
    /// (a run of another process's).
    Run(PathBuf, BufReader<File>, Option<(Sha256, String)>),
}

impl RecordSource<'_> {
    fn next_record(&mut self) -> Result<Option<Decided>, BuildError> {
        match self {
            RecordSource::Memory(it) => Ok(it.next().copied()),
            RecordSource::Run(path, r, check) => {
                let mut b = [0u8; RECORD_BYTES];
                match r.read_exact(&mut b) {
                    Ok(()) => {
                        if let Some((digest, _)) = check {
                            digest.update(b);
                        }
                        Ok(Some(Decided::decode(&b)))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        // A partial record at the end was not hashed: a run cut short fails here.
                        if let Some((digest, reported)) = check.take()
                            && crate::layout::hex(&digest.finalize()) != reported
                        {
                            return Err(BuildError::Engine(format!(
                                "the decision records `{}` are not the bytes their task reported (changed after it wrote them?)",
                                path.display()
                            )));
                        }
                        Ok(None)
                    }
                    Err(e) => Err(BuildError::io(path, e)),
                }
            }
        }
    }
}

/// The records of all partitions (memory and spilled runs, each sorted), read as one sequence
/// in record order.
pub(crate) struct Merged<'a> {
    sources: Vec<RecordSource<'a>>,
    heads: Vec<Option<Decided>>,
    order: BinaryHeap<Reverse<(RecordKey, usize)>>,
}

type RecordKey = (bool, i64, u64);

impl<'a> Merged<'a> {
    pub(crate) fn new(records: &'a [Records]) -> Result<Merged<'a>, BuildError> {
        let mut sources = Vec::new();
        for r in records {
            for block in &r.memory {
                sources.push(RecordSource::Memory(block.iter()));
            }
            for path in &r.spilled {
                let f = File::open(path).map_err(|e| BuildError::io(path, e))?;
                sources.push(RecordSource::Run(
                    path.clone(),
                    BufReader::with_capacity(1 << 16, f),
                    r.reported.clone().map(|sha| (Sha256::new(), sha)),
                ));
            }
        }
        let heads = sources
            .iter_mut()
            .map(RecordSource::next_record)
            .collect::<Result<Vec<_>, _>>()?;
        let order = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|d| Reverse((d.key(), i))))
            .collect();
        Ok(Merged {
            sources,
            heads,
            order,
        })
    }
}

impl Iterator for Merged<'_> {
    type Item = Result<Decided, BuildError>;

    fn next(&mut self) -> Option<Result<Decided, BuildError>> {
        // The source's next record replaces its head in place (one sift down), rather than a
        // pop and a push.
        let mut top = self.order.peek_mut()?;
        let Reverse((_, i)) = *top;
        let d = self.heads[i]?;
        match self.sources[i].next_record() {
            Ok(next) => {
                self.heads[i] = next;
                match next {
                    Some(n) => *top = Reverse((n.key(), i)),
                    None => {
                        std::collections::binary_heap::PeekMut::pop(top);
                    }
                }
            }
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(d))
    }
}

/// Why a partition stopped early.
enum Halt {
    Failed(BuildError),
    /// A row without a content id, outside quarantine (its row number is found afterwards).
    MissingId,
    /// Another partition failed.
    Cancelled,
    /// Shards written while deciding cannot go on (the reason): the pass must run again
    /// through the spools.
    Respool(&'static str),
    /// The thread writing the record while the pass decides stopped (its error says why).
    RecordLost,
}

/// Why a pass writing shards while deciding runs again through the spools.
const NOT_IN_ORDER: &str = "content not in content_id order";

impl From<BuildError> for Halt {
    fn from(e: BuildError) -> Halt {
        Halt::Failed(e)
    }
}

impl From<Handover> for Halt {
    fn from(h: Handover) -> Halt {
        match h {
            Handover::Unsorted => Halt::Respool(NOT_IN_ORDER),
            Handover::OverBudget => Halt::Respool("shard writers over the memory budget"),
            Handover::RecordLost => Halt::RecordLost,
            Handover::Failed(e) => Halt::Failed(e),
        }
    }
}

/// What every partition shares.
struct Shared<'a> {
    /// The content file (for error messages).
    content: &'a Path,
    /// The build's shard count.
    shards: u32,
    /// A row without a content id is recorded as `invalid_record` (else the pass halts).
    quarantine: bool,
    gate: &'a Gate,
    shard_key: &'a [u8],
    text: bool,
    spools: Option<&'a ShardSpools>,
    /// The shards' writers when kept rows are written while deciding (content in id order);
    /// the spools then only hold the budget and the records' spills.
    direct: Option<&'a DirectShards<Decided>>,
    /// Whether shard `i` is spooled (a text pass writes these).
    spooled: Vec<bool>,
    stop: AtomicBool,
    progress: &'a dyn cg_model::progress::Progress,
    /// Batches, rows and bytes received from the engine, over every stream.
    received: [AtomicU64; 3],
    /// Streams that delivered at least one row.
    streams_with_rows: AtomicU64,
}

/// One pass thread's state, over the streams it takes in turn.
struct Partition {
    /// The index of the stream being read (the top bits of [`Decided::pos`]).
    index: u64,
    /// Rows seen so far.
    rows: u64,
    decided: RecordBlocks,
    /// Sorted runs of `decided` written out when the pass was over its budget.
    spilled: Vec<PathBuf>,
    shard_of: FxHashMap<i64, u32>,
    by_shard: Vec<Vec<u32>>,
    /// Whether a verdict code keeps its row (`None`: a code no verdict has).
    kept: FxHashMap<u32, Option<bool>>,
    /// The fingerprints of kept rows that scrub no mention, by phone hint.
    fingerprints: crate::gate::FingerprintMemo,
    /// The entities found in the text being redacted (a buffer reused from row to row).
    spans: Vec<cg_redact::Span>,
    /// The current stream's kept rows, by shard, when shards are written while deciding.
    stream: Option<StreamRows<Decided>>,
}

/// Codes the pass itself assigns.
struct Codes {
    invalid: u32,
    erased: u32,
    policy_error: u32,
}

fn codes() -> Codes {
    Codes {
        invalid: Verdict::exclude(ReasonCode::InvalidRecord).code(),
        erased: Verdict::exclude(ReasonCode::Erased).code(),
        policy_error: Verdict::exclude(ReasonCode::PolicyError).code(),
    }
}

/// Runs one pass.
pub(crate) fn run_pass(
    cfg: &BuildConfig,
    gate_ref: &Arc<GateRef>,
    shard_key: &[u8],
    spec: PassSpec<'_>,
    progress: &dyn cg_model::progress::Progress,
) -> Result<PassOut, BuildError> {
    let gate = gate_ref.gate().map_err(|e| BuildError::Gate(Box::new(e)))?;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(BuildError::Runtime)?;
    // Kept rows go straight to their shards' writers while the pass decides, unless the content
    // turns out not to be in `content_id` order (then the pass runs again with the spools).
    let mut direct = cfg.shard_writes == ShardWrites::Auto
        && spec.text
        && !spec.shards.is_empty()
        && matches!(cfg.engine, Engine::Embedded);
    loop {
        let Planned {
            streams,
            tasks,
            job,
        } = runtime.block_on(plan(cfg, gate_ref, shard_key, &spec, threads))?;
        if matches!(cfg.engine, Engine::Ballista(_)) {
            // The executors wrote the shards and the decision records; the stream is their
            // summaries (`crate::sink`).
            let mut out = crate::cluster::finish(
                cfg,
                gate,
                shard_key,
                &spec,
                crate::cluster::Job { streams, plan: job },
                &runtime,
                progress,
            )?;
            out.received.tasks = tasks as u64;
            return Ok(out);
        }
        match embedded_pass(
            cfg, gate, shard_key, &spec, progress, &runtime, streams, threads, direct,
        )? {
            Ok(out) => return Ok(out),
            Err(Respool(why)) => {
                direct = false;
                progress.stage(&format!("decide again ({why})"), None);
            }
        }
    }
}

/// The embedded engine's pass over the plan's `streams`; `direct`: shards written as streams
/// finish in order ([`crate::direct`]) instead of spooled. [`Respool`]: they could not be
/// (content out of order, writers over their memory limit), and nothing the pass wrote may
/// be kept.
#[allow(clippy::too_many_arguments)]
fn embedded_pass(
    cfg: &BuildConfig,
    gate: &Gate,
    shard_key: &[u8],
    spec: &PassSpec<'_>,
    progress: &dyn cg_model::progress::Progress,
    runtime: &tokio::runtime::Runtime,
    streams: Vec<SendableRecordBatchStream>,
    threads: usize,
    direct: bool,
) -> Result<Result<PassOut, Respool>, BuildError> {
    // Narrow records and shard rows: half the memory budget together; the rest is the engine's
    // batches in flight and the writers' buffers.
    let budget = (cfg.memory_mb.max(1) << 20) / 2;
    let spools = (spec.text && !spec.shards.is_empty())
        .then(|| ShardSpools::new(cfg.shards, budget, spill_dir_for(spec.dir)));
    let mut spooled = vec![false; cfg.shards as usize];
    for s in &spec.shards {
        if let Some(x) = spooled.get_mut(*s as usize) {
            *x = true;
        }
    }
    // Shards written while deciding: the record is written meanwhile too, by a thread of its
    // own fed each stream's records in order.
    let (direct_shards, from_streams) = if direct && spools.is_some() {
        let (to_record, from_streams) = std::sync::mpsc::sync_channel::<ToRecord<Decided>>(2);
        // The writers' row groups may hold as much as the spools would (at least 64 MiB).
        let writers_limit = budget.max(64 << 20);
        let shards = DirectShards::create(
            spec.dir,
            cfg.shards,
            &spec.shards,
            0,
            Some(to_record),
            writers_limit,
        )?;
        (Some(shards), Some(from_streams))
    } else {
        (None, None)
    };
    let mut record_thread = match (&direct_shards, from_streams) {
        (Some(direct), Some(from_streams)) => {
            Some(RecordThread::start(direct, from_streams, spec)?)
        }
        _ => None,
    };
    progress.figure(
        "shards written while deciding",
        u64::from(direct_shards.is_some()),
    );
    let shared = Shared {
        content: &cfg.content,
        shards: cfg.shards,
        quarantine: cfg.quarantine,
        gate,
        shard_key,
        text: spec.text,
        spools: spools.as_ref(),
        direct: direct_shards.as_ref(),
        spooled,
        stop: AtomicBool::new(false),
        progress,
        received: Default::default(),
        streams_with_rows: AtomicU64::new(0),
    };

    // 1. One thread per core, each taking the next stream until none is left: decide, route,
    // spool (or hand each finished stream's rows to the shard writers).
    let queue = StreamQueue::new(streams);
    let results: Vec<Result<Records, Halt>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(queue.len()).max(1))
            .map(|_| {
                let (shared, queue) = (&shared, &queue);
                scope.spawn(move || {
                    let out = runtime.block_on(consume(shared, queue));
                    if out.is_err() {
                        shared.stop.store(true, Ordering::Release);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Halt::Failed(BuildError::Engine(
                        "a pass thread panicked".into(),
                    )))
                })
            })
            .collect()
    });
    progress.figure(
        "pass streams with rows",
        shared.streams_with_rows.load(Ordering::Relaxed),
    );
    let mut runs = Vec::with_capacity(results.len());
    let mut missing_id = false;
    let mut respool = None;
    let mut record_lost = false;
    let mut failure = None;
    for r in results {
        match r {
            Ok(run) => runs.push(run),
            Err(Halt::Failed(e)) => failure = failure.or(Some(e)),
            Err(Halt::MissingId) => missing_id = true,
            Err(Halt::Respool(why)) => respool = respool.or(Some(why)),
            Err(Halt::RecordLost) => record_lost = true,
            Err(Halt::Cancelled) => {}
        }
    }
    if record_lost && failure.is_none() {
        return Err(record_failure(record_thread.take()));
    }
    if let Some(e) = failure {
        // A row the gate could not decide is named by its row number too (a second, narrow
        // scan finds it by content id), like a missing or duplicate id.
        if let Some((id, column)) = missing_value(&e)
            && let Ok(rows) = runtime.block_on(locate(cfg, Some(id)))
            && let Some(&row) = rows.first()
        {
            return Err(BuildError::BadRow {
                file: cfg.content.display().to_string(),
                row,
                column: column.into(),
                message: format!(
                    "missing a value (content id {id}); use --quarantine to exclude such rows"
                ),
            });
        }
        return Err(e);
    }
    if missing_id {
        return Err(missing_content_id(cfg, runtime));
    }
    if let Some(why) = respool {
        // Nothing this pass wrote is kept (the record's writer is stopped and joined as it
        // goes out of scope, before a second pass writes the same files).
        return Ok(Err(Respool(why)));
    }
    // Every stream was handed over and written in order (else the pass ends here).
    let direct_writers = match &direct_shards {
        Some(d) => match d.take_writers(queue.len() as u64) {
            Ok(writers) => Some(std::sync::Mutex::new(writers)),
            Err(Handover::Failed(e)) => return Err(e),
            Err(_) => return Err(record_failure(record_thread.take())),
        },
        None => None,
    };

    // With quarantine the later copies of a repeated content id must be known before the
    // shards are written (they are left out); without, a repeated id fails the build, which
    // the record's own merge finds (`Record::first_repeated`) — no separate pass over every
    // record first.
    // (Shards written while deciding saw every id rise strictly: none repeats, and their
    // records went to the record's writer, not to `runs`.)
    let later_copies = if cfg.quarantine && direct_writers.is_none() {
        find_duplicates(cfg, &runs, runtime)?
    } else {
        FxHashSet::default()
    };

    // 3. The record and the shards, at once.
    progress.stage("write", None);
    let next_shard = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let (record, written) = std::thread::scope(|scope| {
        let record = scope.spawn(|| match record_thread {
            // Written while the pass decided: its last rows and footer.
            Some(thread) => thread.join(),
            None => write_record(
                Merged::new(&runs)?,
                &later_copies,
                spec.decisions.then_some(spec.dir),
                spec.collect,
                spec.roster.is_some(),
            ),
        });
        let writers: Vec<_> = match &spools {
            None => Vec::new(),
            Some(spools) => (0..threads)
                .map(|_| {
                    let (next_shard, failed, duplicates, spec, direct_writers) =
                        (&next_shard, &failed, &later_copies, &spec, &direct_writers);
                    scope.spawn(move || {
                        let mut done = Vec::new();
                        while !failed.load(Ordering::Acquire) {
                            let outcome = match direct_writers {
                                // Shards written while deciding: their last rows and footers.
                                Some(writers) => {
                                    let next = writers
                                        .lock()
                                        .map_err(|_| {
                                            BuildError::Engine(
                                                "the shard writers' list was poisoned".into(),
                                            )
                                        })
                                        .map(|mut w| w.pop());
                                    match next {
                                        Ok(None) => break,
                                        Ok(Some((shard, writer))) => writer
                                            .finish()
                                            .map(|written| shard_written(spec, shard, written)),
                                        Err(e) => Err(e),
                                    }
                                }
                                None => {
                                    let Some(&shard) =
                                        spec.shards.get(next_shard.fetch_add(1, Ordering::AcqRel))
                                    else {
                                        break;
                                    };
                                    write_shard(spools, spec, shard, duplicates)
                                }
                            };
                            match outcome {
                                Ok(w) => done.push(w),
                                Err(e) => {
                                    failed.store(true, Ordering::Release);
                                    return Err(e);
                                }
                            }
                        }
                        Ok(done)
                    })
                })
                .collect(),
        };
        let join_err = || BuildError::Engine("a writer thread panicked".into());
        let record = record.join().unwrap_or_else(|_| Err(join_err()));
        let written: Result<Vec<_>, BuildError> = writers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(join_err())))
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.into_iter().flatten().collect());
        (record, written)
    });
    let record = record?;
    if !cfg.quarantine
        && let Some(id) = record.first_repeated
    {
        return Err(duplicate_content_id(cfg, runtime, id));
    }
    // Shards written while deciding rest on no id repeating (checked row by row): the record
    // checks it again, and a copy there fails the build rather than publish those shards.
    if direct_writers.is_some()
        && let Some(id) = record.first_repeated
    {
        return Err(BuildError::Engine(format!(
            "content id {id} repeats in a pass that wrote its shards in id order"
        )));
    }
    let mut written = written?;
    written.sort_by_key(|w: &ShardWritten| w.shard);
    let [batches, rows, bytes] = &shared.received;
    let mut out = PassOut {
        kept_members: record.kept_members,
        roster: record.roster,
        rows: record.rows,
        decisions: record.decisions,
        received: crate::publish::Received {
            batches: batches.load(Ordering::Relaxed),
            rows: rows.load(Ordering::Relaxed),
            bytes: bytes.load(Ordering::Relaxed),
            member_keys: 0,
            tasks: 0,
        },
        ..PassOut::default()
    };
    if spools.is_some() {
        // Every member with a kept row in a written shard is in exactly that shard.
        let in_shards: usize = written.iter().map(|w| w.members).sum();
        let expected = out
            .kept_members
            .iter()
            .filter(|m| shared.spooled[keyed_shard(shard_key, **m, cfg.shards) as usize])
            .count();
        if in_shards != expected {
            return Err(BuildError::Engine(format!(
                "the shards hold {in_shards} members, the decision record {expected}"
            )));
        }
    }
    for w in written {
        out.shards.push((w.shard, w.file));
        out.member_keys.extend(w.keys);
    }
    tally(&mut out, record.counts, gate);
    Ok(Ok(out))
}

/// Why a pass that wrote shards while deciding must run again through the spools.
struct Respool(&'static str);

/// The error of a record writer that stopped while the pass handed it streams: the cause
/// (a full disk, say), not the closed channel the pass saw.
fn record_failure(thread: Option<RecordThread<'_>>) -> BuildError {
    match thread.map(RecordThread::join) {
        Some(Err(e)) => e,
        _ => BuildError::Engine("the decision record's writer stopped without an error".into()),
    }
}

/// The decision record's writer while shards are written as the pass decides: a thread fed
/// each stream's records in order ([`crate::direct::Handed`]). Stopped (its channel closed
/// without an end) and joined on every path out of the pass, so it never finishes a record
/// from part of the rows, and is done before a second pass writes the same file.
struct RecordThread<'a> {
    direct: &'a DirectShards<Decided>,
    handle: Option<std::thread::JoinHandle<Result<Record, BuildError>>>,
}

impl<'a> RecordThread<'a> {
    fn start(
        direct: &'a DirectShards<Decided>,
        from_streams: std::sync::mpsc::Receiver<ToRecord<Decided>>,
        spec: &PassSpec<'_>,
    ) -> Result<RecordThread<'a>, BuildError> {
        let dir = spec.decisions.then(|| spec.dir.to_path_buf());
        let (collect, roster) = (spec.collect, spec.roster.is_some());
        let handle = std::thread::Builder::new()
            .name("cg-record".into())
            .spawn(move || {
                write_record(
                    Handed::new(from_streams),
                    &FxHashSet::default(),
                    dir.as_deref(),
                    collect,
                    roster,
                )
            })
            .map_err(|e| {
                BuildError::Engine(format!("cannot start the decision record's writer: {e}"))
            })?;
        Ok(RecordThread {
            direct,
            handle: Some(handle),
        })
    }

    /// The record, complete once [`DirectShards::take_writers`] told the thread so (else the
    /// channel is closed here and the thread's error is returned: it never waits for ever).
    fn join(mut self) -> Result<Record, BuildError> {
        self.direct.abandon();
        let handle = self
            .handle
            .take()
            .ok_or_else(|| BuildError::Engine("the decision record's writer was joined".into()))?;
        handle.join().unwrap_or_else(|_| {
            Err(BuildError::Engine(
                "the decision record's writer panicked".into(),
            ))
        })
    }
}

impl Drop for RecordThread<'_> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.direct.abandon();
            let _ = handle.join();
        }
    }
}

/// A repeated content id outside quarantine: the error naming the file and the rows of its
/// copies (found by a second, narrow scan).
fn duplicate_content_id(
    cfg: &BuildConfig,
    runtime: &tokio::runtime::Runtime,
    id: i64,
) -> BuildError {
    match runtime.block_on(locate(cfg, Some(id))) {
        Ok(rows) => bad_content_id(
            cfg,
            &rows,
            format!("duplicate content id {id}"),
            QUARANTINE_HINT,
        ),
        Err(e) => e,
    }
}

/// The positions of the later copies of repeated content ids in `runs` (quarantined by the
/// caller), or the error naming the rows of a repeated or missing id when the build cannot
/// quarantine them.
pub(crate) fn find_duplicates(
    cfg: &BuildConfig,
    runs: &[Records],
    runtime: &tokio::runtime::Runtime,
) -> Result<FxHashSet<u64>, BuildError> {
    // Duplicate content ids: adjacent in record order, copies in input order. The first copy
    // is the row; every later copy is the violation (quarantined, or an error).
    let mut duplicates: FxHashSet<i64> = FxHashSet::default();
    let mut later_copies: FxHashSet<u64> = FxHashSet::default();
    let mut previous: Option<i64> = None;
    let mut without_id = false;
    for d in Merged::new(runs)? {
        let d = d?;
        if let Some(id) = d.id() {
            if previous == Some(id) {
                duplicates.insert(id);
                later_copies.insert(d.pos);
            }
            previous = Some(id);
        } else {
            without_id = true;
        }
    }
    // A distributed plan routes rows by shard, not in input order: which copy of an id came
    // first, and the order of rows without one, are unknown there. Such rows are quarantined
    // by an embedded build only; a distributed one stops, naming them.
    if cfg.quarantine
        && matches!(cfg.engine, Engine::Ballista(_))
        && (without_id || !duplicates.is_empty())
    {
        let (id, what) = match duplicates.iter().min() {
            Some(id) => (Some(*id), format!("duplicate content id {id}")),
            None => (None, "missing content id".to_owned()),
        };
        let rows = runtime.block_on(locate(cfg, id))?;
        return Err(bad_content_id(
            cfg,
            &rows,
            format!(
                "{what}: a distributed build cannot quarantine it (its tasks see rows by shard, not in input order)"
            ),
            "fix the input or build with the embedded engine",
        ));
    }
    if !cfg.quarantine
        && let Some(id) = duplicates.iter().min().copied()
    {
        return Err(duplicate_content_id(cfg, runtime, id));
    }
    // Only a distributed pass gets this far with a row without an id outside quarantine (its
    // tasks record such rows; an embedded pass halts on the first).
    if without_id && !cfg.quarantine {
        return Err(missing_content_id(cfg, runtime));
    }
    Ok(later_copies)
}

/// A row without a content id outside quarantine, named by its row number.
fn missing_content_id(cfg: &BuildConfig, runtime: &tokio::runtime::Runtime) -> BuildError {
    match runtime.block_on(locate(cfg, None)) {
        Ok(rows) => bad_content_id(cfg, &rows, "missing content id".into(), QUARANTINE_HINT),
        Err(e) => e,
    }
}

/// Adds the record's counts by (verdict code, region) to `out` by decision, reason and region.
pub(crate) fn tally(out: &mut PassOut, counts: FxHashMap<(u32, u8), u64>, gate: &Gate) {
    for ((code, region), n) in counts {
        let verdict = cg_policy::verdict_of(code);
        let decision = verdict.decision();
        let region = gate.region_label(region);
        *out.totals.entry(decision.as_str().to_owned()).or_default() += n;
        out.regions.entry(region.to_owned()).or_default()[decision.index()] += n;
        for r in verdict.reasons() {
            *out.counts
                .entry((
                    decision.as_str().to_owned(),
                    r.as_str().to_owned(),
                    region.to_owned(),
                ))
                .or_default() += n;
        }
    }
}

/// The plan's output streams: one per partition embedded, one from a Ballista scheduler.
async fn plan(
    cfg: &BuildConfig,
    gate_ref: &Arc<GateRef>,
    shard_key: &[u8],
    spec: &PassSpec<'_>,
    threads: usize,
) -> Result<Planned, BuildError> {
    // A bounded memory pool for the engine's own operators (`BuildConfig::memory_mb`).
    let pool = Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(
        cfg.memory_mb.max(1) << 20,
    ));
    let runtime_env = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .build_arc()
        .map_err(BuildError::from)?;
    let session = match &cfg.engine {
        Engine::Embedded => {
            SessionContext::new_with_config_rt(embedded_session_config(threads), runtime_env)
        }
        Engine::Ballista(_) => {
            let (address, partitions) = cfg
                .engine
                .ballista()
                .ok_or_else(|| BuildError::Engine("a Ballista engine without an address".into()))?;
            remote_session(address, partitions, cfg.engine.shuffle_mb(), &cfg.content).await?
        }
    };
    let gate_udf = crate::udf::gate_udf(gate_ref.clone());
    session.register_udf(gate_udf.clone());
    let df = scan(&session, cfg).await?;
    let has_mentions = df.schema().field_with_unqualified_name("mentions").is_ok();
    let mentions = if has_mentions {
        col("mentions")
    } else {
        lit(ScalarValue::Null)
    };
    let mut columns = vec![
        datafusion::prelude::cast(col("content_id"), DataType::Int64).alias("content_id"),
        datafusion::prelude::cast(col("member_id"), DataType::Int64).alias("member_id"),
        col("kind"),
        col("created_at"),
        mentions.alias("mentions"),
    ];
    if spec.text {
        columns.push(col("text"));
    }
    let engine = BuildError::from;
    let mut df = df.select(columns).map_err(engine)?;
    if let Some(keep) = &spec.only_shards {
        let filter = crate::udf::shard_filter(shard_key, cfg.shards, keep.clone());
        df = df
            .filter(filter.call(vec![col("member_id")]))
            .map_err(engine)?;
    }
    // A distributed plan routes rows by their author's shard (`cg_shard`) and hands it to the
    // UDFs, which then need not hash the author again to find their facts.
    let routed = matches!(cfg.engine, Engine::Ballista(_));
    if routed {
        // Each shard's rows go to task `shard mod tasks` (`crate::udf::balanced_routes`).
        let tasks = session.state().config().target_partitions();
        let routing = Routing {
            shard_of: crate::udf::shard_of(shard_key, cfg.shards),
            routes: Arc::new(crate::udf::balanced_routes(cfg.shards, tasks).map_err(engine)?),
        };
        let source = df.clone();
        df = route_by_shard(&session, df, &routing, spec.text)?;
        // No process holds every member's mention status: the members the rows name are
        // resolved by a narrow join, where their shards are (`crate::mention_join`).
        if has_mentions {
            df = resolve_mentions(&session, df, source, &routing, gate_ref)?;
        }
    }
    let with_shard = |mut args: Vec<datafusion::prelude::Expr>| {
        if routed {
            args.push(col(crate::sink::SHARD_COLUMN));
        }
        args
    };
    // The gate decides in the plan; the writer (`take_batch`, on the thread that reads the
    // stream, or a distributed task's sink) fingerprints and redacts the rows it keeps, with
    // the author it has already looked up.
    let df = df
        .with_column(
            "outcome",
            gate_udf.call(with_shard(vec![
                col("content_id"),
                col("member_id"),
                col("kind"),
                col("created_at"),
                col("mentions"),
            ])),
        )
        .map_err(engine)?;
    let mut keep = vec![
        col("content_id"),
        col("member_id"),
        col("kind"),
        col("created_at"),
        col("outcome"),
        col("mentions"),
    ];
    if spec.text {
        keep.push(col("text"));
    }
    let streams = match cfg.engine {
        Engine::Embedded => {
            let df = df.select(keep).map_err(engine)?;
            let task_ctx = Arc::new(df.task_ctx());
            let physical = df
                .create_physical_plan()
                .await
                .map_err(|e| engine_error(&cfg.content, e))?;
            streams_in_file_order(physical.as_ref())?;
            datafusion::physical_plan::execute_stream_partitioned(physical, task_ctx)
                .map(|streams| (streams, None))
        }
        Engine::Ballista(_) => {
            // The executors write the shards and the records (`crate::sink`): the client gets
            // one summary row per file.
            keep.push(col(crate::sink::SHARD_COLUMN));
            keep.push(col(crate::sink::ROUTE_COLUMN));
            let decided = df.select(keep).map_err(engine)?.into_unoptimized_plan();
            let dir = std::fs::canonicalize(spec.dir).map_err(|e| BuildError::io(spec.dir, e))?;
            // Every file a task creates is created in the scratch directory; the client
            // removes it before publishing (and `publish` when the build fails).
            let scratch = crate::sink::scratch_dir(&dir);
            if scratch.exists() {
                std::fs::remove_dir_all(&scratch).map_err(|e| BuildError::io(&scratch, e))?;
            }
            std::fs::create_dir(&scratch).map_err(|e| BuildError::io(&scratch, e))?;
            let sink = crate::sink::SinkSpec {
                dir,
                scratch,
                shards: cfg.shards,
                key: crate::layout::hex(shard_key),
                text: spec.text,
                write: if spec.text {
                    spec.shards.clone()
                } else {
                    Vec::new()
                },
                memory_mb: cfg.memory_mb,
                member_keys: spec
                    .member_keys
                    .map(|(secret, domain)| crate::sink::SinkKeys {
                        domain: domain.to_owned(),
                        public_key: cg_proof::hex(&secret.public_key()),
                    }),
                store: spec.store.map(|prefix| prefix.to_string()),
            };
            let node =
                crate::sink::ShardSinkNode::new(sink, gate_ref.clone(), decided).map_err(engine)?;
            // The physical plan is the cluster's job: kept, so that a client that stops
            // waiting can cancel it (`crate::cluster`).
            let job = DataFrame::new(session.state(), node.into_plan())
                .create_physical_plan()
                .await;
            job.and_then(|job| {
                datafusion::physical_plan::execute_stream(job.clone(), session.task_ctx())
                    .map(|stream| (vec![stream], Some(job)))
            })
        }
    };
    let tasks = session.state().config().target_partitions();
    streams
        .map(|(streams, job)| Planned {
            streams,
            tasks,
            job,
        })
        .map_err(|e| engine_error(&cfg.content, e))
}

/// A pass's plan, executing.
struct Planned {
    /// One stream per partition (embedded), or the cluster's summaries (distributed).
    streams: Vec<SendableRecordBatchStream>,
    /// Tasks per stage.
    tasks: usize,
    /// A distributed build's job (its physical plan), for cancelling it.
    job: Option<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
}

/// Streams per thread of an embedded pass: more streams than threads, pulled by the threads
/// in turn ([`StreamQueue`]), so that one thread is not left alone with the file's last range.
/// A Parquet range holds whole row groups (a range without one is an empty stream), so the
/// last stretch is at most about one row group. A stream not yet taken holds no buffers.
const STREAMS_PER_THREAD: usize = 16;

/// Content files from this size on are read as several ranges (DataFusion's default is 10 MB).
const SPLIT_FILES_FROM_BYTES: usize = 1 << 20;

/// An embedded pass's session: [`STREAMS_PER_THREAD`] streams a thread, each one consecutive
/// range of the file (record order rests on it, see `Decided::pos`), so no round-robin
/// repartition dealing batches out in turn; a file too small to split is one stream.
fn embedded_session_config(threads: usize) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads * STREAMS_PER_THREAD)
        .with_round_robin_repartition(false)
        .with_repartition_file_min_size(SPLIT_FILES_FROM_BYTES);
    // DataFusion 55's file streams steal row groups from each other by default, which makes a
    // stream's rows an interleaving of ranges: a row's position would no longer follow the
    // file (which copy of a repeated id comes first), nor could shards be written in stream
    // order. Each stream reads its own range.
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    config
}

/// Checks that each output stream of an embedded plan is one range of the input, in its order:
/// every operator has at most one input, keeps its order and its partitions. Record order
/// (which copy of a content id came first, where rows without one go) depends on it; a plan
/// that dealt rows between streams fails the build instead of misordering them.
fn streams_in_file_order(
    plan: &dyn datafusion::physical_plan::ExecutionPlan,
) -> Result<(), BuildError> {
    use datafusion::physical_plan::ExecutionPlanProperties;
    let children = plan.children();
    let kept = match children.as_slice() {
        [] => true,
        [child] => {
            plan.maintains_input_order().first() == Some(&true)
                && plan.output_partitioning().partition_count()
                    == child.output_partitioning().partition_count()
        }
        _ => false,
    };
    if !kept {
        return Err(BuildError::Engine(format!(
            "the embedded plan's {} does not keep each stream's rows in file order",
            plan.name()
        )));
    }
    children
        .into_iter()
        .try_for_each(|child| streams_in_file_order(child.as_ref()))
}

/// The streams of a pass, taken one at a time by the threads that consume them, in order.
struct StreamQueue {
    /// The index of the first stream in the input.
    first: u64,
    streams: Vec<std::sync::Mutex<Option<SendableRecordBatchStream>>>,
    next: AtomicUsize,
}

impl StreamQueue {
    fn new(streams: Vec<SendableRecordBatchStream>) -> StreamQueue {
        StreamQueue {
            first: 0,
            streams: streams
                .into_iter()
                .map(|s| std::sync::Mutex::new(Some(s)))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// One stream, the `index`th of the input (a distributed task's partition).
    fn one(stream: SendableRecordBatchStream, index: usize) -> StreamQueue {
        StreamQueue {
            first: index as u64,
            ..StreamQueue::new(vec![stream])
        }
    }

    fn len(&self) -> usize {
        self.streams.len()
    }

    /// The next stream no thread has taken, with its index.
    fn take(&self) -> Result<Option<(u64, SendableRecordBatchStream)>, BuildError> {
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        let Some(slot) = self.streams.get(index) else {
            return Ok(None);
        };
        let stream = slot
            .lock()
            .map_err(|_| BuildError::Engine("a pass stream's slot was poisoned".into()))?
            .take()
            .ok_or_else(|| BuildError::Engine(format!("pass stream {index} taken twice")))?;
        Ok(Some((self.first + index as u64, stream)))
    }
}

/// A distributed plan's content, routed by its author's shard so that each task decides whole
/// shards and loads the member facts of those shards only (`crate::facts_data`).
///
/// A hash repartition the plan asks for is dropped by DataFusion's distribution rule when
/// nothing above it needs it, so the routing is a join that does: the table of the shards'
/// routes `RIGHT JOIN` content on `cg_route(cg_shard(member_id))`, planned as a partitioned
/// hash join (the client's config sets the single-partition thresholds to 0), which
/// hash-partitions both sides by route — in Ballista, a shuffle by shard, each shard to task
/// `shard mod tasks` ([`crate::udf::balanced_routes`]). The route table is the build side;
/// every content row is kept, one without a member (no shard, no route) too.
fn route_by_shard(
    session: &SessionContext,
    df: DataFrame,
    routing: &Routing,
    text: bool,
) -> Result<DataFrame, BuildError> {
    let df = df
        .with_column(
            crate::sink::SHARD_COLUMN,
            routing.shard_of.call(vec![col("member_id")]),
        )
        .map_err(BuildError::from)?;
    let mut columns = vec![
        "content_id",
        "member_id",
        "kind",
        "created_at",
        "mentions",
        crate::sink::SHARD_COLUMN,
        crate::sink::ROUTE_COLUMN,
    ];
    if text {
        columns.push("text");
    }
    join_by_shard(
        session,
        df,
        routing,
        (crate::sink::SHARD_COLUMN, crate::sink::ROUTE_COLUMN),
        &columns,
    )
}

/// How a distributed plan routes rows by shard: each member's keyed shard (`cg_shard`), and the
/// value each shard is routed by (`cg_route`, [`crate::udf::balanced_routes`]).
struct Routing {
    shard_of: datafusion::logical_expr::ScalarUDF,
    routes: Arc<Vec<u64>>,
}

/// `df` routed by its shard column `by.0` ([`route_by_shard`]'s join with the table of the
/// shards' routes, on the route of `by.0` added as column `by.1`), keeping `columns`.
fn join_by_shard(
    session: &SessionContext,
    df: DataFrame,
    routing: &Routing,
    by: (&str, &str),
    columns: &[&str],
) -> Result<DataFrame, BuildError> {
    use datafusion::logical_expr::LogicalPlanBuilder;
    let engine = BuildError::from;
    let (shard, route) = by;
    let df = df
        .with_column(
            route,
            crate::udf::route(routing.routes.clone()).call(vec![col(shard)]),
        )
        .map_err(engine)?;
    let routes: Vec<Vec<datafusion::prelude::Expr>> =
        routing.routes.iter().map(|r| vec![lit(*r)]).collect();
    let table = LogicalPlanBuilder::values(routes)
        .and_then(|b| b.project(vec![col("column1").alias("cg_route_no")]))
        .and_then(|b| b.build())
        .map_err(engine)?;
    let shard_routes = DataFrame::new(session.state(), table);
    shard_routes
        .join(
            df,
            datafusion::logical_expr::JoinType::Right,
            &["cg_route_no"],
            &[route],
            None,
        )
        .and_then(|df| df.select(columns.iter().map(|c| col(*c))))
        .map_err(engine)
}

/// `content` (routed by its author's shard) with each row's mentions resolved by the narrow
/// join ([`crate::mention_join`]): the distinct (author shard, mentioned member) pairs of
/// `source` (the same rows, unrouted) routed by the mentioned member's shard, resolved there
/// against that shard's mentions file (`cg_mention_status`), and routed back by the author's
/// shard to the task that decides those rows.
fn resolve_mentions(
    session: &SessionContext,
    content: DataFrame,
    source: DataFrame,
    routing: &Routing,
    gate_ref: &Arc<GateRef>,
) -> Result<DataFrame, BuildError> {
    use crate::mention_join::{AUTHOR_ROUTE, AUTHOR_SHARD, MENTIONED, MENTIONED_SHARD, STATUS};
    let engine = BuildError::from;
    let shard_of = &routing.shard_of;
    let pairs = source
        .select(vec![
            shard_of.call(vec![col("member_id")]).alias(AUTHOR_SHARD),
            crate::udf::mention_ids()
                .call(vec![col("mentions")])
                .alias(MENTIONED),
        ])
        .and_then(|df| df.unnest_columns(&[MENTIONED]))
        .and_then(|df| {
            df.filter(
                col(AUTHOR_SHARD)
                    .is_not_null()
                    .and(col(MENTIONED).is_not_null()),
            )
        })
        .and_then(|df| df.distinct())
        .and_then(|df| df.with_column(MENTIONED_SHARD, shard_of.call(vec![col(MENTIONED)])))
        .map_err(engine)?;
    let by_mentioned = join_by_shard(
        session,
        pairs,
        routing,
        (MENTIONED_SHARD, "cg_mentioned_route"),
        &[AUTHOR_SHARD, MENTIONED, MENTIONED_SHARD],
    )?;
    let status = crate::udf::mention_status(gate_ref.clone());
    let resolved = by_mentioned
        .select(vec![
            col(AUTHOR_SHARD),
            col(MENTIONED),
            status
                .call(vec![col(MENTIONED), col(MENTIONED_SHARD)])
                .alias(STATUS),
        ])
        .map_err(engine)?;
    let resolved = join_by_shard(
        session,
        resolved,
        routing,
        (AUTHOR_SHARD, AUTHOR_ROUTE),
        &[AUTHOR_SHARD, MENTIONED, STATUS, AUTHOR_ROUTE],
    )?;
    let node = crate::mention_join::MentionJoinNode::try_new(
        content.into_unoptimized_plan(),
        resolved.into_unoptimized_plan(),
    )
    .map_err(engine)?;
    Ok(DataFrame::new(session.state(), node.into_plan()))
}

/// Records a CSV content file's column types are inferred from (DataFusion's default).
const CSV_SCHEMA_RECORDS: usize = 1000;

/// The column types of a local CSV content file, inferred from its first records as DataFusion
/// would, but from records read whole: DataFusion cuts the file at every line break before it
/// infers, so a quoted text holding one in the first records made the build fail. An object
/// in a store is left to DataFusion (`None`).
fn local_csv_schema(content: &Path) -> Result<Option<arrow::datatypes::Schema>, BuildError> {
    if crate::store::ObjectUrl::of_path(content).is_some() {
        return Ok(None);
    }
    let file = File::open(content).map_err(|e| BuildError::io(content, e))?;
    let (schema, _) = arrow::csv::reader::Format::default()
        .with_header(true)
        .with_quote(b'"')
        .infer_schema(BufReader::new(file), Some(CSV_SCHEMA_RECORDS))
        .map_err(|e| engine_error(content, e.into()))?;
    Ok(Some(schema))
}

/// The content file as a DataFrame, with its required columns checked.
async fn scan(session: &SessionContext, cfg: &BuildConfig) -> Result<DataFrame, BuildError> {
    // Absolute: a distributed build's executors resolve the path themselves. An object is
    // read through its store, registered here for this session (a scheduler and executors
    // make theirs from their own environment: `store::EnvObjectStores`).
    if let Some(url) = crate::store::ObjectUrl::of_path(&cfg.content) {
        let url = url?;
        session.register_object_store(&url.bucket_url()?, url.store()?);
    }
    let scan = std::fs::canonicalize(&cfg.content).unwrap_or_else(|_| cfg.content.clone());
    let path = scan
        .to_str()
        .ok_or_else(|| BuildError::Input("content path is not UTF-8".into()))?;
    let ext = cfg
        .content
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let ext_dot = format!(".{ext}");
    let df = match cg_io::Format::from_path(&cfg.content)? {
        cg_io::Format::Parquet => {
            session
                .read_parquet(path, ParquetReadOptions::default().file_extension(&ext_dot))
                .await
        }
        cg_io::Format::Csv => {
            // Arrow's CSV reader trusts fields cut from bytes it validated together: make sure
            // the file is UTF-8 first (see `cg_io::check_utf8`).
            crate::store::check_utf8(&cfg.content)?;
            // Quoted text may hold line breaks: the file is read from its start, never as
            // ranges that would each begin after some line break (a break inside a text would
            // cut a row in two). One stream, so a CSV build decides on one core.
            let schema = local_csv_schema(&cfg.content)?;
            let mut options = CsvReadOptions::new()
                .has_header(true)
                .newlines_in_values(true)
                .file_extension(&ext_dot);
            if let Some(schema) = &schema {
                options = options.schema(schema);
            }
            session.read_csv(path, options).await
        }
        cg_io::Format::Jsonl => {
            session
                .read_json(path, JsonReadOptions::default().file_extension(&ext_dot))
                .await
        }
    }
    .map_err(|e| engine_error(&cfg.content, e))?;
    for required in ["content_id", "member_id", "kind", "created_at", "text"] {
        if df.schema().field_with_unqualified_name(required).is_err() {
            return Err(BuildError::MissingColumn {
                file: cfg.content.display().to_string(),
                column: required.into(),
            });
        }
    }
    Ok(df)
}

/// The rows of the content file a pass reads (those of `only` shards, when given), counted on
/// this machine: a Parquet file's from its metadata, a filtered pass's from the `member_id`
/// column. A distributed pass checks its tasks' records against it, so an output Ballista
/// failed to list can never go unnoticed.
pub(crate) async fn count_rows(
    cfg: &BuildConfig,
    shard_key: &[u8],
    only: Option<&Arc<FxHashSet<u32>>>,
) -> Result<u64, BuildError> {
    let session = SessionContext::new();
    let mut df = scan(&session, cfg).await?;
    if let Some(keep) = only {
        let filter = crate::udf::shard_filter(shard_key, cfg.shards, keep.clone());
        df = df
            .filter(filter.call(vec![datafusion::prelude::cast(
                col("member_id"),
                DataType::Int64,
            )]))
            .map_err(BuildError::from)?;
    }
    let rows = df
        .count()
        .await
        .map_err(|e| engine_error(&cfg.content, e))?;
    Ok(rows as u64)
}

/// The 1-based rows (in file order, a CSV header not counted) whose content id is `id`, or is
/// missing for `None`: a second, narrow scan made only to name the rows of a bad input.
async fn locate(cfg: &BuildConfig, id: Option<i64>) -> Result<Vec<u64>, BuildError> {
    let session = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let df = scan(&session, cfg)
        .await?
        .select(vec![
            datafusion::prelude::cast(col("content_id"), DataType::Int64).alias("content_id"),
        ])
        .map_err(BuildError::from)?;
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|e| engine_error(&cfg.content, e))?;
    let mut row = 0u64;
    let mut found = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| engine_error(&cfg.content, e))?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        for i in 0..ids.len() {
            row += 1;
            if ids.is_valid(i).then(|| ids.value(i)) == id && found.len() < 10 {
                found.push(row);
            }
        }
    }
    Ok(found)
}

/// A bad or repeated content id, naming the rows it is on.
/// The content id and column of a row the gate refused for a missing value, wherever the
/// engine wrapped the gate's error.
fn missing_value(e: &BuildError) -> Option<(i64, &'static str)> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(crate::gate::RowError::MissingValue { content_id, column }) = c.downcast_ref() {
            return Some((*content_id, column));
        }
        if let Some(datafusion::error::DataFusionError::External(inner)) = c.downcast_ref() {
            cause = Some(inner.as_ref());
            continue;
        }
        cause = c.source();
    }
    None
}

/// What a bad content id's error suggests.
const QUARANTINE_HINT: &str = "use --quarantine to exclude such rows";

fn bad_content_id(cfg: &BuildConfig, rows: &[u64], what: String, hint: &str) -> BuildError {
    let list: Vec<String> = rows.iter().map(u64::to_string).collect();
    let at = match list.len() {
        0 => String::new(),
        1 => format!(" (row {})", list[0]),
        _ => format!(" (rows {})", list.join(", ")),
    };
    BuildError::BadRow {
        file: cfg.content.display().to_string(),
        row: rows.get(1).or(rows.first()).copied().unwrap_or(0),
        column: "content_id".into(),
        message: format!("{what}{at}; {hint}"),
    }
}

/// Drains streams taken from `queue` until none is left; returns their records sorted.
async fn consume(shared: &Shared<'_>, queue: &StreamQueue) -> Result<Records, Halt> {
    let mut part = Partition {
        index: 0,
        rows: 0,
        decided: RecordBlocks::default(),
        spilled: Vec::new(),
        shard_of: FxHashMap::default(),
        by_shard: vec![Vec::new(); shared.shards as usize],
        kept: FxHashMap::default(),
        fingerprints: Default::default(),
        spans: Vec::new(),
        stream: None,
    };
    let codes = codes();
    loop {
        if let (Some(direct), Some(spools)) = (shared.direct, shared.spools) {
            direct.wait_for_room(spools, &shared.stop)?;
        }
        let Some((index, mut stream)) = queue.take()? else {
            break;
        };
        // One thread's records hold rows of several streams: each row's position says which.
        part.index = index;
        part.rows = 0;
        part.stream = shared.direct.map(|_| StreamRows::new(shared.shards));
        while let Some(batch) = stream.next().await {
            if shared.stop.load(Ordering::Acquire) {
                return Err(Halt::Cancelled);
            }
            let batch = batch.map_err(|e| engine_error(shared.content, e))?;
            for (counter, n) in shared.received.iter().zip([
                1,
                batch.num_rows() as u64,
                batch.get_array_memory_size() as u64,
            ]) {
                counter.fetch_add(n, Ordering::Relaxed);
            }
            take_batch(shared, &mut part, &codes, &batch)?;
            shared.progress.advance(batch.num_rows() as u64);
        }
        if part.rows > 0 {
            shared.streams_with_rows.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(direct), Some(spools), Some(rows)) =
            (shared.direct, shared.spools, part.stream.take())
        {
            direct.finish_stream(index, rows, spools)?;
        }
    }
    Ok(Records {
        spilled: part.spilled,
        memory: part.decided.finish(),
        reported: None,
    })
}

/// A distributed task's work (the shard sink, [`crate::sink`]): decides the rows of one
/// partition for good as [`consume`] does, writes the shards it holds whole (the sink's input
/// is partitioned by shard) and its decision records as one sorted run, each under a name of
/// this attempt's and renamed into place when complete, and says what it wrote.
///
/// A row without a content id is recorded, not halted on (the client names its row, whether
/// or not the build quarantines). Shards spill to the executor's local temporary directory.
pub(crate) async fn sink_partition(
    sink: &crate::sink::SinkSpec,
    gate_ref: &GateRef,
    stream: SendableRecordBatchStream,
    partition: usize,
) -> Result<Vec<crate::sink::SinkItem>, BuildError> {
    let gate = gate_ref.gate().map_err(|e| BuildError::Gate(Box::new(e)))?;
    let key = crate::layout::unhex(&sink.key)
        .ok_or_else(|| BuildError::Engine("the shard sink's key is not hex".into()))?;
    let content = gate_ref
        .spec()
        .and_then(|s| s.content.as_ref())
        .map(|(path, _)| path.clone())
        .unwrap_or_default();
    let tag = attempt_tag();
    let budget = crate::sink::task_budget(sink.memory_mb);
    let scratch = std::env::temp_dir().join(format!("consentgate-task-{tag}"));
    let spools = (sink.text && !sink.write.is_empty())
        .then(|| ShardSpools::new(sink.shards, budget, scratch));
    let mut spooled = vec![false; sink.shards as usize];
    for s in &sink.write {
        if let Some(x) = spooled.get_mut(*s as usize) {
            *x = true;
        }
    }
    let shared = Shared {
        content: &content,
        shards: sink.shards,
        quarantine: true,
        gate,
        shard_key: &key,
        text: sink.text,
        spools: spools.as_ref(),
        direct: None,
        spooled,
        stop: AtomicBool::new(false),
        progress: &cg_model::progress::NoProgress,
        received: Default::default(),
        streams_with_rows: AtomicU64::new(0),
    };
    // The routing shards of every row received (see `SinkItem::seen`).
    let seen = Arc::new(std::sync::Mutex::new(FxHashSet::<u32>::default()));
    let stream = watch_routes(stream, seen.clone())?;
    let records = match consume(&shared, &StreamQueue::one(stream, partition)).await {
        Ok(records) => records,
        Err(Halt::Failed(e)) => return Err(e),
        Err(Halt::MissingId | Halt::Cancelled | Halt::Respool(_) | Halt::RecordLost) => {
            return Err(BuildError::Engine(
                "a shard sink's task stopped without an error".into(),
            ));
        }
    };
    let mut seen: Vec<u32> = seen
        .lock()
        .map_err(|_| BuildError::Engine("a shard sink's route set was poisoned".into()))?
        .iter()
        .copied()
        .collect();
    seen.sort_unstable();
    drop(shared);
    // Writing the files and deriving member keys take seconds of blocking I/O and CPU: on a
    // blocking thread, so the executor's runtime (its heartbeats among others) keeps running.
    let sink = sink.clone();
    tokio::task::spawn_blocking(move || {
        write_outputs(&sink, partition, &tag, &records, seen, spools.as_ref())
    })
    .await
    .map_err(|e| BuildError::Engine(format!("a shard sink's writer failed: {e}")))?
}

/// What a sink task writes once it has decided its rows: its records as one run, each shard
/// it holds, and (when its executor holds the member-key secret the pass asks for) the member
/// keys of those shards' members; one summary row per file.
fn write_outputs(
    sink: &crate::sink::SinkSpec,
    partition: usize,
    tag: &str,
    records: &Records,
    seen: Vec<u32>,
    spools: Option<&ShardSpools>,
) -> Result<Vec<crate::sink::SinkItem>, BuildError> {
    let mut items = vec![write_records_run(
        &sink.scratch,
        partition,
        tag,
        records,
        seen,
    )?];
    // The executor's secret, checked before any shard is written (another secret fails the
    // task); without one the client derives the keys.
    let secret = match &sink.member_keys {
        Some(keys) => crate::sink::executor_member_key(keys)?.map(|s| (s, keys.domain.as_str())),
        None => None,
    };
    // A build publishing to a store: each shard is written in a private directory of this
    // attempt's and put under the attempt's own prefix, never into the shared `shards/`.
    let store = sink
        .store
        .as_deref()
        .map(crate::store::ObjectUrl::parse)
        .transpose()?;
    let private = match (&store, spools) {
        (Some(_), Some(_)) => Some(crate::store::PrivateDir::new(None, "shards")?),
        _ => None,
    };
    let mut members: Vec<i64> = Vec::new();
    if let Some(spools) = spools {
        for shard in spools.held() {
            let (out, object) = match (&store, &private) {
                (Some(prefix), Some(dir)) => (
                    ShardOut::create_private(dir.path(), shard)?,
                    Some(crate::sink::shard_object(prefix, tag, shard)?),
                ),
                _ => (
                    ShardOut::create_attempt(&sink.dir, &sink.scratch, shard, tag)?,
                    None,
                ),
            };
            let written = spools.write_shard(shard, out, &FxHashSet::default())?;
            let bytes = match object {
                Some(url) => {
                    // An attempt the client no longer waits for (it removed the scratch
                    // directory) puts nothing more; one racing past this check puts an object
                    // under its own attempt's name, which no manifest lists.
                    if !sink.scratch.is_dir() {
                        return Err(BuildError::Engine(format!(
                            "the build's scratch directory `{}` is gone: its client no longer waits for this task",
                            sink.scratch.display()
                        )));
                    }
                    let bytes = crate::store::put_checked(&written.path, &url, &written.sha256)?;
                    std::fs::remove_file(&written.path)
                        .map_err(|e| BuildError::io(&written.path, e))?;
                    bytes
                }
                None => std::fs::metadata(&written.path)
                    .map_err(|e| BuildError::io(&written.path, e))?
                    .len(),
            };
            if secret.is_some() {
                members.extend_from_slice(&written.members);
            }
            items.push(crate::sink::SinkItem {
                attempt: tag.to_owned(),
                output: crate::sink::Output::Shard(shard),
                file: format!("shards/part-{shard:05}.parquet"),
                rows: written.rows,
                bytes,
                sha256: written.sha256,
                members: written.members.len() as u64,
                seen: Vec::new(),
            });
        }
    }
    // A member's rows are all in one shard, so the members of the shards are distinct.
    if let Some((secret, domain)) = secret {
        items.push(crate::key_run::write(
            &sink.scratch,
            partition,
            tag,
            secret,
            domain,
            &members,
        )?);
    }
    Ok(items)
}

/// A name part no other attempt of any task uses: this process's id (which the tests read to
/// find the executor writing a file) and a random number (process ids repeat across machines).
fn attempt_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(ATTEMPTS.fetch_add(1, Ordering::Relaxed));
    format!("{}-{:016x}", std::process::id(), h.finish())
}

/// Writes a partition's records as one sorted run, `records-PPPPP-TAG.bin` in `dir` (the
/// scratch directory; through a `.partial` file, fsynced, renamed into place).
fn write_records_run(
    dir: &Path,
    partition: usize,
    tag: &str,
    records: &Records,
    seen: Vec<u32>,
) -> Result<crate::sink::SinkItem, BuildError> {
    let file = format!("{RECORDS_PREFIX}{partition:05}-{tag}.bin");
    let (rows, sha256) = crate::layout::write_run(dir, &file, |w, partial| {
        let mut rows = 0u64;
        let mut digest = Sha256::new();
        for d in Merged::new(std::slice::from_ref(records))? {
            let record = d?.encode();
            digest.update(record);
            w.write_all(&record)
                .map_err(|e| BuildError::io(partial, e))?;
            rows += 1;
        }
        Ok((rows, crate::layout::hex(&digest.finalize())))
    })?;
    for run in &records.spilled {
        let _ = std::fs::remove_file(run);
    }
    Ok(crate::sink::SinkItem {
        attempt: tag.to_owned(),
        output: crate::sink::Output::Records,
        file,
        rows,
        bytes: rows * RECORD_BYTES as u64,
        sha256,
        members: 0,
        seen,
    })
}

/// `stream`, adding the routing shard (`cg_shard`) of every row it yields to `seen`.
fn watch_routes(
    stream: SendableRecordBatchStream,
    seen: Arc<std::sync::Mutex<FxHashSet<u32>>>,
) -> Result<SendableRecordBatchStream, BuildError> {
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    let schema = stream.schema();
    let at = schema
        .index_of(crate::sink::SHARD_COLUMN)
        .map_err(BuildError::from)?;
    let watched = stream.map(move |batch| {
        let batch = batch?;
        let routes = batch
            .column(at)
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Execution(
                    "the shard sink's `cg_shard` column is not UInt32".into(),
                )
            })?;
        let mut seen = seen.lock().map_err(|_| {
            datafusion::error::DataFusionError::Execution("a route set was poisoned".into())
        })?;
        let mut last = None;
        for route in routes.iter() {
            let route = route.unwrap_or(crate::sink::NO_ROUTE);
            if last != Some(route) {
                seen.insert(route);
                last = Some(route);
            }
        }
        Ok(batch)
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, watched)))
}

/// The prefix of a distributed build's decision-record runs in its scratch directory
/// ([`crate::sink::scratch_dir`], removed before publishing).
pub(crate) const RECORDS_PREFIX: &str = "records-";

/// Writes a partition's records out as one sorted run, its blocks merged (the pass is over
/// its budget).
fn spill_records(spools: &ShardSpools, part: &mut Partition) -> Result<(), BuildError> {
    part.decided.seal();
    let held = Records {
        spilled: Vec::new(),
        memory: std::mem::take(&mut part.decided.full),
        reported: None,
    };
    let path = spools.run_path("records")?;
    let file = File::create(&path).map_err(|e| BuildError::io(&path, e))?;
    let mut w = BufWriter::with_capacity(1 << 16, file);
    for d in Merged::new(std::slice::from_ref(&held))? {
        w.write_all(&d?.encode())
            .map_err(|e| BuildError::io(&path, e))?;
    }
    w.flush().map_err(|e| BuildError::io(&path, e))?;
    // The blocks are emptied, not freed: they fill again before the next run, and new ones
    // would be memory the kernel must clear first.
    part.decided.recycle(held.memory);
    part.spilled.push(path);
    Ok(())
}

/// Decides the rows of one batch for good and routes its kept rows to their shards' spools.
fn take_batch(
    shared: &Shared<'_>,
    part: &mut Partition,
    codes: &Codes,
    batch: &RecordBatch,
) -> Result<(), Halt> {
    let get = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| BuildError::Engine(format!("no column {name}")))
    };
    let ids = primitive::<Int64Type>(batch, "content_id")?;
    let members = primitive::<Int64Type>(batch, "member_id")?;
    let outcomes = primitive::<UInt32Type>(batch, "outcome")?;
    // A distributed task's rows carry their author's shard (`cg_shard`).
    let routes = batch
        .column_by_name(crate::sink::SHARD_COLUMN)
        .map(|c| {
            c.as_primitive_opt::<UInt32Type>()
                .ok_or_else(|| mistyped("cg_shard"))
        })
        .transpose()?;
    // What the writer computes itself (once a row's verdict is final): the fingerprint of
    // every kept row, from its mentions, and the redacted text of every kept row of a shard it
    // writes, straight into that shard's column (no text for the whole batch, then copied).
    let mentions = crate::udf::mention_lists(&get("mentions")?).map_err(BuildError::from)?;
    // A row whose mentions are missing is an engine fault, never read as naming nobody.
    let named = |i: usize| {
        mentions.get(i).ok_or_else(|| {
            BuildError::Engine("the mentions column is shorter than the batch".into())
        })
    };
    let texts = if shared.text {
        Some(crate::udf::StrColumn::new(&get("text")?).map_err(BuildError::from)?)
    } else {
        None
    };
    let gate = shared.gate;
    // With shards written while deciding, the stream's records go with its rows (counted
    // against the budget below); otherwise they count against the budget as their vector
    // grows and, over it, are spilled first (before this batch's rows, so every byte of
    // capacity is counted).
    let stream_bytes = part.stream.as_ref().map(StreamRows::bytes);
    if stream_bytes.is_none() {
        if let Some(spools) = shared.spools
            && spools.over_budget()
            && part.decided.len >= min_spilled_records(spools)
        {
            spill_records(spools, part)?;
        }
        let max_block = shared.spools.map_or(MAX_BLOCK_RECORDS, |s| {
            MAX_BLOCK_RECORDS.min(min_spilled_records(s))
        });
        let grown = part.decided.make_room(batch.num_rows(), max_block);
        if let Some(spools) = shared.spools
            && grown > 0
        {
            spools.reserve(grown)?;
        }
    }
    let first = position(part.index, part.rows);
    part.rows += batch.num_rows() as u64;
    // Every author first, in a loop of independent lookups whose memory reads overlap (the
    // member table is far larger than the caches).
    let authors: Vec<crate::gate::Author> = (0..batch.num_rows())
        .map(|i| {
            let member = members.is_valid(i).then(|| members.value(i));
            let route = routes.and_then(|r| r.is_valid(i).then(|| r.value(i)));
            gate.author(member, route)
        })
        .collect();
    for (i, author) in authors.iter().enumerate() {
        let content_id = ids.is_valid(i).then(|| ids.value(i));
        // Shards and a record written while deciding need every id above the one before
        // (excluded rows too, so that no id repeats), and no row without one (the record
        // lists those first).
        if let Some(stream) = part.stream.as_mut()
            && !content_id.is_some_and(|id| stream.see(id))
        {
            return Err(Halt::Respool(NOT_IN_ORDER));
        }
        let member = members.is_valid(i).then(|| members.value(i));
        let mut code = outcomes.value(i);
        let known = *part
            .kept
            .entry(code)
            .or_insert_with(|| Verdict::from_code(code).map(|v| v.decision().is_kept()));
        let Some(mut is_kept) = known else {
            return Err(BuildError::Engine(format!("unknown outcome {code}")).into());
        };
        let (erased, region) = (author.erased, author.region);
        if content_id.is_none() {
            if !shared.quarantine {
                return Err(Halt::MissingId);
            }
            code = codes.invalid;
            is_kept = false;
        }
        // An erasure request excludes, whatever a custom policy says (and the row is recorded
        // without ids).
        if erased && is_kept {
            code = codes.erased;
            is_kept = false;
        }
        // A kept row must have an author: anything else is a gate failure.
        if is_kept && member.is_none() {
            code = codes.policy_error;
            is_kept = false;
        }
        // A kept row's code is the gate's (the checks above only exclude).
        let fingerprint = if is_kept {
            gate.kept_fingerprint(
                &mut part.fingerprints,
                author.hint,
                member.unwrap_or(0),
                named(i)?,
                Verdict::code_has_reason(code, ReasonCode::MentionRedacted),
            )
        } else {
            0
        };
        // The gate computed the author's shard when it compiled them (an embedded build);
        // an executor's gate does not route, and the shard is computed here once a member.
        let shard = match (is_kept, member, author.shard) {
            (true, Some(_), Some(shard)) => shard,
            (true, Some(m), None) => *part
                .shard_of
                .entry(m)
                .or_insert_with(|| keyed_shard(shared.shard_key, m, shared.shards)),
            _ => NO_SHARD,
        };
        let flags = (u8::from(content_id.is_some()) * HAS_ID)
            | (u8::from(member.is_some()) * HAS_MEMBER)
            | (u8::from(erased) * ERASED);
        let decided = Decided {
            content_id: content_id.unwrap_or(0),
            member_id: member.unwrap_or(0),
            fingerprint,
            code,
            shard,
            region,
            flags,
            pos: first + i as u64,
        };
        match part.stream.as_mut() {
            Some(stream) => stream.record(decided),
            None => part.decided.push(decided),
        }
        if shard != NO_SHARD
            && shared.spools.is_some()
            && shared.spooled.get(shard as usize) == Some(&true)
        {
            part.by_shard[shard as usize].push(i as u32);
        }
    }
    let Some(spools) = shared.spools else {
        return Ok(());
    };
    let kinds = get("kind")?;
    let created = get("created_at")?;
    for (shard, rows) in part.by_shard.iter_mut().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let positions: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|i| first + u64::from(*i)),
        ));
        let take = UInt32Array::from(std::mem::take(rows));
        let pick = |a: &ArrayRef| arrow::compute::take(a, &take, None).map_err(BuildError::from);
        let kind =
            arrow::compute::cast(&pick(&kinds)?, &DataType::Utf8).map_err(BuildError::from)?;
        let at = crate::udf_times(&pick(&created)?).map_err(BuildError::from)?;
        let at = TimestampMicrosecondArray::from(
            at.iter().map(|t| t.map(|t| t.micros())).collect::<Vec<_>>(),
        )
        .with_timezone("+00:00");
        // Every row here is kept (`by_shard` holds kept rows only), with the gate's code: its
        // text goes through the PII engine, and the names of excluded members it mentions are
        // scrubbed when the verdict says so. A missing text is redacted as empty.
        let texts = texts.as_ref().ok_or_else(|| mistyped("text"))?;
        let mut text = StringBuilder::with_capacity(
            take.len(),
            take.values()
                .iter()
                .map(|&i| texts.get(i as usize).map_or(0, str::len))
                .sum(),
        );
        for &i in take.values() {
            let i = i as usize;
            gate.redact_kept_with(
                texts.get(i).unwrap_or(""),
                authors[i].hint,
                members.value(i),
                named(i)?,
                Verdict::code_has_reason(outcomes.value(i), ReasonCode::MentionRedacted),
                &mut part.spans,
                // A string builder's `write_str` only appends (it cannot fail).
                |piece| {
                    let _ = std::fmt::Write::write_str(&mut text, piece);
                },
            );
            // Ends the row's value (what was written, then nothing).
            text.append_value("");
        }
        let text: ArrayRef = Arc::new(text.finish());
        let rows = RecordBatch::try_new(
            spool_schema(),
            vec![
                pick(&get("content_id")?)?,
                kind,
                Arc::new(at),
                text,
                pick(&get("member_id")?)?,
                positions,
            ],
        )
        // A kept row without a creation time (the gate never keeps one) fails here.
        .map_err(|source| BuildError::KeptRows {
            shard: shard as u32,
            source,
        })?;
        match part.stream.as_mut() {
            Some(stream) => stream.push(shard as u32, rows)?,
            None => spools.push(shard as u32, rows)?,
        }
    }
    // Rows and records held until their stream's turn to be written count against the budget
    // now.
    if let (Some(before), Some(stream)) = (stream_bytes, part.stream.as_ref()) {
        spools.reserve(stream.bytes() - before)?;
    }
    Ok(())
}

fn roster_lost() -> BuildError {
    BuildError::Engine("the roster's thread panicked".into())
}

/// The decision record and what is counted from it.
pub(crate) struct Record {
    pub counts: FxHashMap<(u32, u8), u64>,
    pub kept_members: Vec<i64>,
    pub roster: Option<FxHashMap<i64, bool>>,
    /// The smallest content id the record holds more than once (its copies are adjacent).
    pub first_repeated: Option<i64>,
    pub rows: FxHashMap<i64, (Option<u32>, i64)>,
    pub decisions: Option<FileRef>,
}

/// Writes `decisions.parquet` (when `dir` is given) in record order; later copies of a content
/// id (quarantined) become `invalid_record`. Counts verdicts by (code, region) and collects kept
/// members; with `roster`, also every member the record names (as `decisions.parquet` names
/// them: rows with a content id, erased rows naming nobody) and whether a row of theirs is in a
/// shard, hashed on a second thread so the record's own thread does not wait for it.
pub(crate) fn write_record(
    records: impl Iterator<Item = Result<Decided, BuildError>>,
    later_copies: &FxHashSet<u64>,
    dir: Option<&Path>,
    collect: bool,
    roster: bool,
) -> Result<Record, BuildError> {
    const ROSTER_CHUNK: usize = 1 << 16;
    let roster_thread = roster.then(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(i64, bool)>>(4);
        let handle = std::thread::spawn(move || {
            let mut members: FxHashMap<i64, bool> = FxHashMap::default();
            for chunk in rx {
                for (member, kept) in chunk {
                    *members.entry(member).or_insert(false) |= kept;
                }
            }
            members
        });
        (tx, handle)
    });
    let mut roster_chunk: Vec<(i64, bool)> = Vec::new();
    let mut previous_id: Option<i64> = None;
    let mut first_repeated: Option<i64> = None;
    let invalid = codes().invalid;
    let mut writer = dir.map(DecisionsOut::create).transpose()?;
    let mut counts: FxHashMap<(u32, u8), u64> = FxHashMap::default();
    let mut verdicts: FxHashMap<u32, Verdict> = FxHashMap::default();
    let mut kept_members = Vec::new();
    let mut rows = FxHashMap::default();
    for d in records {
        let mut d = d?;
        if !later_copies.is_empty() && later_copies.contains(&d.pos) {
            d.code = invalid;
            d.shard = NO_SHARD;
            d.fingerprint = 0;
        }
        *counts.entry((d.code, d.region)).or_default() += 1;
        let shard = (d.shard != NO_SHARD).then_some(d.shard);
        if shard.is_some() {
            kept_members.push(d.member_id);
        }
        if let Some(id) = d.id() {
            if first_repeated.is_none() && previous_id == Some(id) {
                first_repeated = Some(id);
            }
            previous_id = Some(id);
        }
        let erased = d.flags & ERASED != 0;
        if let (Some((tx, _)), Some(member)) = (&roster_thread, roster_member(&d)) {
            roster_chunk.push(member);
            if roster_chunk.len() == ROSTER_CHUNK {
                let full = std::mem::replace(&mut roster_chunk, Vec::with_capacity(ROSTER_CHUNK));
                tx.send(full).map_err(|_| roster_lost())?;
            }
        }
        if collect
            && !erased
            && let Some(id) = d.id()
        {
            rows.insert(id, (shard, d.fingerprint));
        }
        if let Some(w) = writer.as_mut() {
            let v = verdicts
                .entry(d.code)
                .or_insert_with(|| cg_policy::verdict_of(d.code));
            let decision: Decision = v.decision();
            if erased {
                // Erased: the row is counted, but not recorded by content or member id.
                w.push(None, None, decision.as_str(), v.reasons(), None, 0)?;
            } else {
                w.push(
                    d.id(),
                    d.member(),
                    decision.as_str(),
                    v.reasons(),
                    shard,
                    d.fingerprint,
                )?;
            }
        }
    }
    // The kept members are sorted while the record's last rows are encoded.
    let (kept_members, decisions) = std::thread::scope(|scope| {
        let sorted = scope.spawn(move || {
            kept_members.sort_unstable();
            kept_members.dedup();
            kept_members
        });
        let decisions = writer.map(DecisionsOut::finish).transpose();
        let sorted = sorted
            .join()
            .map_err(|_| BuildError::Engine("the kept members' sort panicked".into()));
        (sorted, decisions)
    });
    let (kept_members, decisions) = (kept_members?, decisions?);
    let roster = match roster_thread {
        Some((tx, handle)) => {
            tx.send(roster_chunk).map_err(|_| roster_lost())?;
            drop(tx);
            Some(handle.join().map_err(|_| roster_lost())?)
        }
        None => None,
    };
    Ok(Record {
        counts,
        kept_members,
        roster,
        first_repeated,
        rows,
        decisions,
    })
}

/// A record's member in the roster, with whether the row went to a shard: rows with a content
/// id and a member, not erased (an erased row names nobody).
fn roster_member(d: &Decided) -> Option<(i64, bool)> {
    if d.flags & ERASED != 0 || d.id().is_none() {
        return None;
    }
    Some((d.member()?, d.shard != NO_SHARD))
}

/// The roster's members of one run of records (a distributed task's, with the SHA-256 it
/// reported): member → whether a row of theirs went to a shard, by the rule [`write_record`]
/// applies.
pub(crate) fn roster_members_of_run(
    run: &Path,
    sha256: &str,
) -> Result<FxHashMap<i64, bool>, BuildError> {
    let records = [Records::on_disk(run.to_owned(), sha256.to_owned())];
    let mut members: FxHashMap<i64, bool> = FxHashMap::default();
    for d in Merged::new(&records)? {
        if let Some((member, kept)) = roster_member(&d?) {
            *members.entry(member).or_insert(false) |= kept;
        }
    }
    Ok(members)
}

/// One shard, written.
struct ShardWritten {
    shard: u32,
    file: FileRef,
    members: usize,
    keys: Vec<MemberKey>,
}

fn write_shard(
    spools: &ShardSpools,
    spec: &PassSpec<'_>,
    shard: u32,
    later_copies: &FxHashSet<u64>,
) -> Result<ShardWritten, BuildError> {
    let out = ShardOut::create(spec.dir, shard)?;
    let written = spools.write_shard(shard, out, later_copies)?;
    Ok(shard_written(spec, shard, written))
}

/// What the pass keeps of a written shard, with its members' keys when the pass derives them.
fn shard_written(spec: &PassSpec<'_>, shard: u32, written: WrittenShard) -> ShardWritten {
    let keys = match spec.member_keys {
        Some((secret, domain)) => secret.member_keys(domain, &written.members),
        None => Vec::new(),
    };
    ShardWritten {
        shard,
        file: FileRef {
            file: format!("shards/part-{shard:05}.parquet"),
            rows: written.rows,
            sha256: written.sha256,
        },
        members: written.members.len(),
        keys,
    }
}

/// An engine output column of a primitive type; missing or of another type, the build fails.
fn primitive<'b, T: arrow::datatypes::ArrowPrimitiveType>(
    batch: &'b RecordBatch,
    name: &str,
) -> Result<&'b arrow::array::PrimitiveArray<T>, BuildError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| BuildError::Engine(format!("no column {name}")))?
        .as_primitive_opt::<T>()
        .ok_or_else(|| mistyped(name))
}

/// An engine output column of an unexpected type: the build fails (a panic would leave the
/// temporary dataset behind).
fn mistyped(column: &str) -> BuildError {
    BuildError::Engine(format!(
        "the engine returned column `{column}` with an unexpected type"
    ))
}

/// A session on a Ballista scheduler, with the tasks per stage the engine URL asks for or,
/// without `?partitions=N`, as many as the content's size calls for
/// ([`crate::distributed::partitions_for`]; the content's size unknown — a missing file, which
/// the scan reports — the default).
#[cfg(feature = "ballista")]
async fn remote_session(
    url: &str,
    partitions: Option<usize>,
    shuffle_mb: Option<usize>,
    content: &Path,
) -> Result<SessionContext, BuildError> {
    let partitions = partitions.or_else(|| {
        crate::store::size_of(content)
            .ok()
            .map(crate::distributed::partitions_for)
    });
    crate::distributed::client_session(url, partitions, shuffle_mb).await
}

/// Without the `ballista` feature there is no distributed engine.
#[cfg(not(feature = "ballista"))]
async fn remote_session(
    url: &str,
    _partitions: Option<usize>,
    _shuffle_mb: Option<usize>,
    _content: &Path,
) -> Result<SessionContext, BuildError> {
    Err(BuildError::Input(format!(
        "cannot run on {url}: this consentgate was built without the `ballista` feature"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_id: i64, pos: u64) -> Decided {
        Decided {
            content_id,
            member_id: 1,
            fingerprint: 0,
            code: 0,
            shard: NO_SHARD,
            region: 0,
            flags: HAS_ID | HAS_MEMBER,
            pos,
        }
    }

    #[test]
    fn record_blocks_hand_out_every_record_once_in_order() {
        // Ids in a scrambled order, pushed a "batch" at a time into blocks no larger than
        // 3 000 records, so that blocks fill mid-stream and batches open new ones.
        let ids: Vec<i64> = (0..20_000i64).map(|i| (i * 7_919) % 20_000).collect();
        let mut blocks = RecordBlocks::default();
        let mut allocated = 0;
        for (b, batch) in ids.chunks(1_000).enumerate() {
            allocated += blocks.make_room(batch.len(), 3_000);
            for (i, id) in batch.iter().enumerate() {
                blocks.push(record(*id, (b * 1_000 + i) as u64));
            }
        }
        assert_eq!(blocks.len, ids.len());
        let records = Records {
            spilled: Vec::new(),
            memory: blocks.finish(),
            reported: None,
        };
        assert!(records.memory.len() > 5, "{} blocks", records.memory.len());
        assert!(allocated >= ids.len() * std::mem::size_of::<Decided>());
        let merged: Vec<i64> = Merged::new(std::slice::from_ref(&records))
            .unwrap()
            .map(|d| d.unwrap().content_id)
            .collect();
        assert_eq!(merged, (0..20_000).collect::<Vec<i64>>());
    }

    #[test]
    fn emptied_blocks_are_reused_before_new_ones() {
        let mut blocks = RecordBlocks::default();
        assert!(blocks.make_room(10, 100) > 0);
        for i in 0..10 {
            blocks.push(record(i, i as u64));
        }
        blocks.seal();
        let full = std::mem::take(&mut blocks.full);
        blocks.recycle(full);
        assert_eq!(blocks.len, 0);
        assert_eq!(blocks.make_room(10, 100), 0, "a spare block was not reused");
    }

    /// The physical plan of `t` (one partition of three rows) → filter → a computed column
    /// under the embedded pass's session, with a round-robin repartition into 4 partitions
    /// asked for when `round_robin`.
    fn embedded_plan(round_robin: bool) -> Arc<dyn datafusion::physical_plan::ExecutionPlan> {
        use arrow::array::Int64Array;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let ctx = SessionContext::new_with_config(embedded_session_config(2));
            let batch = RecordBatch::try_from_iter(vec![(
                "a",
                Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            )])
            .unwrap();
            let table =
                datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]])
                    .unwrap();
            ctx.register_table("t", Arc::new(table)).unwrap();
            let mut df = ctx
                .table("t")
                .await
                .unwrap()
                .filter(col("a").gt(lit(1i64)))
                .unwrap()
                .select(vec![(col("a") * lit(7i64)).alias("b")])
                .unwrap();
            if round_robin {
                df = df
                    .repartition(datafusion::logical_expr::Partitioning::RoundRobinBatch(4))
                    .unwrap();
            }
            df.create_physical_plan().await.unwrap()
        })
    }

    #[test]
    fn a_plan_that_deals_rows_between_streams_is_refused() {
        use datafusion::physical_plan::ExecutionPlanProperties;
        use datafusion::physical_plan::repartition::RepartitionExec;
        // The pass's session drops a round-robin repartition even when one is asked for.
        for asked in [false, true] {
            let plan = embedded_plan(asked);
            streams_in_file_order(plan.as_ref()).unwrap();
            assert_eq!(plan.output_partitioning().partition_count(), 1);
        }
        // One that is there anyway fails the build.
        let dealt = RepartitionExec::try_new(
            embedded_plan(false),
            datafusion::physical_plan::Partitioning::RoundRobinBatch(4),
        )
        .unwrap();
        let err = streams_in_file_order(&dealt).unwrap_err();
        assert!(err.to_string().contains("RepartitionExec"), "{err}");
    }

    /// A task's run of records is read (for `decisions.parquet`, the scan for repeated ids, the
    /// roster) only as the bytes the task reported: a run changed after it was written — a
    /// record altered, or one cut off — fails the read at its end.
    #[test]
    fn a_records_run_is_read_only_as_the_bytes_its_task_reported() {
        let dir = cg_test_support::tempdir();
        let held = Records {
            spilled: Vec::new(),
            memory: vec![(0..50).map(|i| record(i, i as u64)).collect()],
            reported: None,
        };
        let item = write_records_run(dir.path(), 0, "t", &held, Vec::new()).unwrap();
        assert_eq!(item.sha256.len(), 64);
        let path = dir.path().join(&item.file);
        let read = |sha: &str| -> Result<Vec<i64>, BuildError> {
            let runs = [Records::on_disk(path.clone(), sha.to_owned())];
            Merged::new(&runs)?
                .map(|d| d.map(|d| d.content_id))
                .collect()
        };
        assert_eq!(read(&item.sha256).unwrap(), (0..50).collect::<Vec<_>>());
        assert_eq!(roster_members_of_run(&path, &item.sha256).unwrap().len(), 1);

        let bytes = std::fs::read(&path).unwrap();
        let mut changed = bytes.clone();
        // The member of the last record (its content id and so the order unchanged).
        changed[bytes.len() - RECORD_BYTES + 8] ^= 1;
        for damaged in [changed, bytes[..bytes.len() - RECORD_BYTES].to_vec()] {
            std::fs::write(&path, &damaged).unwrap();
            let err = read(&item.sha256).unwrap_err().to_string();
            assert!(err.contains("not the bytes their task reported"), "{err}");
            assert!(roster_members_of_run(&path, &item.sha256).is_err());
        }
    }

    #[test]
    fn a_spilled_record_reads_back_as_written() {
        for d in [
            Decided {
                content_id: i64::MIN,
                member_id: -1,
                fingerprint: i64::MAX,
                code: u32::MAX,
                shard: NO_SHARD,
                region: 255,
                flags: HAS_ID | ERASED,
                pos: position(255, (1 << 40) - 1),
            },
            Decided {
                content_id: 42,
                member_id: 7,
                fingerprint: 0,
                code: 1,
                shard: 3,
                region: 0,
                flags: 0,
                pos: 0,
            },
        ] {
            let back = Decided::decode(&d.encode());
            assert_eq!(back.key(), d.key());
            assert_eq!(
                (
                    back.member_id,
                    back.fingerprint,
                    back.code,
                    back.shard,
                    back.region,
                    back.flags
                ),
                (
                    d.member_id,
                    d.fingerprint,
                    d.code,
                    d.shard,
                    d.region,
                    d.flags
                )
            );
        }
    }
}
