//! Apache Ballista wiring, kept in one module (its APIs change each release): the extension
//! codecs that carry consentgate's UDFs across processes, the client session of
//! `build --engine ballista://HOST:PORT`, and the scheduler and executor processes.
//!
//! UDFs travel by name in a Ballista plan; ours also need the build's gate. The codecs write a
//! gate UDF's [`GateSpec`] (where the client wrote the member facts as data and their digests,
//! purpose, cut-off, policy recipe — never a ledger URL or a member-input path) into the plan on
//! the client and the scheduler, and make the UDF again from it on the scheduler and the
//! executors; an executor makes the gate on first use and compiles each shard's members when it
//! first decides one of their rows, refusing facts whose digest differs from the client's
//! ([`crate::spec`], [`crate::facts_data`]). A gate UDF without a spec cannot be made, so such a
//! plan fails before a row is decided. `cg_shard` and `cg_in_shards` travel with their shard key
//! and count. The plan's top node is the shard sink ([`crate::sink`]), whose tasks write the
//! shards and decision records on the executors: the codecs carry it with its specs, and the
//! scheduler's sessions plan it ([`crate::sink::SinkQueryPlanner`]). The codecs wrap Ballista's
//! own, which handle its plan nodes and file formats.
//!
//! The scheduler and the executors must run the same consentgate version as the client (checked
//! by the spec) and reach the content file and the build's output directory at the same paths
//! (shared storage).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::BuildError;
use crate::mention_join::{MentionJoinExec, MentionJoinNode};
use crate::sink::{ShardSinkExec, ShardSinkNode, SinkQueryPlanner};
use crate::spec::GateSpec;
use crate::udf::{
    GATE_UDFS, MENTION_IDS, ROUTE, ShardFilterSpec, gate_udf_spec, mention_ids, route_from_spec,
    route_spec, shard_filter_from_spec, shard_filter_spec, shard_of_from_spec, shard_of_spec,
    udf_from_spec,
};

/// Marks a consentgate UDF payload (and its format version).
const MAGIC: &[u8] = b"consentgate-udf/1\0";

/// The shard filter of an incremental rebuild.
const SHARD_FILTER: &str = "cg_in_shards";

/// A member's shard (the key content is repartitioned by).
const SHARD_OF: &str = "cg_shard";

fn encode_gate_udf(node: &ScalarUDF, buf: &mut Vec<u8>) {
    if let Some(spec) = gate_udf_spec(node) {
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&spec.encode());
    } else if let Some(spec) = shard_filter_spec(node).or_else(|| shard_of_spec(node)) {
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&serde_json::to_vec(&spec).unwrap_or_default());
    } else if node.name() == MENTION_IDS {
        buf.extend_from_slice(MAGIC);
    } else if let Some(routes) = route_spec(node) {
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&serde_json::to_vec(routes).unwrap_or_default());
    }
}

/// One of consentgate's UDFs from its payload; `None` when `name` is not ours.
fn decode_gate_udf(name: &str, buf: &[u8]) -> Option<Result<Arc<ScalarUDF>>> {
    if !GATE_UDFS.contains(&name) && ![SHARD_FILTER, SHARD_OF, MENTION_IDS, ROUTE].contains(&name) {
        return None;
    }
    let payload = buf.strip_prefix(MAGIC).ok_or_else(|| {
        format!("`{name}` arrived without its build spec (a client of another version?)")
    });
    let made = if name == MENTION_IDS {
        payload.map(|_| mention_ids())
    } else if name == ROUTE {
        payload.and_then(|p| {
            serde_json::from_slice::<Vec<u64>>(p)
                .map_err(|e| format!("unreadable `{name}` routes: {e}"))
                .and_then(|routes| route_from_spec(routes).map_err(|e| e.to_string()))
        })
    } else if name == SHARD_FILTER || name == SHARD_OF {
        payload.and_then(|p| {
            serde_json::from_slice::<ShardFilterSpec>(p)
                .map_err(|e| format!("unreadable `{name}` spec: {e}"))
                .and_then(|spec| {
                    if name == SHARD_OF {
                        shard_of_from_spec(&spec)
                    } else {
                        shard_filter_from_spec(&spec)
                    }
                    .map_err(|e| e.to_string())
                })
        })
    } else {
        payload
            .and_then(|p| GateSpec::decode(p).map_err(|e| e.to_string()))
            .and_then(|spec| udf_from_spec(name, spec).ok_or_else(|| format!("no UDF `{name}`")))
    };
    Some(
        made.map(Arc::new)
            .map_err(|m| DataFusionError::Plan(format!("consentgate: {m}"))),
    )
}

/// The logical-plan codec: Ballista's, plus consentgate's UDFs.
#[derive(Default)]
pub struct LogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl fmt::Debug for LogicalCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("consentgate::LogicalCodec")
    }
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        if let [input] = inputs
            && let Some(node) = ShardSinkNode::decode(buf, input.clone())
        {
            return Ok(Extension {
                node: Arc::new(node?),
            });
        }
        if let [content, resolved] = inputs
            && let Some(node) = MentionJoinNode::decode(buf, content.clone(), resolved.clone())
        {
            return Ok(Extension {
                node: Arc::new(node?),
            });
        }
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(sink) = node.node.as_any().downcast_ref::<ShardSinkNode>() {
            buf.extend_from_slice(&sink.encode()?);
            return Ok(());
        }
        if node.node.as_any().is::<MentionJoinNode>() {
            buf.extend_from_slice(crate::mention_join::MAGIC);
            return Ok(());
        }
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn datafusion::catalog::TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_gate_udf(name, buf).unwrap_or_else(|| self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_gate_udf(node, buf);
        Ok(())
    }
}

/// The physical-plan codec: Ballista's, plus consentgate's UDFs.
#[derive(Default)]
pub struct PhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl fmt::Debug for PhysicalCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("consentgate::PhysicalCodec")
    }
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let [input] = inputs
            && let Some(exec) = ShardSinkExec::decode(buf, input.clone())
        {
            return Ok(Arc::new(exec?));
        }
        if let [content, resolved] = inputs
            && buf == crate::mention_join::MAGIC
        {
            return Ok(Arc::new(MentionJoinExec::try_new(
                content.clone(),
                resolved.clone(),
            )?));
        }
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(sink) = node.downcast_ref::<ShardSinkExec>() {
            buf.extend_from_slice(&sink.encode()?);
            return Ok(());
        }
        if node.downcast_ref::<MentionJoinExec>().is_some() {
            buf.extend_from_slice(crate::mention_join::MAGIC);
            return Ok(());
        }
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_gate_udf(name, buf).unwrap_or_else(|| self.inner.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_gate_udf(node, buf);
        Ok(())
    }
}

/// The fewest tasks per stage a distributed build chooses by itself ([`partitions_for`] sizes
/// them from the content), and the tasks of a client session not told otherwise; the engine
/// URL's `?partitions=N` sets any number, e.g. the cluster's task slots.
pub const DISTRIBUTED_PARTITIONS: usize = 4;

/// The most tasks per stage [`partitions_for`] chooses by itself.
pub const MAX_DEFAULT_PARTITIONS: usize = 4096;

/// Tasks per stage for `content_bytes` of content (its file's or object's size), when the
/// engine URL does not say (`?partitions=N`).
///
/// The shuffle between the scan and the shard sink writes one block per (map task, sink task)
/// pair, and Ballista 55's reader holds a block it fetched whole, decoded, until the sink has
/// read it: with a fixed task count the blocks, and the executors' memory, grow with the
/// content. So the tasks grow with its square root, keeping a block near 2 MiB of (compressed)
/// content: ⌈√(bytes / 2 MiB)⌉, at least [`DISTRIBUTED_PARTITIONS`], at most
/// [`MAX_DEFAULT_PARTITIONS`]. 10 M rows (490 MB of Parquet) get 16 tasks: executors peaked at
/// 939 + 696 MiB instead of 1 361 + 1 387 MiB with 4, in the same time (docs/distributed.md).
pub fn partitions_for(content_bytes: u64) -> usize {
    const BLOCK: u64 = 2 << 20;
    let blocks = content_bytes.div_ceil(BLOCK);
    let mut n = blocks.isqrt();
    if n * n < blocks {
        n += 1;
    }
    usize::try_from(n)
        .unwrap_or(MAX_DEFAULT_PARTITIONS)
        .clamp(DISTRIBUTED_PARTITIONS, MAX_DEFAULT_PARTITIONS)
}

/// Cancels the cluster job a client's `plan` runs as (Ballista's `DistributedQueryExec`),
/// asking the scheduler at `scheduler` (`ballista://HOST:PORT`). Returns the job's id once
/// the scheduler took the request; `None` if the plan is not a job yet, or the scheduler did
/// not answer within [`CANCEL_WAIT`].
pub(crate) async fn cancel_job(scheduler: &str, plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    use ballista_core::execution_plans::DistributedQueryExec;
    use ballista_core::serde::protobuf::CancelJobParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    let job_id = plan
        .downcast_ref::<DistributedQueryExec<datafusion_proto::protobuf::LogicalPlanNode>>()?
        .job_id()?
        .to_string();
    let address = format!("http://{}", scheduler.strip_prefix("ballista://")?);
    let request = async {
        let mut client = SchedulerGrpcClient::connect(address).await.ok()?;
        client
            .cancel_job(CancelJobParams {
                job_id: job_id.clone(),
            })
            .await
            .ok()
    };
    tokio::time::timeout(CANCEL_WAIT, request)
        .await
        .ok()
        .flatten()
        .map(|_| job_id)
}

/// How long a client that stopped waiting for its job waits for the scheduler to cancel it.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A client session on the Ballista scheduler at `url` (`ballista://HOST:PORT`) with
/// consentgate's codecs, splitting each stage into `partitions` tasks (default
/// [`DISTRIBUTED_PARTITIONS`]), each map task buffering up to `shuffle_mb` MiB while it
/// shuffles (default Ballista's).
pub(crate) async fn client_session(
    url: &str,
    partitions: Option<usize>,
    shuffle_mb: Option<usize>,
) -> Result<SessionContext, BuildError> {
    let state = SessionStateBuilder::new()
        .with_config(client_config(partitions, shuffle_mb)?)
        .with_default_features()
        .build();
    SessionContext::remote_with_state(url, state)
        .await
        .map_err(|e| BuildError::Unreachable {
            url: url.to_owned(),
            source: e,
        })
}

/// The client's session config: consentgate's codecs, `partitions` tasks per stage (default
/// [`DISTRIBUTED_PARTITIONS`]), `shuffle_mb` MiB of shuffle buffer per map task (Ballista 55's
/// hash shuffle is sort-based and spills past it; default 256).
fn client_config(
    partitions: Option<usize>,
    shuffle_mb: Option<usize>,
) -> Result<SessionConfig, BuildError> {
    // The join that routes content by shard (`pass::route_by_shard`) must be a partitioned
    // hash join whatever the sizes — its point is the shuffle by shard — never a broadcast
    // (Ballista's adaptive planner and DataFusion's both promote small build sides) nor a
    // sort-merge join (Ballista's default, which would sort every row's text).
    //
    // Ballista 55's adaptive planner (AQE) is off: when an executor is lost after writing
    // shuffle output, it resubmits the stages and then fails to record their tasks ("Can't
    // find active stage to update stage outputs"), and the job never ends (seen in the test
    // that kills an executor mid-build). The static planner re-runs the lost map tasks.
    let mut config = SessionConfig::new_with_ballista()
        .with_ballista_adaptive_query_planner(false)
        .with_ballista_broadcast_join_threshold_bytes(0)
        .with_ballista_broadcast_join_threshold_rows(0);
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.hash_join_single_partition_threshold = 0;
    optimizer.hash_join_single_partition_threshold_rows = 0;
    optimizer.prefer_hash_join = true;
    // Each task reads its own part of the content: DataFusion 55's file streams would otherwise
    // take work from sibling streams that an executor running one task never polls (its docs
    // ask executors that run partitions as isolated tasks to turn this off).
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    // The client tracks its job by asking for its status (pull) rather than by the scheduler's
    // pushed updates: a pulled job's id is known as soon as the scheduler took it, so a client
    // that stops waiting (`timeout=SECS`) can cancel it; a pushed job's id only arrives with
    // its first status update, which a stalled cluster may never send.
    config
        .options_mut()
        .set(ballista_core::config::BALLISTA_CLIENT_PULL, "true")
        .map_err(BuildError::from)?;
    if let Some(mb) = shuffle_mb {
        config
            .options_mut()
            .set(
                "ballista.shuffle.sort_based.memory_limit_per_task_bytes",
                &(mb << 20).to_string(),
            )
            .map_err(BuildError::from)?;
    }
    Ok(config
        .with_target_partitions(partitions.unwrap_or(DISTRIBUTED_PARTITIONS))
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default())))
}

/// How tasks reach the executors: each executor asks the scheduler for work when it has a free
/// task slot (Ballista's pull-staged policy), every process of a cluster alike.
///
/// Not Ballista's default, push-staged, where the scheduler counts each executor's free slots
/// itself and hands them back when a task's status arrives. In Ballista 55 the status of a task
/// whose stage was rolled back meanwhile gives nothing back (the slots are looked up in the
/// stage's task list, gone with the rollback): when an executor is lost while a later stage
/// runs on a survivor, that stage is rolled back, its task on the survivor cancelled, and the
/// survivor's slots stay taken for good, so the rerun of the lost work is never scheduled and
/// the build never ends (seen in the test that kills an executor mid-build, three runs in three
/// on a loaded machine; the scheduler's log showed the rollback, the ignored status and
/// nothing after; the same class as apache/datafusion-ballista#2418). A pulling executor
/// counts its own slots.
const SCHEDULING: ballista_core::config::TaskSchedulingPolicy =
    ballista_core::config::TaskSchedulingPolicy::PullStaged;

/// The least `executor_timeout_secs` a scheduler accepts: a pulling executor's polls are its
/// heartbeats, and a busy one polls only every 5 s (Ballista 55's `HEARTBEAT_POLL_INTERVAL`), so
/// a shorter timeout would count busy executors as lost.
pub const MIN_EXECUTOR_TIMEOUT_SECS: u64 = 10;

/// How to run a scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Address of its gRPC service (executors and clients connect here).
    pub bind: SocketAddr,
    /// Seconds without a poll from an executor before it counts as lost and its tasks are
    /// scheduled elsewhere (at least [`MIN_EXECUTOR_TIMEOUT_SECS`]).
    pub executor_timeout_secs: u64,
    /// Hand tasks to executors in turn (one each while slots are free) instead of filling
    /// one executor's slots first (Ballista's default).
    pub round_robin: bool,
}

/// Runs a Ballista scheduler with consentgate's codecs until the process is stopped.
pub async fn run_scheduler(opts: SchedulerOptions) -> Result<(), BuildError> {
    let engine = BuildError::from;
    if opts.executor_timeout_secs < MIN_EXECUTOR_TIMEOUT_SECS {
        return Err(BuildError::Input(format!(
            "an executor timeout of {} s is shorter than the {MIN_EXECUTOR_TIMEOUT_SECS} s a busy executor may go between its polls",
            opts.executor_timeout_secs
        )));
    }
    let config = ballista_scheduler::config::SchedulerConfig {
        bind_host: opts.bind.ip().to_string(),
        bind_port: opts.bind.port(),
        external_host: opts.bind.ip().to_string(),
        // Executors pull their tasks (see [`SCHEDULING`]).
        scheduling_policy: SCHEDULING,
        executor_timeout_seconds: opts.executor_timeout_secs,
        expire_dead_executor_interval_seconds: (opts.executor_timeout_secs / 3).max(1),
        no_executors_grace_period_seconds: opts.executor_timeout_secs,
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        override_session_builder: Some(Arc::new(scheduler_session)),
        task_distribution: if opts.round_robin {
            ballista_scheduler::config::TaskDistributionPolicy::RoundRobin
        } else {
            ballista_scheduler::config::TaskDistributionPolicy::Bias
        },
        ..Default::default()
    };
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(engine)?;
    ballista_scheduler::scheduler_process::start_server(cluster, opts.bind, Arc::new(config))
        .await
        .map_err(engine)
}

/// A job's session on the scheduler: Ballista's, planning consentgate's shard sink
/// ([`crate::sink`]).
fn scheduler_session(config: SessionConfig) -> Result<datafusion::execution::SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    // Planning a scan of `s3://…` content lists it through a store made from this process's
    // environment (the client's credentials never travel in the plan).
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(crate::store::EnvObjectStores::default()))
        .build_arc()?;
    Ok(SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(runtime)
        .with_query_planner(Arc::new(SinkQueryPlanner))
        .build())
}

/// How to run an executor.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// The scheduler's host.
    pub scheduler_host: String,
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// Host to bind and advertise.
    pub bind_host: String,
    /// Arrow Flight port (results and shuffle data are fetched here).
    pub flight_port: u16,
    /// gRPC port, advertised to the scheduler. An executor that pulls its tasks does not
    /// listen on it; the scheduler's calls to it (cancelling a lost job's tasks) fail and are
    /// logged, and the tasks run to their end (their files are fenced, see `cluster`).
    pub grpc_port: u16,
    /// Tasks run at once (0: one per core).
    pub concurrency: usize,
    /// Directory for shuffle files (default: a temporary directory).
    pub work_dir: Option<String>,
    /// Memory the shard sink's tasks may hold before they spill, in MiB, shared by the task
    /// slots ([`crate::sink::task_budget`]).
    pub memory_mb: usize,
    /// The member-key secret (`consentgate keys export-member-key`): with it, the sink's tasks
    /// derive the member keys of the shards they write; without it, the client derives them.
    pub member_key: Option<cg_proof::member_key::MemberKeySecret>,
}

/// Runs a Ballista executor with consentgate's codecs until the process is stopped.
pub async fn run_executor(opts: ExecutorOptions) -> Result<(), BuildError> {
    let slots = match opts.concurrency {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    crate::sink::set_executor_memory(opts.memory_mb, slots);
    if let Some(secret) = opts.member_key {
        crate::sink::set_executor_member_key(secret);
    }
    // Each task's runtime reads `s3://…` content through a store made from this executor's
    // environment; spill files go to the work directory when one is given.
    let stores: Arc<crate::store::EnvObjectStores> = Arc::default();
    let spill_dir = opts.work_dir.clone();
    let runtime_producer: ballista_core::RuntimeProducer = Arc::new(move |_| {
        let mut builder = RuntimeEnvBuilder::new().with_object_store_registry(stores.clone());
        if let Some(dir) = &spill_dir {
            builder = builder.with_temp_file_path(dir);
        }
        builder.build_arc()
    });
    let config = ballista_executor::executor_process::ExecutorProcessConfig {
        scheduler_host: opts.scheduler_host,
        scheduler_port: opts.scheduler_port,
        bind_host: opts.bind_host.clone(),
        external_host: Some(opts.bind_host),
        port: opts.flight_port,
        grpc_port: opts.grpc_port,
        vcores: opts.concurrency,
        work_dir: opts.work_dir,
        task_scheduling_policy: SCHEDULING,
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        override_runtime_producer: Some(runtime_producer),
        ..Default::default()
    };
    ballista_executor::executor_process::start_executor_process(Arc::new(config))
        .await
        .map_err(BuildError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GateSpec {
        let policy =
            cg_policy::Policy::bundled("li-2025-11", cg_policy::PolicyConfig::default()).unwrap();
        let facts = crate::facts_data::FactsData {
            dir: "/shared/out/.ds-1.partial-1/facts".into(),
            key: "ab01".into(),
            shards: vec![crate::facts_data::ShardFacts {
                sha256: "0".repeat(64),
                members: 3,
                mentions_sha256: "1".repeat(64),
            }],
        };
        GateSpec::new(
            facts,
            std::path::Path::new("/shared/content.parquet"),
            &[],
            &cg_model::Purpose::genai_training(),
            cg_model::Timestamp::parse("2025-12-01").unwrap(),
            true,
            &policy,
        )
    }

    #[test]
    fn a_scheduler_refuses_an_executor_timeout_shorter_than_a_busy_executors_polls() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let opts = SchedulerOptions {
            bind: "127.0.0.1:0".parse().unwrap(),
            executor_timeout_secs: MIN_EXECUTOR_TIMEOUT_SECS - 1,
            round_robin: false,
        };
        // Bounded: a scheduler that accepted the timeout would serve until stopped.
        let refused = runtime
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(10), run_scheduler(opts)).await
            })
            .expect("the scheduler started instead of refusing the timeout");
        let err = refused.unwrap_err().to_string();
        assert!(err.contains("shorter than the 10 s"), "{err}");
    }

    #[test]
    fn both_codecs_carry_every_gate_udf_with_its_spec() {
        let spec = spec();
        let logical = LogicalCodec::default();
        let physical = PhysicalCodec::default();
        for name in GATE_UDFS {
            let udf = udf_from_spec(name, spec.clone()).unwrap();
            let mut a = Vec::new();
            logical.try_encode_udf(&udf, &mut a).unwrap();
            let mut b = Vec::new();
            physical.try_encode_udf(&udf, &mut b).unwrap();
            assert_eq!(a, b);
            assert!(a.starts_with(MAGIC));
            for decoded in [
                logical.try_decode_udf(name, &a).unwrap(),
                physical.try_decode_udf(name, &b).unwrap(),
            ] {
                assert_eq!(decoded.name(), name);
                assert_eq!(gate_udf_spec(&decoded), Some(&spec));
            }
        }
    }

    #[test]
    fn both_codecs_carry_the_shard_sink_with_its_specs() {
        use datafusion::logical_expr::LogicalPlanBuilder;
        let sink = crate::sink::SinkSpec {
            dir: "/shared/out/.ds-1.partial-1".into(),
            scratch: "/shared/out/.ds-1.partial-1.scratch".into(),
            shards: 8,
            key: "ab01".into(),
            text: true,
            write: vec![0, 3, 7],
            memory_mb: 256,
            member_keys: Some(crate::sink::SinkKeys {
                domain: "ds-1".into(),
                public_key: "ab".repeat(32),
            }),
            store: Some("s3://bucket/out/.ds-1.attempts-1".into()),
        };
        let gate = Arc::new(crate::spec::GateRef::from_spec(spec()));
        let input = LogicalPlanBuilder::empty(false).build().unwrap();
        let node = ShardSinkNode::new(sink.clone(), gate.clone(), input.clone()).unwrap();
        let logical = LogicalCodec::default();
        let mut buf = Vec::new();
        logical
            .try_encode(
                &Extension {
                    node: Arc::new(node.clone()),
                },
                &mut buf,
            )
            .unwrap();
        assert!(buf.starts_with(crate::sink::MAGIC));
        let ctx = SessionContext::new().task_ctx();
        let back = logical
            .try_decode(&buf, std::slice::from_ref(&input), &ctx)
            .unwrap();
        let back = back.node.as_any().downcast_ref::<ShardSinkNode>().unwrap();
        assert!(*back == node, "the node comes back with both specs");

        // The physical exec, over an input with the shard and routing columns.
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new(
                crate::sink::SHARD_COLUMN,
                arrow::datatypes::DataType::UInt32,
                true,
            ),
            arrow::datatypes::Field::new(
                crate::sink::ROUTE_COLUMN,
                arrow::datatypes::DataType::UInt64,
                true,
            ),
        ]));
        let input: Arc<dyn ExecutionPlan> =
            Arc::new(datafusion::physical_plan::empty::EmptyExec::new(schema));
        let exec = ShardSinkExec::new(Arc::new(sink.clone()), gate, input.clone()).unwrap();
        let physical = PhysicalCodec::default();
        let mut buf = Vec::new();
        let converter = datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {};
        physical
            .try_encode(Arc::new(exec), &mut buf, &converter)
            .unwrap();
        let back = physical
            .try_decode(&buf, std::slice::from_ref(&input), &ctx, &converter)
            .unwrap();
        assert_eq!(back.name(), "ShardSinkExec");
        // Anything else with one input is Ballista's business (and not a sink).
        assert!(
            crate::sink::ShardSinkNode::decode(
                b"not a sink",
                LogicalPlanBuilder::empty(false).build().unwrap()
            )
            .is_none()
        );
    }

    #[test]
    fn both_codecs_carry_the_mention_join_and_its_functions() {
        use arrow::datatypes::{DataType, Field, Schema};
        use datafusion::logical_expr::UserDefinedLogicalNodeCore;
        let content = Arc::new(Schema::new(vec![
            Field::new("mentions", DataType::Utf8, true),
            Field::new(crate::sink::SHARD_COLUMN, DataType::UInt32, true),
            Field::new(crate::sink::ROUTE_COLUMN, DataType::UInt64, true),
        ]));
        let resolved = Arc::new(Schema::new(vec![
            Field::new(crate::mention_join::AUTHOR_ROUTE, DataType::UInt64, true),
            Field::new(crate::mention_join::MENTIONED, DataType::Int64, true),
            Field::new(
                crate::mention_join::STATUS,
                crate::mention_join::status_type(),
                true,
            ),
        ]));
        let plan = |schema: &Arc<Schema>| {
            let table = datafusion::logical_expr::logical_plan::table_scan(Some("t"), schema, None)
                .unwrap();
            table.build().unwrap()
        };
        let inputs = [plan(&content), plan(&resolved)];
        let node = MentionJoinNode::try_new(inputs[0].clone(), inputs[1].clone()).unwrap();
        let logical = LogicalCodec::default();
        let mut buf = Vec::new();
        logical
            .try_encode(
                &Extension {
                    node: Arc::new(node.clone()),
                },
                &mut buf,
            )
            .unwrap();
        let ctx = SessionContext::new().task_ctx();
        let back = logical.try_decode(&buf, &inputs, &ctx).unwrap();
        let back = back
            .node
            .as_any()
            .downcast_ref::<MentionJoinNode>()
            .unwrap();
        assert!(*back == node);
        assert_eq!(
            back.schema()
                .field_with_unqualified_name("mentions")
                .unwrap()
                .data_type(),
            &crate::mention_join::resolved_type()
        );
        // Content without `mentions`, or pairs without a status: refused when planned.
        assert!(MentionJoinNode::try_new(inputs[1].clone(), inputs[1].clone()).is_err());
        assert!(MentionJoinNode::try_new(inputs[0].clone(), inputs[0].clone()).is_err());

        let empty = |schema: &Arc<Schema>| -> Arc<dyn ExecutionPlan> {
            Arc::new(datafusion::physical_plan::empty::EmptyExec::new(
                schema.clone(),
            ))
        };
        let children = [empty(&content), empty(&resolved)];
        let exec = MentionJoinExec::try_new(children[0].clone(), children[1].clone()).unwrap();
        let physical = PhysicalCodec::default();
        let converter = datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {};
        let mut buf = Vec::new();
        physical
            .try_encode(Arc::new(exec), &mut buf, &converter)
            .unwrap();
        let back = physical
            .try_decode(&buf, &children, &ctx, &converter)
            .unwrap();
        assert_eq!(back.name(), "MentionJoinExec");
        assert_eq!(
            back.schema()
                .field_with_name("mentions")
                .unwrap()
                .data_type(),
            &crate::mention_join::resolved_type()
        );

        // `cg_mention_ids` travels by name, marked as ours.
        let udf = mention_ids();
        let mut buf = Vec::new();
        physical.try_encode_udf(&udf, &mut buf).unwrap();
        assert_eq!(buf, MAGIC);
        assert_eq!(
            physical.try_decode_udf(MENTION_IDS, &buf).unwrap().name(),
            MENTION_IDS
        );
        assert!(physical.try_decode_udf(MENTION_IDS, b"").is_err());

        // `cg_route` travels with its routes, checked: one per shard.
        let routes = crate::udf::balanced_routes(8, 4).unwrap();
        let udf = crate::udf::route(Arc::new(routes.clone()));
        let mut buf = Vec::new();
        physical.try_encode_udf(&udf, &mut buf).unwrap();
        let back = physical.try_decode_udf(ROUTE, &buf).unwrap();
        assert_eq!(route_spec(&back), Some(routes.as_slice()));
        let odd = [MAGIC, b"[0, 0]"].concat();
        assert!(physical.try_decode_udf(ROUTE, &odd).is_err());
        assert!(
            physical
                .try_decode_udf(ROUTE, &[MAGIC, b"[]"].concat())
                .is_err()
        );
    }

    #[test]
    fn the_shard_filter_travels_with_its_key_and_shards() {
        let keep: rustc_hash::FxHashSet<u32> = [3, 1, 7].into_iter().collect();
        let udf = crate::udf::shard_filter(&[0xab, 0x01], 8, Arc::new(keep));
        let codec = PhysicalCodec::default();
        let mut buf = Vec::new();
        codec.try_encode_udf(&udf, &mut buf).unwrap();
        let back = codec.try_decode_udf(SHARD_FILTER, &buf).unwrap();
        let spec = shard_filter_spec(&back).unwrap();
        assert_eq!(
            spec,
            ShardFilterSpec {
                key: "ab01".into(),
                shards: 8,
                keep: vec![1, 3, 7]
            }
        );
        assert_eq!(shard_filter_spec(&udf), Some(spec));
        assert!(codec.try_decode_udf(SHARD_FILTER, b"").is_err());
        let odd = [MAGIC, br#"{"key":"abc","shards":8,"keep":[]}"#].concat();
        assert!(codec.try_decode_udf(SHARD_FILTER, &odd).is_err());

        // `cg_shard` (what content is routed by) travels the same way, with its key and shard
        // count.
        let udf = crate::udf::shard_of(&[0xab, 0x01], 8);
        let mut buf = Vec::new();
        codec.try_encode_udf(&udf, &mut buf).unwrap();
        let back = codec.try_decode_udf(SHARD_OF, &buf).unwrap();
        assert_eq!(shard_of_spec(&back), shard_of_spec(&udf));
        assert_eq!(shard_of_spec(&back).unwrap().shards, 8);
        assert!(codec.try_decode_udf(SHARD_OF, b"").is_err());
    }

    #[test]
    fn a_gate_udf_without_its_spec_fails_the_plan() {
        let logical = LogicalCodec::default();
        for payload in [&b""[..], b"cg_gate", b"consentgate-udf/1\0{not json"] {
            let err = logical.try_decode_udf("cg_gate", payload).unwrap_err();
            assert!(err.to_string().contains("consentgate"), "{err}");
        }
        // Other functions are Ballista's business: nothing is written for them.
        let other = datafusion::functions::string::upper();
        let mut buf = Vec::new();
        logical.try_encode_udf(&other, &mut buf).unwrap();
        assert!(buf.is_empty());
        assert!(
            PhysicalCodec::default()
                .try_decode_udf("upper", &[])
                .is_err()
        );
    }

    #[test]
    fn engine_urls_parse() {
        use crate::config::Engine;
        assert_eq!(Engine::parse("datafusion"), Ok(Engine::Embedded));
        assert_eq!(
            Engine::parse("ballista://10.0.0.1:50050"),
            Ok(Engine::Ballista("ballista://10.0.0.1:50050".into()))
        );
        let e = Engine::parse("ballista://10.0.0.1:50050").unwrap();
        assert_eq!(e.ballista(), Some(("ballista://10.0.0.1:50050", None)));
        let e = Engine::parse("ballista://h:1?partitions=16").unwrap();
        assert_eq!(e.ballista(), Some(("ballista://h:1", Some(16))));
        // The count reaches the session the plan is made in.
        assert_eq!(
            super::client_config(Some(16), None)
                .unwrap()
                .target_partitions(),
            16
        );
        // So does the shuffle buffer (Ballista's default otherwise).
        let e = Engine::parse("ballista://h:1?partitions=8&shuffle-mb=64").unwrap();
        assert_eq!(e.ballista(), Some(("ballista://h:1", Some(8))));
        assert_eq!(e.shuffle_mb(), Some(64));
        assert_eq!(
            Engine::parse("ballista://h:1?shuffle-mb=32")
                .unwrap()
                .shuffle_mb(),
            Some(32)
        );
        let limit = |mb| {
            super::client_config(None, mb)
                .unwrap()
                .ballista_config()
                .shuffle_sort_based_memory_limit_per_task_bytes()
        };
        assert_eq!(limit(Some(64)), 64 << 20);
        assert_eq!(limit(None), 256 << 20);
        let config = super::client_config(None, None).unwrap();
        let optimizer = &config.options().optimizer;
        assert_eq!(optimizer.hash_join_single_partition_threshold, 0);
        assert_eq!(optimizer.hash_join_single_partition_threshold_rows, 0);
        assert!(optimizer.prefer_hash_join);
        assert_eq!(config.ballista_broadcast_join_threshold_rows(), 0);
        assert_eq!(config.ballista_broadcast_join_threshold_bytes(), 0);
        assert!(!config.ballista_adaptive_query_planner_enabled());
        assert_eq!(
            super::client_config(None, None)
                .unwrap()
                .target_partitions(),
            super::DISTRIBUTED_PARTITIONS
        );
        assert_eq!(Engine::Embedded.ballista(), None);
        // Tasks grow with the square root of the content's size, 2 MiB blocks.
        let mib = 1u64 << 20;
        assert_eq!(super::partitions_for(0), super::DISTRIBUTED_PARTITIONS);
        assert_eq!(
            super::partitions_for(20 * mib),
            super::DISTRIBUTED_PARTITIONS
        );
        assert_eq!(super::partitions_for(32 * mib), 4);
        assert_eq!(super::partitions_for(32 * mib + 1), 5);
        assert_eq!(super::partitions_for(490_811_782), 16);
        assert_eq!(super::partitions_for(512 * mib), 16);
        assert_eq!(super::partitions_for(5 << 40), 1620);
        assert_eq!(
            super::partitions_for(u64::MAX),
            super::MAX_DEFAULT_PARTITIONS
        );
        for bad in [
            "ballista://",
            "ballista://host",
            "ballista://:1",
            "spark://h:1",
            "",
            "ballista://h:1?partitions=0",
            "ballista://h:1?partitions=-1",
            "ballista://h:1?partitions=65537",
            "ballista://h:1?partitions=",
            "ballista://h:1?shards=4",
            "ballista://h:1?partitions=4&x=1",
            "ballista://h:1?partitions=4&partitions=8",
            "ballista://h:1?shuffle-mb=8",
            "ballista://h:1?shuffle-mb=",
            "ballista://h:1?partitions=4&",
        ] {
            assert!(Engine::parse(bad).is_err(), "{bad}");
        }
    }
}
