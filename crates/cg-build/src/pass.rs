//! One pass of content through the gate: the DataFusion plan (decide, optionally redact,
//! fingerprint, sort by content id) and the loop that writes `decisions.parquet` rows and shard
//! rows. A full build is one pass with text; an incremental rebuild is a decisions-only pass
//! over every row, then a pass with text over the rows of the shards it rewrites.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, UInt32Type};
use datafusion::common::ScalarValue;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext, col, lit,
};
use futures_lite::StreamExt;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::BuildError;
use crate::run::{BuildConfig, DecisionsOut, Engine, ShardOut, engine_error, keyed_shard};
use crate::spec::GateRef;

/// What a pass reads and writes.
pub(crate) struct PassSpec<'a> {
    /// Read and redact text for kept rows (false: decisions only).
    pub text: bool,
    /// Only rows of these shards are read (None: every row).
    pub only_shards: Option<Arc<FxHashSet<u32>>>,
    /// Where decision rows go (None: not written).
    pub decisions: Option<&'a mut DecisionsOut>,
    /// Shard writers (None at an index: that shard is not written by this pass).
    pub shards: &'a mut [Option<ShardOut>],
    /// Keep each row's (shard, fingerprint) by content id.
    pub collect: bool,
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
    /// The shard of every member with a kept row.
    pub shard_of: FxHashMap<i64, u32>,
    /// content id → (shard, redaction fingerprint), when collected.
    pub rows: FxHashMap<i64, (Option<u32>, i64)>,
}

/// Runs one pass.
#[expect(
    clippy::needless_range_loop,
    reason = "one row index walks several parallel Arrow columns"
)]
pub(crate) fn run_pass(
    cfg: &BuildConfig,
    gate_ref: &Arc<GateRef>,
    shard_key: &[u8],
    spec: PassSpec<'_>,
    progress: &dyn cg_model::progress::Progress,
) -> Result<PassOut, BuildError> {
    let PassSpec {
        text,
        only_shards,
        mut decisions,
        shards,
        collect,
    } = spec;
    let gate = gate_ref.gate().map_err(BuildError::Engine)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BuildError::Engine(e.to_string()))?;
    let mut out = PassOut::default();
    let mut last_id: Option<i64> = None;
    runtime.block_on(async {
        // A bounded memory pool: the sort spills to disk instead of holding every row
        // (`BuildConfig::memory_mb`), shared fairly between the partitions.
        let pool = Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(cfg.memory_mb.max(1) << 20));
        let runtime_env = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .build_arc()
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        let session = match &cfg.engine {
            Engine::Embedded => SessionContext::new_with_config_rt(SessionConfig::new().with_target_partitions(2), runtime_env),
            Engine::Ballista(url) => remote_session(url).await?,
        };
        let (gate_udf, redact_udf, fingerprint_udf) = crate::udf::udfs(gate_ref.clone());
        session.register_udf(gate_udf.clone());
        session.register_udf(redact_udf.clone());
        session.register_udf(fingerprint_udf.clone());
        // Absolute: a distributed build's executors resolve the path themselves.
        let scan = std::fs::canonicalize(&cfg.content).unwrap_or_else(|_| cfg.content.clone());
        let path = scan.to_str().ok_or_else(|| BuildError::Input("content path is not UTF-8".into()))?;
        let ext = cfg.content.extension().and_then(|e| e.to_str()).unwrap_or("");
        let ext_dot = format!(".{ext}");
        let df = match cg_io::Format::from_path(&cfg.content).map_err(|e| BuildError::Input(e.to_string()))? {
            cg_io::Format::Parquet => session.read_parquet(path, ParquetReadOptions::default().file_extension(&ext_dot)).await,
            cg_io::Format::Csv => {
                // Arrow's CSV reader trusts fields cut from bytes it validated together: make
                // sure the file is UTF-8 first (see `cg_io::check_utf8`).
                cg_io::check_utf8(&cfg.content).map_err(|e| BuildError::Source { file: cfg.content.display().to_string(), message: e.to_string() })?;
                session.read_csv(path, CsvReadOptions::new().has_header(true).file_extension(&ext_dot)).await
            }
            cg_io::Format::Jsonl => session.read_json(path, JsonReadOptions::default().file_extension(&ext_dot)).await,
        }
        .map_err(|e| BuildError::Source { file: cfg.content.display().to_string(), message: e.to_string() })?;
        for required in ["content_id", "member_id", "kind", "created_at", "text"] {
            if df.schema().field_with_unqualified_name(required).is_err() {
                return Err(BuildError::MissingColumn { file: cfg.content.display().to_string(), column: required.into() });
            }
        }
        let mentions = if df.schema().field_with_unqualified_name("mentions").is_ok() {
            col("mentions")
        } else {
            lit(ScalarValue::Null)
        };
        let mut columns = vec![
            datafusion::prelude::cast(col("content_id"), DataType::Int64).alias("content_id"),
            col("member_id"),
            col("kind"),
            col("created_at"),
            mentions.alias("mentions"),
        ];
        if text {
            columns.push(col("text"));
        }
        let mut df = df.select(columns).map_err(|e| BuildError::Engine(e.to_string()))?;
        if let Some(keep) = &only_shards {
            let filter = crate::udf::shard_filter(shard_key, cfg.shards, keep.clone());
            df = df.filter(filter.call(vec![col("member_id")])).map_err(|e| BuildError::Engine(e.to_string()))?;
        }
        let mut df = df
            .with_column(
                "outcome",
                gate_udf.call(vec![col("content_id"), col("member_id"), col("kind"), col("created_at"), col("mentions")]),
            )
            .and_then(|df| df.with_column("fingerprint", fingerprint_udf.call(vec![col("member_id"), col("mentions"), col("outcome")])))
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        let mut keep = vec![col("content_id"), col("member_id"), col("kind"), col("created_at"), col("outcome"), col("fingerprint")];
        if text {
            df = df
                .with_column("redacted", redact_udf.call(vec![col("text"), col("member_id"), col("mentions"), col("outcome")]))
                .map_err(|e| BuildError::Engine(e.to_string()))?;
            keep.push(col("redacted"));
        }
        // Only what the writer needs goes through the sort: not the original text. Content ids
        // are unique (a duplicate fails the build, or is quarantined), so the order of the kept
        // rows is the content-id order whatever the later keys.
        let sort: Vec<_> = keep.iter().map(|c| c.clone().sort(true, true)).collect();
        let df = df.select(keep).and_then(|df| df.sort(sort)).map_err(|e| BuildError::Engine(e.to_string()))?;
        let mut stream = df.execute_stream().await.map_err(|e| engine_error(&cfg.content, e))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| engine_error(&cfg.content, e))?;
            let n = batch.num_rows();
            let get = |name: &str| batch.column_by_name(name).cloned().ok_or_else(|| BuildError::Engine(format!("no column {name}")));
            let ids = get("content_id")?;
            let ids = ids.as_primitive_opt::<Int64Type>().ok_or_else(|| mistyped("content_id"))?;
            let member_col = arrow::compute::cast(&get("member_id")?, &DataType::Int64).map_err(|e| BuildError::Engine(e.to_string()))?;
            let member_col = member_col.as_primitive_opt::<Int64Type>().ok_or_else(|| mistyped("member_id"))?;
            let kinds = arrow::compute::cast(&get("kind")?, &DataType::Utf8).map_err(|e| BuildError::Engine(e.to_string()))?;
            let kinds = kinds.as_string_opt::<i32>().ok_or_else(|| mistyped("kind"))?;
            let created = crate::udf_times(&get("created_at")?).map_err(|e| BuildError::Engine(e.to_string()))?;
            let outcomes = get("outcome")?;
            let outcomes = outcomes.as_primitive_opt::<UInt32Type>().ok_or_else(|| mistyped("outcome"))?;
            let fingerprints = get("fingerprint")?;
            let fingerprints = fingerprints.as_primitive_opt::<Int64Type>().ok_or_else(|| mistyped("fingerprint"))?;
            let redacted = if text { Some(get("redacted")?) } else { None };
            let redacted = redacted.as_ref().map(|r| r.as_string_opt::<i32>().ok_or_else(|| mistyped("redacted"))).transpose()?;
            for i in 0..n {
                let content_id = ids.is_valid(i).then(|| ids.value(i));
                let member = member_col.is_valid(i).then(|| member_col.value(i));
                let mut verdict = gate.outcome(outcomes.value(i)).ok_or_else(|| BuildError::Engine("unknown outcome".into()))?;
                // The writer relies on content-id order (duplicates are adjacent, shards are
                // deterministic): a stream out of order is an engine failure, never written.
                if last_id.is_some() && content_id.is_none_or(|c| Some(c) < last_id) {
                    return Err(BuildError::Engine(format!("the engine returned content {content_id:?} after {last_id:?}: rows out of order")));
                }
                let duplicate = content_id.is_some() && content_id == last_id;
                if duplicate || content_id.is_none() {
                    if !cfg.quarantine {
                        return Err(match content_id {
                            Some(id) => BuildError::BadRow { file: cfg.content.display().to_string(), row: 0, column: "content_id".into(), message: format!("duplicate content id {id} (use --quarantine to exclude such rows)") },
                            None => BuildError::BadRow { file: cfg.content.display().to_string(), row: 0, column: "content_id".into(), message: "missing content id (use --quarantine to exclude such rows)".into() },
                        });
                    }
                    verdict = cg_model::Verdict::exclude(cg_model::ReasonCode::InvalidRecord);
                }
                last_id = content_id.or(last_id);
                // An erasure request excludes, whatever a custom policy says (and the row is
                // recorded without ids below).
                let erased = gate.erasure_requested(member);
                if erased && verdict.decision().is_kept() {
                    verdict = cg_model::Verdict::exclude(cg_model::ReasonCode::Erased);
                }
                // A kept row must have an author and (when text is read) redacted text: anything
                // else is a gate failure.
                let no_text = redacted.is_some_and(|r| !r.is_valid(i));
                if verdict.decision().is_kept() && (no_text || member.is_none()) {
                    verdict = cg_model::Verdict::exclude(cg_model::ReasonCode::PolicyError);
                }
                let kept = verdict.decision().is_kept();
                let shard = match (kept, member) {
                    (true, Some(m)) => Some(*out.shard_of.entry(m).or_insert_with(|| keyed_shard(shard_key, m, cfg.shards))),
                    _ => None,
                };
                let fingerprint = if kept { fingerprints.value(i) } else { 0 };
                if collect
                    && !erased
                    && let Some(cid) = content_id
                {
                    out.rows.insert(cid, (shard, fingerprint));
                }
                let decision = verdict.decision().as_str();
                if let Some(d) = decisions.as_deref_mut() {
                    if erased {
                        // Erased: the row is counted, but not recorded by content or member id.
                        d.push(None, None, decision, verdict.reasons(), None, 0)?;
                    } else {
                        d.push(content_id, member, decision, verdict.reasons(), shard, fingerprint)?;
                    }
                }
                let region = gate.region(member);
                *out.totals.entry(decision.to_owned()).or_default() += 1;
                let slot = verdict.decision().index();
                match out.regions.get_mut(region) {
                    Some(n) => n[slot] += 1,
                    None => {
                        let mut n = [0; 3];
                        n[slot] = 1;
                        out.regions.insert(region.to_owned(), n);
                    }
                }
                for r in verdict.reasons() {
                    *out.counts.entry((decision.to_owned(), r.as_str().to_owned(), region.to_owned())).or_default() += 1;
                }
                if let (Some(s), Some(cid), Some(at), Some(texts)) = (shard, content_id, created[i], redacted)
                    && let Some(Some(w)) = shards.get_mut(s as usize)
                {
                    w.push(cid, kinds.value(i), at.micros(), texts.value(i))?;
                }
            }
            progress.advance(n as u64);
        }
        Ok::<(), BuildError>(())
    })?;
    Ok(out)
}

/// An engine output column of an unexpected type: the build fails (a panic would leave the
/// temporary dataset behind).
fn mistyped(column: &str) -> BuildError {
    BuildError::Engine(format!(
        "the engine returned column `{column}` with an unexpected type"
    ))
}

/// A session on a Ballista scheduler.
#[cfg(feature = "ballista")]
async fn remote_session(url: &str) -> Result<SessionContext, BuildError> {
    crate::distributed::client_session(url).await
}

/// Without the `ballista` feature there is no distributed engine.
#[cfg(not(feature = "ballista"))]
async fn remote_session(url: &str) -> Result<SessionContext, BuildError> {
    Err(BuildError::Input(format!(
        "cannot run on {url}: this consentgate was built without the `ballista` feature"
    )))
}
