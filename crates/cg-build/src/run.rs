//! The build: load member facts, stream content through the DataFusion plan, write shards and
//! decisions deterministically, publish atomically with the manifest last.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cg_model::progress::Progress;
use cg_model::{Purpose, Timestamp};
use cg_policy::{EvalContext, Policy};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::facts;
use crate::gate::Gate;
use crate::manifest::{
    CommitmentRef, Count, DocRef, FactsSummary, FileRef, InputRef, Manifest, MemberSources,
    PolicyRef, RegionRows,
};
use crate::spec::{GateRef, GateSpec};
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

/// Where a build's plan runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Embedded,
    /// The Apache Ballista scheduler at this URL (`ballista://HOST:PORT`).
    Ballista(String),
}

impl Engine {
    /// `datafusion` (or `embedded`) or `ballista://HOST:PORT`.
    pub fn parse(s: &str) -> Result<Engine, String> {
        match s {
            "datafusion" | "embedded" => Ok(Engine::Embedded),
            _ => match s.strip_prefix("ballista://") {
                Some(rest)
                    if rest
                        .rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
                {
                    Ok(Engine::Ballista(s.to_owned()))
                }
                _ => Err(format!(
                    "`{s}` is not an engine: use `datafusion` or `ballista://HOST:PORT`"
                )),
            },
        }
    }

    /// The name in the manifest: `datafusion` or `ballista`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Embedded => "datafusion",
            Engine::Ballista(_) => "ballista",
        }
    }
}

/// Everything a build needs.
#[derive(Debug)]
pub struct BuildConfig {
    /// Members file (optional with `consent: Store`: the ledger holds members too).
    pub members: Option<PathBuf>,
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
    /// The ledger log's signed head when the build started (builds from the ledger).
    pub ledger_checkpoint: Option<crate::manifest::LedgerCheckpoint>,
    /// Where the plan runs.
    pub engine: Engine,
    /// The licence the dataset card declares (`None`: `other`).
    pub license: Option<String>,
    /// Memory the pass may hold before it spills to disk, in MiB ([`DEFAULT_MEMORY_MB`];
    /// `build --memory-mb`): half for the shard spools (kept rows waiting to be sorted into
    /// their shard), the whole as the engine's own pool.
    pub memory_mb: usize,
}

/// The pass's memory budget when none is given: 2 GiB.
pub const DEFAULT_MEMORY_MB: usize = 2048;

/// What a build produced.
#[derive(Debug)]
pub struct BuildOutput {
    /// The published dataset directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

pub(crate) const CHUNK: usize = 8192;

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

pub(crate) fn hex(b: &[u8]) -> String {
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
    let mut facts = load_facts(&FactInputs::of(&cfg), &cfg.purpose, cfg.as_of, progress)?;
    facts.inputs.push(InputRef {
        table: "content".into(),
        source: file_name(&cfg.content),
        sha256: sha256_file(&cfg.content)?,
    });

    let shard_key = shard_key_of(&cfg);
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
    // A licence is part of the card and so of the output (absent: the ids of builds without
    // one are unchanged).
    if let Some(l) = &cfg.license {
        id.update(format!("license\0{l}\0"));
    }
    for i in &facts.inputs {
        id.update(format!("{}\0{}\0", i.table, i.sha256));
    }
    let dataset_id = format!("ds-{}", &hex(&id.finalize())[..16]);

    publish(&cfg.out, &dataset_id, |tmp| {
        write_dataset(&cfg, facts, tmp, &dataset_id, &shard_key, progress)
    })
}

/// Publishes a dataset atomically: `write` fills a temporary directory next to `out/<id>`
/// (shards, decisions, commitment, manifest last), which is fsynced and renamed into place; on
/// any error the temporary directory is removed and nothing is published.
pub(crate) fn publish(
    out: &Path,
    dataset_id: &str,
    write: impl FnOnce(&Path) -> Result<Manifest, BuildError>,
) -> Result<BuildOutput, BuildError> {
    std::fs::create_dir_all(out).map_err(|e| BuildError::io(out, e))?;
    let final_dir = out.join(dataset_id);
    if final_dir.exists() {
        return Err(BuildError::Exists(final_dir));
    }
    let tmp = out.join(format!(".{dataset_id}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| BuildError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(tmp.join("shards")).map_err(|e| BuildError::io(&tmp, e))?;
    match write(&tmp) {
        Ok(manifest) => {
            sync_dir(&tmp.join("shards"))?;
            sync_dir(&tmp)?;
            std::fs::rename(&tmp, &final_dir).map_err(|e| BuildError::io(&final_dir, e))?;
            sync_dir(out)?;
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

/// The default shard key: derived from purpose and shard count (set `shard_key` for a secret).
pub(crate) fn shard_key_of(cfg: &BuildConfig) -> Vec<u8> {
    cfg.shard_key.clone().unwrap_or_else(|| {
        Sha256::digest(format!("cg-shard-key\0{}\0{}", cfg.purpose, cfg.shards)).to_vec()
    })
}

/// The member-side inputs of a build or an impact report.
#[derive(Clone, Debug)]
pub struct FactInputs {
    /// Members file (optional with a ledger, which holds members too).
    pub members: Option<PathBuf>,
    /// Consent source.
    pub consent: ConsentSourceArg,
    /// Residence history.
    pub residences: Option<PathBuf>,
    /// Notices.
    pub notices: Option<PathBuf>,
    /// Erasures.
    pub erasures: Option<PathBuf>,
    /// The purpose catalogue (other purposes' grants tell `consent_scope_mismatch` apart);
    /// empty: the default catalogue.
    pub purposes: Vec<String>,
}

impl FactInputs {
    pub(crate) fn of(cfg: &BuildConfig) -> FactInputs {
        FactInputs {
            members: cfg.members.clone(),
            consent: cfg.consent.clone(),
            residences: cfg.residences.clone(),
            notices: cfg.notices.clone(),
            erasures: cfg.erasures.clone(),
            purposes: cfg
                .policy
                .config()
                .catalogue()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    fn catalogue(&self) -> Vec<&str> {
        if self.purposes.is_empty() {
            return Purpose::DEFAULT_CATALOGUE.to_vec();
        }
        self.purposes.iter().map(String::as_str).collect()
    }
}

/// Member facts as a build loaded them.
#[derive(Debug)]
pub(crate) struct LoadedFacts {
    /// The members, by id.
    pub members: facts::Members,
    /// Where each fact came from, with digests (the manifest's member-side `inputs`).
    pub inputs: Vec<InputRef>,
    /// Other purposes and member sources (recorded in the manifest).
    pub summary: FactsSummary,
}

/// Loads member facts: the files given, and with a ledger every fact it holds as of the
/// cut-off, merged with the most protective reading. Returns them with the input digests.
pub(crate) fn load_facts(
    f: &FactInputs,
    purpose: &Purpose,
    as_of: Timestamp,
    progress: &dyn Progress,
) -> Result<LoadedFacts, BuildError> {
    progress.stage("member facts", None);
    let mut inputs = Vec::new();
    let mut members = match &f.members {
        Some(path) => {
            inputs.push(InputRef {
                table: "members".into(),
                source: file_name(path),
                sha256: sha256_file(path)?,
            });
            facts::load_members(path)?
        }
        None if matches!(f.consent, ConsentSourceArg::Store(_)) => facts::Members::default(),
        None => {
            return Err(BuildError::Input(
                "no members: pass --members FILE, or --store to take members from the ledger"
                    .into(),
            ));
        }
    };
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
    let file_members = members.len() as u64;
    let mut member_sources = None;
    let ignored_purposes = match &f.consent {
        ConsentSourceArg::File(p) => {
            let ignored =
                facts::load_consent_events(p, purpose, as_of, &f.catalogue(), &mut members)?;
            inputs.push(InputRef {
                table: "consent".into(),
                source: file_name(p),
                sha256: sha256_file(p)?,
            });
            ignored
        }
        ConsentSourceArg::Store(url) => {
            let mut store =
                cg_ledger::open_existing(url).map_err(|e| BuildError::Input(e.to_string()))?;
            let (ignored, counts) =
                facts::load_ledger(store.as_mut(), purpose, as_of, &mut members)?;
            if counts.events == 0 && counts.from_ledger == 0 && counts.merged == 0 {
                // Fail closed: an empty ledger would read as "nobody ever objected".
                return Err(BuildError::Input(format!(
                    "the ledger `{}` holds no member facts or consent events as of {as_of}; pass --consent FILE, or import into the ledger first",
                    redact_url(url)
                )));
            }
            let digest = snapshot_digest(&members);
            inputs.push(InputRef {
                table: "ledger_snapshot".into(),
                source: store.backend().into(),
                sha256: digest,
            });
            member_sources = Some(MemberSources {
                files_only: file_members - counts.merged,
                ledger_only: counts.from_ledger,
                merged: counts.merged,
                ledger_events: counts.events,
            });
            ignored
        }
    };
    progress.finish_stage();
    Ok(LoadedFacts {
        members,
        inputs,
        summary: FactsSummary {
            ignored_purposes,
            member_sources,
        },
    })
}

/// A ledger URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), BuildError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| BuildError::io(dir, e))
}

/// Digest of every member fact the build used from a ledger (after merging with files), from
/// explicit fields (not `Debug` output, whose format is not a stable contract): the dataset id
/// must not change with the toolchain, and must change with any fact that can change a
/// decision.
fn snapshot_digest(members: &facts::Members) -> String {
    let mut ids: Vec<&i64> = members.keys().collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    let t = |t: Option<Timestamp>| t.map_or(String::from("-"), |t| t.micros().to_string());
    for id in ids {
        let m = &members[id];
        let explicit = m.consent.explicit.as_ref().map_or(String::from("-"), |c| {
            format!(
                "{}/{}/{}/{}",
                c.granted,
                c.at.micros(),
                c.source.as_str(),
                c.notice_version.as_deref().unwrap_or("")
            )
        });
        let gpc = t(m.consent.gpc_signal.as_ref().map(|g| g.at));
        let residences: Vec<String> = m
            .residences
            .iter()
            .map(|(at, c)| format!("{}@{}", c.as_deref().unwrap_or("-"), at.micros()))
            .collect();
        h.update(format!(
            "{id}\0{}\0{}\0{}\0{}\0{}\0{}\0{explicit}\0{gpc}\0{}\0{}\0{}\0v2\n",
            m.country.as_deref().unwrap_or("-"),
            residences.join(","),
            m.birth_date.map_or(String::from("-"), |d| d.to_string()),
            t(m.closed_at),
            t(m.erasure_requested_at),
            t(m.notice_at),
            m.other_purpose_grant,
            m.display_name.as_deref().unwrap_or("-"),
            m.handle.as_deref().unwrap_or("-"),
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

/// The schema of `decisions.parquet`. `fingerprint` is what a kept row's redacted text depends
/// on besides the row (0 when not kept): an incremental rebuild compares it.
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
        Field::new("fingerprint", DataType::Int64, false),
    ]))
}

/// One shard's writer. Its caller hands it rows in `content_id` order, in batches of exactly
/// [`CHUNK`] rows but the last (identical rows ⇒ identical bytes, however the engine split them).
pub(crate) struct ShardOut {
    writer: cg_io::TableWriter,
}

impl ShardOut {
    /// `dir/shards/part-NNNNN.parquet`.
    pub(crate) fn create(dir: &Path, i: u32) -> Result<ShardOut, BuildError> {
        let path = dir.join("shards").join(format!("part-{i:05}.parquet"));
        Ok(ShardOut {
            writer: cg_io::TableWriter::create(&path, shard_schema())
                .map_err(|e| BuildError::Input(e.to_string()))?,
        })
    }

    /// Appends rows in the shard's schema.
    pub(crate) fn write(&mut self, rows: &RecordBatch) -> Result<(), BuildError> {
        let rows = RecordBatch::try_new(shard_schema(), rows.columns().to_vec())
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        self.writer
            .write(&rows)
            .map_err(|e| BuildError::Input(e.to_string()))
    }

    /// Rows written so far.
    pub(crate) fn rows_written(&self) -> u64 {
        self.writer.rows()
    }

    /// Closes the file (fsynced, renamed into place) and returns its path.
    pub(crate) fn finish(self) -> Result<PathBuf, BuildError> {
        self.writer
            .finish()
            .map_err(|e| BuildError::Input(e.to_string()))
    }
}

/// The `decisions.parquet` writer.
pub(crate) struct DecisionsOut {
    writer: cg_io::TableWriter,
    id: Int64Builder,
    member: Int64Builder,
    decision: StringBuilder,
    reasons: ListBuilder<StringBuilder>,
    shard: Int32Builder,
    fingerprint: Int64Builder,
    len: usize,
}

impl DecisionsOut {
    /// `dir/decisions.parquet`.
    pub(crate) fn create(dir: &Path) -> Result<DecisionsOut, BuildError> {
        Ok(DecisionsOut {
            writer: cg_io::TableWriter::create(
                &dir.join(crate::decisions::DECISIONS_FILE),
                decisions_schema(),
            )
            .map_err(|e| BuildError::Input(e.to_string()))?,
            id: Int64Builder::new(),
            member: Int64Builder::new(),
            decision: StringBuilder::new(),
            reasons: ListBuilder::new(StringBuilder::new()),
            shard: Int32Builder::new(),
            fingerprint: Int64Builder::new(),
            len: 0,
        })
    }

    /// Appends a row.
    pub(crate) fn push(
        &mut self,
        id: Option<i64>,
        member: Option<i64>,
        decision: &str,
        reasons: &[cg_model::ReasonCode],
        shard: Option<u32>,
        fingerprint: i64,
    ) -> Result<(), BuildError> {
        self.id.append_option(id);
        self.member.append_option(member);
        self.decision.append_value(decision);
        for r in reasons {
            self.reasons.values().append_value(r.as_str());
        }
        self.reasons.append(true);
        self.shard.append_option(shard.map(|s| s as i32));
        self.fingerprint.append_value(fingerprint);
        self.len += 1;
        if self.len == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the last rows and closes the file; returns its manifest entry.
    pub(crate) fn finish(mut self) -> Result<FileRef, BuildError> {
        self.flush()?;
        let rows = self.writer.rows();
        let path = self
            .writer
            .finish()
            .map_err(|e| BuildError::Input(e.to_string()))?;
        Ok(FileRef {
            file: crate::decisions::DECISIONS_FILE.into(),
            rows,
            sha256: sha256_file(&path)?,
        })
    }

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
            Arc::new(self.fingerprint.finish()),
        ];
        let b = RecordBatch::try_new(decisions_schema(), cols)
            .map_err(|e| BuildError::Engine(e.to_string()))?;
        self.writer
            .write(&b)
            .map_err(|e| BuildError::Input(e.to_string()))
    }
}

/// The shard of a member: a keyed SHA-256 of the member id, modulo the shard count.
pub(crate) fn keyed_shard(key: &[u8], member: i64, shards: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(key);
    h.update(member.to_le_bytes());
    let d = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(x) % u64::from(shards)) as u32
}

/// Writes a dataset from loaded facts (`facts.inputs` include the content's digest).
fn write_dataset(
    cfg: &BuildConfig,
    facts: LoadedFacts,
    dir: &Path,
    dataset_id: &str,
    shard_key: &[u8],
    progress: &dyn Progress,
) -> Result<Manifest, BuildError> {
    let LoadedFacts {
        members,
        inputs,
        summary,
    } = facts;
    let gate = new_gate(cfg, members, &inputs)?;
    progress.stage("gate", None);
    let mut pass = crate::pass::run_pass(
        cfg,
        &gate,
        shard_key,
        crate::pass::PassSpec {
            text: true,
            only_shards: None,
            dir,
            decisions: true,
            shards: (0..cfg.shards).collect(),
            member_keys: Some((&cfg.member_keys, dataset_id)),
            collect: false,
        },
        progress,
    )?;
    progress.finish_stage();
    let shard_refs = finish_shards(cfg.shards, std::mem::take(&mut pass.shards), |_| None)?;
    let commitment = Commitment::from_keys(std::mem::take(&mut pass.member_keys))
        .map_err(|e| BuildError::Engine(e.to_string()))?;
    finish_dataset(
        cfg,
        dir,
        dataset_id,
        inputs,
        summary,
        shard_key,
        shard_refs,
        pass,
        &commitment,
        dataset_id,
        None,
    )
}

/// The gate of a build, with the spec a remote executor makes the same gate from (`inputs`: the
/// digests of the member-side inputs `members` was loaded from).
pub(crate) fn new_gate(
    cfg: &BuildConfig,
    members: facts::Members,
    inputs: &[InputRef],
) -> Result<Arc<GateRef>, BuildError> {
    let ctx = EvalContext {
        purpose: cfg.purpose.clone(),
        as_of: cfg.as_of,
    };
    let gate = Gate::new(cfg.policy.clone(), ctx, members, cfg.quarantine)
        .map_err(|e| BuildError::Engine(e.to_string()))?;
    let spec = GateSpec::new(
        &FactInputs::of(cfg),
        &cfg.content,
        inputs,
        &cfg.purpose,
        cfg.as_of,
        cfg.quarantine,
        &cfg.policy,
    );
    Ok(Arc::new(GateRef::ready(Arc::new(spec), Arc::new(gate))))
}

/// The manifest entries of a dataset's shards in shard order: the ones a pass wrote, or a
/// carried-over file (`carried(i)`).
pub(crate) fn finish_shards(
    shards: u32,
    written: Vec<(u32, FileRef)>,
    carried: impl Fn(usize) -> Option<FileRef>,
) -> Result<Vec<FileRef>, BuildError> {
    let mut refs: Vec<Option<FileRef>> = vec![None; shards as usize];
    for (i, r) in written {
        if let Some(slot) = refs.get_mut(i as usize) {
            *slot = Some(r);
        }
    }
    refs.into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.or_else(|| carried(i))
                .ok_or_else(|| BuildError::Engine(format!("shard {i} has no source")))
        })
        .collect()
}

/// Writes the commitment and the manifest (last) of a dataset whose shards are written.
#[expect(clippy::too_many_arguments, reason = "the parts of one manifest")]
pub(crate) fn finish_dataset(
    cfg: &BuildConfig,
    dir: &Path,
    dataset_id: &str,
    inputs: Vec<InputRef>,
    summary: FactsSummary,
    shard_key: &[u8],
    shard_refs: Vec<FileRef>,
    pass: crate::pass::PassOut,
    commitment: &Commitment,
    key_domain: &str,
    lineage: Option<crate::manifest::Lineage>,
) -> Result<Manifest, BuildError> {
    let decisions = pass
        .decisions
        .ok_or_else(|| BuildError::Engine("the pass wrote no decision record".into()))?;
    write_input_paths(cfg, dir)?;
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
        ignored_purposes: summary.ignored_purposes,
        member_sources: summary.member_sources,
        shard_count: cfg.shards,
        shard_key_fingerprint: hex(&Sha256::digest(shard_key))[..16].to_owned(),
        ledger_checkpoint: cfg.ledger_checkpoint.clone(),
        shards: shard_refs,
        decisions,
        counts: pass
            .counts
            .into_iter()
            .map(|((decision, reason, region), rows)| Count {
                decision,
                reason,
                region,
                rows,
            })
            .collect(),
        totals: pass.totals,
        rows_by_region: pass
            .regions
            .into_iter()
            .map(
                |(region, [include, include_redacted, exclude])| RegionRows {
                    region,
                    include,
                    include_redacted,
                    exclude,
                },
            )
            .collect(),
        quarantine: cfg.quarantine,
        member_commitment_root: Some(root_hex.clone()),
        member_commitment: Some(CommitmentRef {
            file: "members.commitment".into(),
            members: commitment.len() as u64,
            root: root_hex,
            key_scheme: cg_proof::member_key::KEY_SCHEME.into(),
            key_domain: key_domain.to_owned(),
            vrf_public_key: cg_proof::hex(&cfg.member_keys.public_key()),
            sha256: sha256_file(&commitment_path)?,
        }),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        engine: cfg.engine.name().into(),
        license: cfg.license.clone(),
        card: None,
        lineage,
        created_at: Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).to_string(),
    };
    let card = crate::card::render(&manifest);
    write_synced(&dir.join(crate::card::CARD_FILE), card.as_bytes())?;
    let manifest = Manifest {
        card: Some(DocRef {
            file: crate::card::CARD_FILE.into(),
            sha256: hex(&Sha256::digest(card.as_bytes())),
        }),
        ..manifest
    };
    // The manifest is written last: a dataset without one is not a dataset.
    let json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| BuildError::Engine(e.to_string()))?;
    write_synced(&dir.join("manifest.json"), &json)?;
    Ok(manifest)
}

/// The operator's note of where a dataset's inputs were read from (`inputs.json`, next to the
/// decision record; not part of the manifest, whose digests pin the contents): `rebuild` uses
/// it for the inputs not given again. A ledger is named by its backend only (a URL may hold a
/// password).
pub const INPUTS_FILE: &str = "inputs.json";

fn write_input_paths(cfg: &BuildConfig, dir: &Path) -> Result<(), BuildError> {
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_owned())
            .display()
            .to_string()
    };
    let opt = |p: &Option<PathBuf>| p.as_deref().map(abs);
    let consent = match &cfg.consent {
        ConsentSourceArg::File(p) => serde_json::json!({ "file": abs(p) }),
        ConsentSourceArg::Store(url) => serde_json::json!({
            "store": if url.starts_with("postgres") { "postgres" } else { "sqlite" }
        }),
    };
    let v = serde_json::json!({
        "members": opt(&cfg.members),
        "content": abs(&cfg.content),
        "residences": opt(&cfg.residences),
        "notices": opt(&cfg.notices),
        "erasures": opt(&cfg.erasures),
        "consent": consent,
    });
    let bytes = serde_json::to_vec_pretty(&v).map_err(|e| BuildError::Engine(e.to_string()))?;
    write_synced(&dir.join(INPUTS_FILE), &bytes)
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
    Commitment::from_keys(member_keys(keys, dataset_id, members)?)
        .map_err(|e| BuildError::Engine(e.to_string()))
}

/// The member keys of `members` in a key domain, spread over the available cores.
pub(crate) fn member_keys(
    keys: &MemberKeySecret,
    dataset_id: &str,
    members: &[i64],
) -> Result<Vec<MemberKey>, BuildError> {
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
    Ok(derived)
}

pub(crate) fn engine_error(file: &Path, e: datafusion::error::DataFusionError) -> BuildError {
    BuildError::Source {
        file: file.display().to_string(),
        message: e.to_string(),
    }
}
