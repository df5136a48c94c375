//! The build: load member facts, stream content through the DataFusion plan, write shards and
//! decisions deterministically, publish atomically with the manifest last.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt32Type};
use cg_model::progress::Progress;
use cg_model::{Purpose, Timestamp};
use cg_policy::{EvalContext, Policy};
use datafusion::common::ScalarValue;
use datafusion::prelude::{
    CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionConfig, SessionContext, col, lit,
};
use futures_lite::StreamExt;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::facts;
use crate::gate::Gate;
use crate::manifest::{CommitmentRef, Count, FileRef, InputRef, Manifest, PolicyRef};
use cg_proof::commitment::{Commitment, MemberKey};
use cg_proof::member_key::MemberKeySecret;

/// Where consent state comes from.
#[derive(Clone, Debug)]
pub enum ConsentSourceArg {
    /// A consent-events file in the input contract.
    File(PathBuf),
    /// The ledger's as-of snapshot (`postgres://…`, `sqlite:…`).
    Store(String),
}

/// Everything a build needs.
#[derive(Debug)]
pub struct BuildConfig {
    /// Members file.
    pub members: PathBuf,
    /// Content file.
    pub content: PathBuf,
    /// Consent.
    pub consent: ConsentSourceArg,
    /// Residence history.
    pub residences: Option<PathBuf>,
    /// Notices.
    pub notices: Option<PathBuf>,
    /// Erasures.
    pub erasures: Option<PathBuf>,
    /// Cut-off.
    pub as_of: Timestamp,
    /// Purpose.
    pub purpose: Purpose,
    /// The policy (shared with the gate's UDFs).
    pub policy: Arc<Policy>,
    /// Output directory (the dataset lands in `out/<dataset_id>/`).
    pub out: PathBuf,
    /// Shard count.
    pub shards: u32,
    /// Exclude malformed rows as `invalid_record` instead of failing.
    pub quarantine: bool,
    /// Secret for the keyed shard hash (default: derived from purpose and shard count).
    pub shard_key: Option<Vec<u8>>,
    /// The VRF secret for the member commitment's keys.
    pub member_keys: Arc<MemberKeySecret>,
}

/// What a build produced.
#[derive(Debug)]
pub struct BuildOutput {
    /// The published dataset directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

const CHUNK: usize = 8192;

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, BuildError> {
    let mut f = File::open(path).map_err(|e| BuildError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| BuildError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Runs a build and publishes it.
pub fn build(cfg: BuildConfig, progress: &dyn Progress) -> Result<BuildOutput, BuildError> {
    if cfg.shards == 0 {
        return Err(BuildError::Input("--shards must be at least 1".into()));
    }
    let (members, inputs) = load_facts(&FactInputs::of(&cfg), &cfg.purpose, cfg.as_of, progress)?;
    let mut inputs = inputs;
    inputs.push(InputRef {
        table: "content".into(),
        source: file_name(&cfg.content),
        sha256: sha256_file(&cfg.content)?,
    });

    let shard_key = cfg.shard_key.clone().unwrap_or_else(|| {
        Sha256::digest(format!("cg-shard-key\0{}\0{}", cfg.purpose, cfg.shards)).to_vec()
    });
    let mut id = Sha256::new();
    id.update(format!(
        "{}\0{}\0{}\0{}\0{}\0{}\0",
        env!("CARGO_PKG_VERSION"),
        cfg.purpose,
        cfg.as_of,
        cfg.policy.hash(),
        cfg.shards,
        cfg.quarantine
    ));
    id.update(&shard_key);
    for i in &inputs {
        id.update(format!("{}\0{}\0", i.table, i.sha256));
    }
    let dataset_id = format!("ds-{}", &hex(&id.finalize())[..16]);

    std::fs::create_dir_all(&cfg.out).map_err(|e| BuildError::io(&cfg.out, e))?;
    let final_dir = cfg.out.join(&dataset_id);
    if final_dir.exists() {
        return Err(BuildError::Exists(final_dir));
    }
    let tmp = cfg
        .out
        .join(format!(".{dataset_id}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| BuildError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(tmp.join("shards")).map_err(|e| BuildError::io(&tmp, e))?;
    let result = write_dataset(
        &cfg,
        members,
        &tmp,
        &dataset_id,
        inputs,
        &shard_key,
        progress,
    );
    match result {
        Ok(manifest) => {
            sync_dir(&tmp.join("shards"))?;
            sync_dir(&tmp)?;
            std::fs::rename(&tmp, &final_dir).map_err(|e| BuildError::io(&final_dir, e))?;
            sync_dir(&cfg.out)?;
            Ok(BuildOutput {
                dir: final_dir,
                manifest,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// The member-side inputs of a build or an impact report.
#[derive(Clone, Debug)]
pub struct FactInputs {
    /// Members file.
    pub members: PathBuf,
    /// Consent source.
    pub consent: ConsentSourceArg,
    /// Residence history.
    pub residences: Option<PathBuf>,
    /// Notices.
    pub notices: Option<PathBuf>,
    /// Erasures.
    pub erasures: Option<PathBuf>,
}

impl FactInputs {
    fn of(cfg: &BuildConfig) -> FactInputs {
        FactInputs {
            members: cfg.members.clone(),
            consent: cfg.consent.clone(),
            residences: cfg.residences.clone(),
            notices: cfg.notices.clone(),
            erasures: cfg.erasures.clone(),
        }
    }
}

/// Loads member facts and returns them with the input digests.
pub(crate) fn load_facts(
    f: &FactInputs,
    purpose: &Purpose,
    as_of: Timestamp,
    progress: &dyn Progress,
) -> Result<(facts::Members, Vec<InputRef>), BuildError> {
    progress.stage("member facts", None);
    let mut inputs = vec![InputRef {
        table: "members".into(),
        source: file_name(&f.members),
        sha256: sha256_file(&f.members)?,
    }];
    let mut members = facts::load_members(&f.members)?;
    for (table, path, load) in [
        (
            "residences",
            &f.residences,
            facts::load_residences as fn(&Path, &mut facts::Members) -> Result<(), BuildError>,
        ),
        ("notices", &f.notices, facts::load_notices),
        ("erasures", &f.erasures, facts::load_erasures),
    ] {
        if let Some(p) = path {
            load(p, &mut members)?;
            inputs.push(InputRef {
                table: table.into(),
                source: file_name(p),
                sha256: sha256_file(p)?,
            });
        }
    }
    match &f.consent {
        ConsentSourceArg::File(p) => {
            facts::load_consent_events(p, purpose, as_of, &mut members)?;
            inputs.push(InputRef {
                table: "consent".into(),
                source: file_name(p),
                sha256: sha256_file(p)?,
            });
        }
        ConsentSourceArg::Store(url) => {
            let mut store =
                cg_ledger::open_existing(url).map_err(|e| BuildError::Input(e.to_string()))?;
            let events = store
                .stats()
                .map_err(|e| BuildError::Input(e.to_string()))?
                .events;
            if events == 0 {
                // Fail closed: an empty ledger would read as "nobody ever objected".
                return Err(BuildError::Input(format!(
                    "the ledger `{url}` holds no consent events; pass --consent FILE, or import events first"
                )));
            }
            facts::load_consent_store(store.as_mut(), purpose, as_of, &mut members)?;
            let digest = snapshot_digest(&members);
            inputs.push(InputRef {
                table: "consent_snapshot".into(),
                source: store.backend().into(),
                sha256: digest,
            });
        }
    }
    progress.finish_stage();
    Ok((members, inputs))
}

fn sync_dir(dir: &Path) -> Result<(), BuildError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| BuildError::io(dir, e))
}

/// Digest of the consent state the build used, from explicit fields (not `Debug` output, whose
/// format is not a stable contract): the dataset id must not change with the toolchain.
fn snapshot_digest(members: &facts::Members) -> String {
    let mut ids: Vec<&i64> = members.keys().collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    for id in ids {
        let m = &members[id];
        if m.consent.explicit.is_none() && m.consent.gpc_signal.is_none() && !m.other_purpose_grant
        {
            continue;
        }
        let explicit = m.consent.explicit.as_ref().map_or(String::from("-"), |c| {
            format!(
                "{}/{}/{}/{}",
                c.granted,
                c.at.micros(),
                c.source.as_str(),
                c.notice_version.as_deref().unwrap_or("")
            )
        });
        let gpc = m
            .consent
            .gpc_signal
            .as_ref()
            .map_or(String::from("-"), |g| g.at.micros().to_string());
        h.update(format!(
            "{id}\0{explicit}\0{gpc}\0{}\n",
            m.other_purpose_grant
        ));
    }
    hex(&h.finalize())
}

fn shard_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("content_id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("created_at", cg_io::schema::timestamp_type(), false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

/// The schema of `decisions.parquet`.
pub fn decisions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("content_id", DataType::Int64, true),
        Field::new("member_id", DataType::Int64, true),
        Field::new("decision", DataType::Utf8, false),
        Field::new(
            "reasons",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
        Field::new("shard", DataType::Int32, true),
    ]))
}

struct ShardOut {
    writer: cg_io::TableWriter,
    id: Int64Builder,
    kind: StringBuilder,
    created: TimestampMicrosecondBuilder,
    text: StringBuilder,
    len: usize,
}

impl ShardOut {
    fn flush(&mut self) -> Result<(), BuildError> {
        if self.len == 0 {
            return Ok(());
        }
        self.len = 0;
        let b = RecordBatch::try_new(
            shard_schema(),
            vec![
                Arc::new(self.id.finish()),
                Arc::new(self.kind.finish()),
                Arc::new(self.created.finish()),
                Arc::new(self.text.finish()),
            ],
        )
        .map_err(|e| BuildError::Engine(e.to_string()))?;
        self.writer
            .write(&b)
            .map_err(|e| BuildError::Input(e.to_string()))
    }
}

struct DecisionsOut {
    writer: cg_io::TableWriter,
    id: Int64Builder,
    member: Int64Builder,
    decision: StringBuilder,
    reasons: ListBuilder<StringBuilder>,
    shard: Int32Builder,
    len: usize,
}

impl DecisionsOut {
    fn flush(&mut self) -> Result<(), BuildError> {
        if self.len == 0 {
            return Ok(());
        }
        self.len = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.member.finish()),
            Arc::new(self.decision.finish()),
            Arc::new(self.reasons.finish()),
            Arc::new(self.shard.finish()),
        ];
        let b = RecordBatch::try_new(decisions_schema(), cols)
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        self.writer
            .write(&b)
            .map_err(|e| BuildError::Input(e.to_string()))
    }
}

fn keyed_shard(key: &[u8], member: i64, shards: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(key);
    h.update(member.to_le_bytes());
    let d = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(x) % u64::from(shards)) as u32
}

#[expect(
    clippy::needless_range_loop,
    reason = "one row index walks several parallel Arrow columns"
)]
fn write_dataset(
    cfg: &BuildConfig,
    members: facts::Members,
    dir: &Path,
    dataset_id: &str,
    inputs: Vec<InputRef>,
    shard_key: &[u8],
    progress: &dyn Progress,
) -> Result<Manifest, BuildError> {
    let ctx = EvalContext {
        purpose: cfg.purpose.clone(),
        as_of: cfg.as_of,
    };
    let gate = Arc::new(
        Gate::new(cfg.policy.clone(), ctx, members, cfg.quarantine)
            .map_err(|e| BuildError::Engine(e.to_string()))?,
    );

    let mut shards: Vec<ShardOut> = (0..cfg.shards)
        .map(|i| {
            let path = dir.join("shards").join(format!("part-{i:05}.parquet"));
            Ok(ShardOut {
                writer: cg_io::TableWriter::create(&path, shard_schema())
                    .map_err(|e| BuildError::Input(e.to_string()))?,
                id: Int64Builder::new(),
                kind: StringBuilder::new(),
                created: TimestampMicrosecondBuilder::new().with_timezone("+00:00"),
                text: StringBuilder::new(),
                len: 0,
            })
        })
        .collect::<Result<_, BuildError>>()?;
    let mut decisions = DecisionsOut {
        writer: cg_io::TableWriter::create(&dir.join("decisions.parquet"), decisions_schema())
            .map_err(|e| BuildError::Input(e.to_string()))?,
        id: Int64Builder::new(),
        member: Int64Builder::new(),
        decision: StringBuilder::new(),
        reasons: ListBuilder::new(StringBuilder::new()),
        shard: Int32Builder::new(),
        len: 0,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BuildError::Engine(e.to_string()))?;
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut shard_of: FxHashMap<i64, u32> = FxHashMap::default();
    let mut last_id: Option<i64> = None;
    progress.stage("gate", None);
    runtime.block_on(async {
        // A bounded memory pool: the sort spills to disk instead of holding every row (set
        // CG_BUILD_MEMORY_MB to change the default of 2048), shared fairly between the partitions.
        let memory_mb: usize = std::env::var("CG_BUILD_MEMORY_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(2048);
        let pool = Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(memory_mb << 20));
        let runtime_env = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .build_arc()
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        let session = SessionContext::new_with_config_rt(SessionConfig::new().with_target_partitions(2), runtime_env);
        let (gate_udf, redact_udf) = crate::udf::udfs(gate.clone());
        session.register_udf(gate_udf.clone());
        session.register_udf(redact_udf.clone());
        let path = cfg.content.to_str().ok_or_else(|| BuildError::Input("content path is not UTF-8".into()))?;
        let ext = cfg.content.extension().and_then(|e| e.to_str()).unwrap_or("");
        let ext_dot = format!(".{ext}");
        let df = match cg_io::Format::from_path(&cfg.content).map_err(|e| BuildError::Input(e.to_string()))? {
            cg_io::Format::Parquet => session.read_parquet(path, ParquetReadOptions::default().file_extension(&ext_dot)).await,
            cg_io::Format::Csv => session.read_csv(path, CsvReadOptions::new().has_header(true).file_extension(&ext_dot)).await,
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
        let df = df
            .select(vec![
                datafusion::prelude::cast(col("content_id"), DataType::Int64).alias("content_id"),
                col("member_id"),
                col("kind"),
                col("created_at"),
                col("text"),
                mentions.alias("mentions"),
            ])
            .and_then(|df| {
                df.with_column(
                    "outcome",
                    gate_udf.call(vec![col("content_id"), col("member_id"), col("kind"), col("created_at"), col("mentions")]),
                )
            })
            .and_then(|df| {
                df.with_column("redacted", redact_udf.call(vec![col("text"), col("member_id"), col("mentions"), col("outcome")]))
            })
            // Only what the writer needs goes through the sort: not the original text.
            .and_then(|df| {
                df.select(vec![
                    col("content_id"),
                    col("member_id"),
                    col("kind"),
                    col("created_at"),
                    col("outcome"),
                    col("redacted"),
                ])
            })
            .and_then(|df| {
                df.sort(vec![
                    col("content_id").sort(true, true),
                    col("member_id").sort(true, true),
                    col("created_at").sort(true, true),
                    col("kind").sort(true, true),
                    col("outcome").sort(true, true),
                    col("redacted").sort(true, true),
                ])
            })
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        let mut stream = df.execute_stream().await.map_err(|e| engine_error(&cfg.content, e))?;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| engine_error(&cfg.content, e))?;
            let n = batch.num_rows();
            let get = |name: &str| batch.column_by_name(name).cloned().ok_or_else(|| BuildError::Engine(format!("no column {name}")));
            let ids = get("content_id")?;
            let ids = ids.as_primitive::<Int64Type>();
            let member_col = arrow::compute::cast(&get("member_id")?, &DataType::Int64).map_err(|e| BuildError::Engine(e.to_string()))?;
            let member_col = member_col.as_primitive::<Int64Type>();
            let kinds = arrow::compute::cast(&get("kind")?, &DataType::Utf8).map_err(|e| BuildError::Engine(e.to_string()))?;
            let kinds = kinds.as_string::<i32>();
            let created = crate::udf_times(&get("created_at")?).map_err(|e| BuildError::Engine(e.to_string()))?;
            let outcomes = get("outcome")?;
            let outcomes = outcomes.as_primitive::<UInt32Type>();
            let redacted = get("redacted")?;
            let redacted = redacted.as_string::<i32>();
            for i in 0..n {
                let content_id = ids.is_valid(i).then(|| ids.value(i));
                let member = member_col.is_valid(i).then(|| member_col.value(i));
                let mut verdict = gate.outcome(outcomes.value(i)).ok_or_else(|| BuildError::Engine("unknown outcome".into()))?;
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
                if verdict.decision().is_kept() && (!redacted.is_valid(i) || member.is_none()) {
                    // A kept row must carry redacted text: anything else is a gate failure.
                    verdict = cg_model::Verdict::exclude(cg_model::ReasonCode::PolicyError);
                }
                let shard = match (verdict.decision().is_kept(), member) {
                    (true, Some(m)) => Some(*shard_of.entry(m).or_insert_with(|| keyed_shard(shard_key, m, cfg.shards))),
                    _ => None,
                };
                let decision = verdict.decision().as_str();
                decisions.id.append_option(content_id);
                decisions.member.append_option(member);
                decisions.decision.append_value(decision);
                for r in verdict.reasons() {
                    decisions.reasons.values().append_value(r.as_str());
                }
                decisions.reasons.append(true);
                decisions.shard.append_option(shard.map(|s| s as i32));
                decisions.len += 1;
                if decisions.len == CHUNK {
                    decisions.flush()?;
                }
                let region = gate.region(member);
                *totals.entry(decision.to_owned()).or_default() += 1;
                for r in verdict.reasons() {
                    *counts.entry((decision.to_owned(), r.as_str().to_owned(), region.to_owned())).or_default() += 1;
                }
                if let (Some(s), Some(cid), Some(at)) = (shard, content_id, created[i]) {
                    let out = &mut shards[s as usize];
                    out.id.append_value(cid);
                    out.kind.append_value(kinds.value(i));
                    out.created.append_value(at.micros());
                    out.text.append_value(redacted.value(i));
                    out.len += 1;
                    if out.len == CHUNK {
                        out.flush()?;
                    }
                }
            }
            progress.advance(n as u64);
        }
        Ok::<(), BuildError>(())
    })?;
    progress.finish_stage();

    decisions.flush()?;
    let decisions_rows = decisions.writer.rows();
    let decisions_path = decisions
        .writer
        .finish()
        .map_err(|e| BuildError::Input(e.to_string()))?;
    let mut shard_refs = Vec::with_capacity(shards.len());
    for (i, mut s) in shards.into_iter().enumerate() {
        s.flush()?;
        let rows = s.writer.rows();
        let path = s
            .writer
            .finish()
            .map_err(|e| BuildError::Input(e.to_string()))?;
        shard_refs.push(FileRef {
            file: format!("shards/part-{i:05}.parquet"),
            rows,
            sha256: sha256_file(&path)?,
        });
    }
    progress.stage("commit members", Some(shard_of.len() as u64));
    let members: Vec<i64> = shard_of.into_keys().collect();
    let commitment = member_commitment(&cfg.member_keys, dataset_id, &members)?;
    progress.advance(members.len() as u64);
    progress.finish_stage();
    let commitment_path = dir.join("members.commitment");
    write_synced(&commitment_path, &commitment.encode())?;
    let root_hex = cg_proof::hex(&commitment.root());
    let manifest = Manifest {
        format: crate::manifest::FORMAT.into(),
        dataset_id: dataset_id.to_owned(),
        purpose: cfg.purpose.to_string(),
        as_of: cfg.as_of.to_string(),
        policy: PolicyRef {
            name: cfg.policy.name().to_owned(),
            hash: cfg.policy.hash().to_owned(),
        },
        inputs,
        shard_count: cfg.shards,
        shard_key_fingerprint: hex(&Sha256::digest(shard_key))[..16].to_owned(),
        shards: shard_refs,
        decisions: FileRef {
            file: "decisions.parquet".into(),
            rows: decisions_rows,
            sha256: sha256_file(&decisions_path)?,
        },
        counts: counts
            .into_iter()
            .map(|((decision, reason, region), rows)| Count {
                decision,
                reason,
                region,
                rows,
            })
            .collect(),
        totals,
        quarantine: cfg.quarantine,
        member_commitment_root: Some(root_hex.clone()),
        member_commitment: Some(CommitmentRef {
            file: "members.commitment".into(),
            members: commitment.len() as u64,
            root: root_hex,
            key_scheme: cg_proof::member_key::KEY_SCHEME.into(),
            vrf_public_key: cg_proof::hex(&cfg.member_keys.public_key()),
            sha256: sha256_file(&commitment_path)?,
        }),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        engine: "datafusion".into(),
        created_at: Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).to_string(),
    };
    // The manifest is written last: a dataset without one is not a dataset.
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BuildError::Engine(e.to_string()))?;
    write_synced(&dir.join("manifest.json"), &json)?;
    Ok(manifest)
}

/// Writes a file and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let mut f = File::create(path).map_err(|e| BuildError::io(path, e))?;
    std::io::Write::write_all(&mut f, bytes).map_err(|e| BuildError::io(path, e))?;
    f.sync_all().map_err(|e| BuildError::io(path, e))
}

/// The member commitment of a dataset: one VRF evaluation per member (the expensive part,
/// spread over the available cores), then a sort and one SHA-256 pass.
pub fn member_commitment(
    keys: &MemberKeySecret,
    dataset_id: &str,
    members: &[i64],
) -> Result<Commitment, BuildError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let chunk = members.len().div_ceil(threads).max(1);
    let derived: Vec<MemberKey> = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|m| keys.member_key(dataset_id, *m))
                        .collect::<Vec<MemberKey>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| BuildError::Engine("a member-key thread panicked".into()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.into_iter().flatten().collect())
    })?;
    Commitment::from_keys(derived).map_err(|e| BuildError::Engine(e.to_string()))
}

fn engine_error(file: &Path, e: datafusion::error::DataFusionError) -> BuildError {
    BuildError::Source {
        file: file.display().to_string(),
        message: e.to_string(),
    }
}
