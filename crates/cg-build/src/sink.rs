//! The shard sink: the top of a distributed build's plan, where the executors write the dataset.
//!
//! ```text
//!   client                    scheduler                          executors (one task per partition)
//!   ShardSinkNode ──codec──►  SinkPlanner ──► ShardSinkExec ──codec──► content routed by shard,
//!   (logical, with the                        requires its input       decided (cg_gate), redacted;
//!    gate's and the sink's                    hash-partitioned by      whole shards written to the
//!    specs)                                   `cg_shard`               build's temporary directory,
//!                                                                      decision records beside them
//!   ◄──────────────────── one summary row per file written (output, shard, file, rows, bytes, sha256)
//! ```
//!
//! Each task of the sink's stage receives every row of the shards its partition holds (the
//! node requires its input hash-partitioned by `cg_shard`, which the routing join already is),
//! so a shard is written whole by one task, with the same bytes an embedded build gives it
//! ([`crate::pass::sink_partition`]). What a task writes is renamed into place only when
//! complete, under a name no other attempt uses, so a retried task rewrites its own files and
//! a lost one leaves at most `.partial` files, which the client removes before publishing. (A
//! build publishing to an object store has each attempt put its shards under a prefix of its
//! own there instead, [`SinkSpec::store`]; the client copies the kept attempts' objects.) The
//! client receives only the summaries (bytes independent of the row count) and merges the
//! decision records into `decisions.parquet` ([`crate::pass`]). An executor holding the
//! member-key secret ([`set_executor_member_key`]) also writes the member keys of its shards'
//! members ([`crate::key_run`]), which the client checks and builds the commitment from.
//!
//! The node and its physical plan travel with the gate's [`GateSpec`] and the [`SinkSpec`]
//! through consentgate's extension codecs ([`crate::distributed`]); the scheduler plans the
//! node with [`SinkPlanner`].

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryBuilder, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use serde::{Deserialize, Serialize};

use crate::BuildError;
use crate::spec::{GateRef, GateSpec};

/// A member's keyed shard, on every row of the sink's input.
pub(crate) const SHARD_COLUMN: &str = "cg_shard";

/// The column the sink's input is partitioned by: the route of the row's shard
/// ([`crate::udf::balanced_routes`]), one value per shard.
pub(crate) const ROUTE_COLUMN: &str = "cg_route";

/// The distribution a node requires of `input`: partitioned by its route column `column`, so
/// that every row of a shard reaches one task (the constructors check that it has one).
pub(crate) fn partitioned_by(input: &Arc<dyn ExecutionPlan>, column: &str) -> Distribution {
    let at = input.schema().index_of(column).unwrap_or(0);
    let column: Arc<dyn PhysicalExpr> = Arc::new(
        datafusion::physical_expr::expressions::Column::new(column, at),
    );
    Distribution::KeyPartitioned(vec![column])
}

/// Marks a sink payload in a plan (and its format version).
#[cfg(feature = "ballista")]
pub(crate) const MAGIC: &[u8] = b"consentgate-sink/1\0";

/// What the sink's tasks write, and where.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SinkSpec {
    /// The build's temporary directory (absolute, on storage every executor shares): finished
    /// shards are renamed into its `shards/`.
    pub dir: PathBuf,
    /// The build's scratch directory ([`scratch_dir`]): every file a task creates is created
    /// here (partial shards, decision records, member keys), so a task the scheduler gave up
    /// on but that still runs can create nothing once the client has removed it.
    pub scratch: PathBuf,
    /// The build's shard count.
    pub shards: u32,
    /// The shard key, hex.
    pub key: String,
    /// Whether rows carry redacted text (false: decision records only).
    pub text: bool,
    /// The shards this pass writes.
    pub write: Vec<u32>,
    /// The build's `--memory-mb`: a task's budget where the process does not set its own
    /// ([`task_budget`]; an executor's `--memory-mb` does).
    pub memory_mb: usize,
    /// Derive the member keys of the written shards' members, where an executor holds the
    /// member-key secret ([`set_executor_member_key`]); the secret itself never travels.
    pub member_keys: Option<SinkKeys>,
    /// A build publishing to an object store: the prefix (`s3://bucket/…`, never with
    /// credentials) under which each attempt puts the shards it writes, as
    /// `<prefix>/<attempt>/part-NNNNN.parquet` ([`shard_object`]), instead of renaming them
    /// into `dir/shards/`; the client copies the kept attempt's objects into the dataset.
    #[serde(default)]
    pub store: Option<String>,
}

/// Where an attempt puts shard `shard` under a build's store prefix (`SinkSpec::store`). The
/// attempt is a tag of the sink's ([`SinkItem::attempt`]); one the client did not see made by
/// a task (anything but ASCII letters, digits and `-`) is refused, so a summary can never name
/// an object outside the prefix.
pub(crate) fn shard_object(
    prefix: &crate::store::ObjectUrl,
    attempt: &str,
    shard: u32,
) -> Result<crate::store::ObjectUrl, BuildError> {
    if attempt.is_empty()
        || !attempt
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(BuildError::Engine(format!(
            "the cluster's output: an attempt named `{attempt}`"
        )));
    }
    Ok(prefix.join(&format!("{attempt}/part-{shard:05}.parquet")))
}

/// The key domain and the public key of the member keys a pass asks for: a task whose
/// executor holds another secret fails rather than derive keys the commitment cannot use.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SinkKeys {
    /// The key domain (the dataset id).
    pub domain: String,
    /// The VRF public key, hex.
    pub public_key: String,
}

/// What travels in a plan: the sink's spec and the gate's.
#[cfg(feature = "ballista")]
#[derive(Serialize, Deserialize)]
struct Payload {
    sink: SinkSpec,
    gate: GateSpec,
}

/// The node's or the exec's payload.
#[cfg(feature = "ballista")]
pub(crate) fn encode(sink: &SinkSpec, gate: &GateRef) -> Result<Vec<u8>> {
    let gate = gate.spec().cloned().ok_or_else(|| {
        DataFusionError::Plan("consentgate: a shard sink without its build spec".into())
    })?;
    let mut buf = MAGIC.to_vec();
    let payload = Payload {
        sink: sink.clone(),
        gate,
    };
    buf.extend_from_slice(
        &serde_json::to_vec(&payload).map_err(|e| DataFusionError::External(Box::new(e)))?,
    );
    Ok(buf)
}

/// A payload's specs; `None` when `buf` is not a sink payload.
#[cfg(feature = "ballista")]
pub(crate) fn decode(buf: &[u8]) -> Option<Result<(SinkSpec, Arc<GateRef>)>> {
    let body = buf.strip_prefix(MAGIC)?;
    Some(
        serde_json::from_slice::<Payload>(body)
            .map(|p| (p.sink, Arc::new(GateRef::from_spec(p.gate))))
            .map_err(|e| DataFusionError::Plan(format!("consentgate: unreadable shard sink: {e}"))),
    )
}

/// One file a task wrote, as the summary row reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SinkItem {
    /// The task's attempt (a tag no other attempt has). After losing an executor Ballista may
    /// report two completed attempts of one task; [`SinkItem::seen`] tells them apart.
    pub attempt: String,
    /// What the file holds.
    pub output: Output,
    /// The file: a shard's path relative to the build's temporary directory, a run's name in
    /// the scratch directory.
    pub file: String,
    /// Rows (records) in it.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// The file's SHA-256 (hex): a shard's, a member-key run's or a records run's (every read of
    /// which checks it).
    pub sha256: String,
    /// A shard's distinct members; a member-key run's keys.
    pub members: u64,
    /// On an attempt's records: the routing shards (`cg_shard`; [`NO_ROUTE`] for rows without a
    /// member) of every row the attempt received, ascending. Tasks of one stage see disjoint
    /// sets, so two attempts that share one are attempts of one task.
    pub seen: Vec<u32>,
}

/// What a file a task wrote holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Output {
    /// The decision records of every row the task received, one sorted run
    /// (`records-PPPPP-TAG.bin` in the scratch directory, [`crate::pass::RECORD_BYTES`] a row).
    Records,
    /// A shard, whole (`shards/part-SSSSS.parquet`).
    Shard(u32),
    /// The member keys of the members of every shard the task wrote, with their member ids,
    /// sorted by key (`keys-PPPPP-TAG.bin` in the scratch directory, [`KEY_RECORD_BYTES`] a
    /// member).
    MemberKeys,
}

impl Output {
    /// The shard written, if a shard.
    pub(crate) fn shard(self) -> Option<u32> {
        match self {
            Output::Shard(s) => Some(s),
            Output::Records | Output::MemberKeys => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Output::Records => "records",
            Output::Shard(_) => "shard",
            Output::MemberKeys => "member-keys",
        }
    }
}

/// The scratch directory of a distributed build whose temporary directory is `dir`: beside it
/// (the same file system, so a finished shard is renamed from one into the other), removed by
/// the client before it publishes, and by `publish` when the build fails.
pub(crate) fn scratch_dir(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".scratch");
    PathBuf::from(name)
}

/// The prefix of the member-key runs in the scratch directory.
pub(crate) const KEYS_PREFIX: &str = "keys-";

/// Bytes per member in a member-key run: the key (32), then the member id (8, little-endian).
pub(crate) const KEY_RECORD_BYTES: usize = 40;

/// The member-key secret of this executor (`consentgate executor --member-key`), if any.
static EXECUTOR_MEMBER_KEY: std::sync::OnceLock<cg_proof::member_key::MemberKeySecret> =
    std::sync::OnceLock::new();

/// Records this process's member-key secret: the sink's tasks then derive the member keys of
/// the shards they write (when the pass asks for keys under this secret's public key).
pub fn set_executor_member_key(secret: cg_proof::member_key::MemberKeySecret) {
    let _ = EXECUTOR_MEMBER_KEY.set(secret);
}

/// The secret a task derives `keys` with: `None` when this process holds none (the client
/// derives them); an error when it holds another than the pass asks for.
pub(crate) fn executor_member_key(
    keys: &SinkKeys,
) -> Result<Option<&'static cg_proof::member_key::MemberKeySecret>, BuildError> {
    secret_for(EXECUTOR_MEMBER_KEY.get(), keys)
}

fn secret_for<'s>(
    held: Option<&'s cg_proof::member_key::MemberKeySecret>,
    keys: &SinkKeys,
) -> Result<Option<&'s cg_proof::member_key::MemberKeySecret>, BuildError> {
    match held {
        None => Ok(None),
        Some(secret) if cg_proof::hex(&secret.public_key()) == keys.public_key => Ok(Some(secret)),
        Some(secret) => Err(BuildError::Engine(format!(
            "this executor's member key (VRF public key {}) is not the build's ({}): start it with the build's `--member-key`",
            cg_proof::hex(&secret.public_key()),
            keys.public_key
        ))),
    }
}

/// The routing shard of rows without a member (`cg_shard` is null for them).
pub(crate) const NO_ROUTE: u32 = u32::MAX;

/// This executor's memory for the sink's tasks (MiB) and its task slots, when the process is
/// an executor ([`crate::distributed::run_executor`] sets it).
static EXECUTOR_MEMORY: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// Records this process's memory for the sink's tasks: `memory_mb` shared by `slots` tasks
/// running at once.
pub fn set_executor_memory(memory_mb: usize, slots: usize) {
    let _ = EXECUTOR_MEMORY.set((memory_mb, slots.max(1)));
}

/// Bytes one task may hold in spooled rows and records before spilling: half of the memory
/// (the other half is the engine's batches in flight and the writers' buffers, as in an
/// embedded build), divided among the executor's task slots; in a process that is not an
/// executor, half of the build's `--memory-mb` (the spec's).
pub(crate) fn task_budget(spec_memory_mb: usize) -> usize {
    budget_of(EXECUTOR_MEMORY.get().copied(), spec_memory_mb)
}

fn budget_of(executor: Option<(usize, usize)>, spec_memory_mb: usize) -> usize {
    match executor {
        Some((mb, slots)) => (mb.max(1) << 20) / 2 / slots.max(1),
        None => (spec_memory_mb.max(1) << 20) / 2,
    }
}

/// The sink's output: one row per file written, each the file's [`SinkItem`] as a JSON array
/// ([`WireItem`]) in the one binary column [`SUMMARY_COLUMN`]. One column rather than one per
/// field: an Arrow IPC message describes every buffer of a batch in its header and pads each
/// to 64 bytes in its body, which for nine columns (~24 buffers) cost ~1.6 KB per task's
/// batch — most of what the client received (26 KB for 16 tasks at 10 M rows); with three
/// buffers a batch costs its JSON and little more. An array, not an object: field names in
/// every row made a row larger than the columns' (at 1 024 shards, 239 KB against 177 KB).
pub(crate) fn summary_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        SUMMARY_COLUMN,
        DataType::Binary,
        false,
    )]))
}

/// The summary's column.
const SUMMARY_COLUMN: &str = "cg_files";

/// A [`SinkItem`] as the summary carries it, a JSON array of exactly these, in this order:
/// attempt, output ([`Output::name`]), shard ([`Output::shard`]), file, rows, bytes, sha256,
/// members, seen.
#[derive(Debug, Serialize, Deserialize)]
struct WireItem(
    String,
    String,
    Option<u32>,
    String,
    u64,
    u64,
    String,
    u64,
    Vec<u32>,
);

/// Summary rows as a batch.
pub(crate) fn summary_batch(items: &[SinkItem]) -> Result<RecordBatch, BuildError> {
    let mut column = BinaryBuilder::new();
    for i in items {
        let wire = WireItem(
            i.attempt.clone(),
            i.output.name().to_owned(),
            i.output.shard(),
            i.file.clone(),
            i.rows,
            i.bytes,
            i.sha256.clone(),
            i.members,
            i.seen.clone(),
        );
        column.append_value(serde_json::to_vec(&wire)?);
    }
    RecordBatch::try_new(summary_schema(), vec![Arc::new(column.finish())])
        .map_err(BuildError::from)
}

/// The summary rows of a batch the sink returned.
pub(crate) fn summary_items(batch: &RecordBatch) -> Result<Vec<SinkItem>, BuildError> {
    let bad = || BuildError::Engine("the cluster returned a malformed shard summary".into());
    if batch.schema().fields() != summary_schema().fields() {
        return Err(bad());
    }
    let column = batch.column(0).as_binary_opt::<i32>().ok_or_else(bad)?;
    (0..batch.num_rows())
        .map(|i| {
            if column.is_null(i) {
                return Err(bad());
            }
            let WireItem(attempt, output, shard, file, rows, bytes, sha256, members, seen) =
                serde_json::from_slice(column.value(i)).map_err(|_| bad())?;
            let output = match (output.as_str(), shard) {
                ("records", None) => Output::Records,
                ("shard", Some(shard)) => Output::Shard(shard),
                ("member-keys", None) => Output::MemberKeys,
                _ => return Err(bad()),
            };
            Ok(SinkItem {
                attempt,
                output,
                file,
                rows,
                bytes,
                sha256,
                members,
                seen,
            })
        })
        .collect()
}

/// The logical node: writes its input (content decided and redacted, with `cg_shard`) as
/// shards and decision records; outputs the summary rows.
#[derive(Clone)]
pub struct ShardSinkNode {
    sink: SinkSpec,
    gate: Arc<GateRef>,
    input: LogicalPlan,
    schema: DFSchemaRef,
}

impl ShardSinkNode {
    /// The sink over `input`.
    pub(crate) fn new(sink: SinkSpec, gate: Arc<GateRef>, input: LogicalPlan) -> Result<Self> {
        let schema = Arc::new(DFSchema::try_from(summary_schema())?);
        Ok(ShardSinkNode {
            sink,
            gate,
            input,
            schema,
        })
    }

    /// The node as a plan.
    pub(crate) fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }

    /// Its payload in a plan.
    #[cfg(feature = "ballista")]
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        encode(&self.sink, &self.gate)
    }

    /// The node from its payload and input.
    #[cfg(feature = "ballista")]
    pub(crate) fn decode(buf: &[u8], input: LogicalPlan) -> Option<Result<ShardSinkNode>> {
        decode(buf).map(|r| r.and_then(|(sink, gate)| ShardSinkNode::new(sink, gate, input)))
    }

    fn key(&self) -> (&SinkSpec, Option<&GateSpec>) {
        (&self.sink, self.gate.spec())
    }
}

impl fmt::Debug for ShardSinkNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardSinkNode")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ShardSinkNode {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key() && self.input == other.input
    }
}

impl Eq for ShardSinkNode {}

impl Hash for ShardSinkNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sink.hash(state);
        self.input.hash(state);
    }
}

impl PartialOrd for ShardSinkNode {
    /// By the sink's spec; nodes that differ only in their input or gate are unordered.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.sink.partial_cmp(&other.sink) {
            Some(Ordering::Equal) if self != other => None,
            order => order,
        }
    }
}

impl UserDefinedLogicalNodeCore for ShardSinkNode {
    fn name(&self) -> &str {
        "ShardSink"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ShardSink: shards={}, writing={}, text={}",
            self.sink.shards,
            self.sink.write.len(),
            self.sink.text
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Plan("ShardSink has one input".into()))?;
        ShardSinkNode::new(self.sink.clone(), self.gate.clone(), input)
    }
}

/// The physical sink (see the module docs).
#[derive(Debug)]
pub struct ShardSinkExec {
    sink: Arc<SinkSpec>,
    gate: Arc<GateRef>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl ShardSinkExec {
    /// The sink over `input`, which must have a `cg_shard` column.
    pub(crate) fn new(
        sink: Arc<SinkSpec>,
        gate: Arc<GateRef>,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<ShardSinkExec> {
        input.schema().index_of(SHARD_COLUMN)?;
        input.schema().index_of(ROUTE_COLUMN)?;
        let partitions = input.properties().output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(summary_schema()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(ShardSinkExec {
            sink,
            gate,
            input,
            properties,
        })
    }

    /// Its payload in a plan.
    #[cfg(feature = "ballista")]
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        encode(&self.sink, &self.gate)
    }

    /// The exec from its payload and input.
    #[cfg(feature = "ballista")]
    pub(crate) fn decode(
        buf: &[u8],
        input: Arc<dyn ExecutionPlan>,
    ) -> Option<Result<ShardSinkExec>> {
        decode(buf)
            .map(|r| r.and_then(|(sink, gate)| ShardSinkExec::new(Arc::new(sink), gate, input)))
    }
}

impl DisplayAs for ShardSinkExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ShardSinkExec: shards={}, writing={}, text={}",
            self.sink.shards,
            self.sink.write.len(),
            self.sink.text
        )
    }
}

impl ExecutionPlan for ShardSinkExec {
    fn name(&self) -> &str {
        "ShardSinkExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// Every row of a shard must reach one task: the input is partitioned by its shard's route
    /// (`cg_route`).
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![partitioned_by(&self.input, ROUTE_COLUMN)]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .filter(|_| children.is_empty())
            .ok_or_else(|| DataFusionError::Plan("ShardSinkExec has one input".into()))?;
        Ok(Arc::new(ShardSinkExec::new(
            self.sink.clone(),
            self.gate.clone(),
            input,
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let (sink, gate) = (self.sink.clone(), self.gate.clone());
        let written = async move {
            let items = crate::pass::sink_partition(&sink, &gate, input, partition).await;
            items
                .and_then(|items| summary_batch(&items))
                .map_err(|e| DataFusionError::External(Box::new(e)))
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            summary_schema(),
            futures_lite::stream::once_future(written),
        )))
    }
}

/// Plans [`ShardSinkNode`] as [`ShardSinkExec`], and the narrow join for mentions
/// ([`crate::mention_join`]) as its exec (the scheduler's planner, see
/// [`SinkQueryPlanner`]).
#[derive(Debug, Default)]
pub struct SinkPlanner;

#[async_trait::async_trait]
impl datafusion::physical_planner::ExtensionPlanner for SinkPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn datafusion::physical_planner::PhysicalPlanner,
        node: &dyn datafusion::logical_expr::UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning_ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if node.as_any().is::<crate::mention_join::MentionJoinNode>() {
            let [content, resolved] = physical_inputs else {
                return Err(DataFusionError::Plan("MentionJoin has two inputs".into()));
            };
            return Ok(Some(Arc::new(
                crate::mention_join::MentionJoinExec::try_new(content.clone(), resolved.clone())?,
            )));
        }
        let Some(sink) = node.as_any().downcast_ref::<ShardSinkNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Plan("ShardSink has one input".into()));
        };
        Ok(Some(Arc::new(ShardSinkExec::new(
            Arc::new(sink.sink.clone()),
            sink.gate.clone(),
            input.clone(),
        )?)))
    }
}

/// DataFusion's physical planner with [`SinkPlanner`].
#[derive(Debug, Default)]
pub struct SinkQueryPlanner;

#[async_trait::async_trait]
impl datafusion::execution::context::QueryPlanner for SinkQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        use datafusion::physical_planner::PhysicalPlanner;
        datafusion::physical_planner::DefaultPhysicalPlanner::with_extension_planners(vec![
            Arc::new(SinkPlanner),
        ])
        .create_physical_plan(logical_plan, session)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::UInt32Array;

    #[test]
    fn an_executors_memory_is_shared_by_its_task_slots() {
        // 2 GiB on an executor with 2 slots: each task holds at most 512 MiB of rows and
        // records (half the memory, per slot); without an executor's setting, half the build's.
        assert_eq!(budget_of(Some((2048, 2)), 64), 512 << 20);
        assert_eq!(budget_of(Some((2048, 0)), 64), 1024 << 20);
        assert_eq!(budget_of(None, 2048), 1024 << 20);
        assert!(budget_of(Some((0, 4)), 0) > 0);
    }

    #[test]
    fn summaries_read_back_as_written() {
        let items = vec![
            SinkItem {
                attempt: "12-ab".into(),
                output: Output::Shard(7),
                file: "shards/part-00007.parquet".into(),
                rows: 12,
                bytes: 4096,
                sha256: "ab".repeat(32),
                members: 5,
                seen: Vec::new(),
            },
            SinkItem {
                attempt: "12-ab".into(),
                output: Output::Records,
                file: "records/part-00003-1-2.bin".into(),
                rows: 40,
                bytes: 40 * 48,
                sha256: String::new(),
                members: 0,
                seen: vec![0, 7, NO_ROUTE],
            },
            SinkItem {
                attempt: "12-ab".into(),
                output: Output::MemberKeys,
                file: "keys/part-00003-1-2.bin".into(),
                rows: 5,
                bytes: 5 * KEY_RECORD_BYTES as u64,
                sha256: "cd".repeat(32),
                members: 5,
                seen: Vec::new(),
            },
        ];
        let batch = summary_batch(&items).unwrap();
        assert_eq!(summary_items(&batch).unwrap(), items);
        // Another schema is refused, never half read.
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::UInt32, false)])),
            vec![Arc::new(UInt32Array::from(vec![1]))],
        )
        .unwrap();
        assert!(summary_items(&other).is_err());
        // A shard row without its shard, records with one, a field more or one fewer, or a row
        // that is not JSON is malformed.
        let row = |json: &str| {
            let column = arrow::array::BinaryArray::from_iter_values([json.as_bytes()]);
            RecordBatch::try_new(summary_schema(), vec![Arc::new(column)]).unwrap()
        };
        let good = r#"["a","shard",3,"f",1,2,"h",1,[]]"#;
        assert_eq!(summary_items(&row(good)).unwrap().len(), 1);
        for bad in [
            good.replace(",3,", ",null,"),
            good.replace(r#""shard""#, r#""records""#),
            good.replace("[]]", "[],1]"),
            good.replace(",[]]", "]"),
            "not json".to_owned(),
        ] {
            assert!(summary_items(&row(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_task_derives_keys_only_under_the_public_key_the_build_asks_for() {
        let secret = cg_proof::member_key::MemberKeySecret::from_seed(&[1u8; 32]).unwrap();
        let other = cg_proof::member_key::MemberKeySecret::from_seed(&[2u8; 32]).unwrap();
        let keys = SinkKeys {
            domain: "ds-1".into(),
            public_key: cg_proof::hex(&secret.public_key()),
        };
        assert!(secret_for(None, &keys).unwrap().is_none());
        assert!(secret_for(Some(&secret), &keys).unwrap().is_some());
        let err = secret_for(Some(&other), &keys).unwrap_err().to_string();
        assert!(err.contains(&keys.public_key), "{err}");
    }
}
