//! `consentgate impact`, `rebuild` and `watch`: when members withdraw or ask for erasure — which
//! datasets and shards hold their content and which models were trained on it, an incremental
//! rebuild without them, and a stream of consent changes for training pipelines.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use cg_build::{BuildConfig, ConsentSourceArg, DatasetHolding};
use cg_model::{MemberId, Timestamp};
use clap::Args;
use serde::Serialize;

use crate::commands::build::{log_dataset, summary};
use crate::commands::consent::StoreArgs;
use crate::commands::keys::KeyArgs;
use crate::commands::policy::PolicyArgs;
use crate::errors::{Hinted, UsageError};
use crate::printer::Printer;
use crate::progress::Bars;

/// Arguments of `impact`.
#[derive(Debug, Args)]
pub struct ImpactArgs {
    /// A member who withdrew, objected or asked for erasure (repeatable).
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub member: Vec<i64>,
    /// A file of member ids (one per line; a `member_id` header line is skipped).
    #[arg(long, value_name = "F")]
    pub members_file: Option<PathBuf>,
    /// Dataset directories (`…/<dataset_id>/`), or directories holding them.
    #[arg(long, value_name = "DIR", num_args = 1.., required = true)]
    pub datasets: Vec<PathBuf>,
    /// A models registry (TOML or JSON): `[[model]] name, datasets = [ids], trained_at`.
    #[arg(long, value_name = "FILE")]
    pub models: Option<PathBuf>,
    /// The ledger, for when each member withdrew (default: the embedded one, if it exists).
    #[command(flatten)]
    pub store: StoreArgs,
    /// Cross-check every answer against the member commitment with this log key.
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A model trained on an affected dataset.
#[derive(Debug, Serialize)]
struct ModelImpact {
    name: String,
    trained_at: String,
    datasets: Vec<String>,
    /// Members whose content it was trained on.
    members: Vec<i64>,
    /// Of those, members who had withdrawn before training started (their content should not
    /// have been used: investigate); the others withdrew after (retrain or unlearn).
    withdrawn_before_training: Vec<i64>,
}

/// A member's withdrawal, from the ledger.
#[derive(Debug, Serialize)]
struct Withdrawal {
    member_id: i64,
    /// The latest withdrawal, objection or opt-out for the purpose, if any.
    withdrew_at: Option<String>,
    /// The latest grant after it, if any (the member opted back in).
    granted_after: bool,
    /// When the member asked for erasure, if they did.
    erasure_requested_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct ImpactOut {
    members: Vec<i64>,
    datasets: Vec<DatasetHolding>,
    affected_datasets: Vec<String>,
    models: Vec<ModelImpact>,
    withdrawals: Vec<Withdrawal>,
    /// Future builds exclude these members while their withdrawal stands (the gate reads the
    /// ledger at each build's cut-off); erasure also removes them from the decision record.
    future_builds: String,
}

fn read_members(a: &ImpactArgs) -> anyhow::Result<BTreeSet<i64>> {
    let mut members: BTreeSet<i64> = a.member.iter().copied().collect();
    if let Some(path) = &a.members_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim().split(',').next().unwrap_or("").trim();
            if line.is_empty() || (n == 0 && line == "member_id") {
                continue;
            }
            members.insert(line.parse().map_err(|_| {
                UsageError(format!(
                    "`{}`: line {}: `{line}` is not a member id",
                    path.display(),
                    n + 1
                ))
            })?);
        }
    }
    if members.is_empty() {
        return Err(UsageError("give --member M or --members-file F".into()).into());
    }
    Ok(members)
}

/// Dataset directories: each argument is a dataset (has a manifest.json) or holds datasets.
pub(crate) fn dataset_dirs(args: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if a.join("manifest.json").is_file() {
            out.push(a.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(a)
            .with_context(|| {
                format!(
                    "`{}` is neither a dataset nor a directory of datasets",
                    a.display()
                )
            })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("manifest.json").is_file())
            .collect();
        if found.is_empty() {
            anyhow::bail!("`{}` holds no dataset (no manifest.json)", a.display());
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Runs `impact`.
pub fn impact(a: ImpactArgs, printer: Printer) -> anyhow::Result<()> {
    let members = read_members(&a)?;
    let key = KeyArgs::load_optional(&a.key)?;
    let mut datasets = Vec::new();
    for dir in dataset_dirs(&a.datasets)? {
        datasets.push(cg_build::dataset_holding(
            &dir,
            &members,
            key.as_ref().map(|k| &k.member_keys),
        )?);
    }
    // Withdrawal times from the ledger, when there is one.
    let mut withdrawals = Vec::new();
    let url = a.store.store.clone().unwrap_or_else(cg_ledger::default_url);
    let ledger = if a.store.store.is_some() {
        Some(a.store.open_existing()?)
    } else {
        cg_ledger::open_existing(&url).ok()
    };
    if let Some(mut store) = ledger {
        let purpose = cg_model::Purpose::genai_training();
        for m in &members {
            let history = store.history(MemberId(*m))?;
            let mut withdrew: Option<Timestamp> = None;
            let mut granted_after = false;
            for e in history
                .iter()
                .filter(|e| e.event.purpose == purpose && e.event.source.as_str() != "gpc")
            {
                if e.event.granted {
                    granted_after = withdrew.is_some_and(|w| e.event.ts >= w);
                } else if withdrew.is_none_or(|w| e.event.ts >= w) {
                    withdrew = Some(e.event.ts);
                    granted_after = false;
                }
            }
            let erasure = store
                .member(MemberId(*m))?
                .and_then(|f| f.erasures.iter().map(|e| e.ts).min());
            withdrawals.push(Withdrawal {
                member_id: *m,
                withdrew_at: withdrew.map(|t| t.to_string()),
                granted_after,
                erasure_requested_at: erasure.map(|t| t.to_string()),
            });
        }
    }
    let mut models = Vec::new();
    if let Some(path) = &a.models {
        for model in cg_report::registry::read(path)? {
            let trained = Timestamp::parse(&model.trained_at)?;
            let hit: Vec<&DatasetHolding> = datasets
                .iter()
                .filter(|d| d.affected && model.datasets.contains(&d.dataset_id))
                .collect();
            if hit.is_empty() {
                continue;
            }
            let mut ms: BTreeSet<i64> = BTreeSet::new();
            for d in &hit {
                ms.extend(d.members.iter().filter(|h| h.rows > 0).map(|h| h.member_id));
            }
            let before: Vec<i64> = ms
                .iter()
                .copied()
                .filter(|m| {
                    withdrawals.iter().any(|w| {
                        w.member_id == *m
                            && [&w.withdrew_at, &w.erasure_requested_at]
                                .iter()
                                .filter_map(|t| t.as_deref().and_then(|t| Timestamp::parse(t).ok()))
                                .any(|t| t <= trained)
                    })
                })
                .collect();
            models.push(ModelImpact {
                name: model.name,
                trained_at: trained.to_string(),
                datasets: hit.iter().map(|d| d.dataset_id.clone()).collect(),
                members: ms.into_iter().collect(),
                withdrawn_before_training: before,
            });
        }
    }
    let out = ImpactOut {
        members: members.iter().copied().collect(),
        affected_datasets: datasets.iter().filter(|d| d.affected).map(|d| d.dataset_id.clone()).collect(),
        datasets,
        models,
        withdrawals,
        future_builds: "excluded while the withdrawal stands: every build re-reads consent at its cut-off (an erasure also keeps them out of the decision record)".into(),
    };
    Printer {
        json: a.json,
        ..printer
    }
    .data(&out, || impact_text(&out))
}

fn impact_text(o: &ImpactOut) -> String {
    let mut s = format!(
        "{} member(s); {} of {} dataset(s) hold their content\n",
        o.members.len(),
        o.affected_datasets.len(),
        o.datasets.len()
    );
    for d in &o.datasets {
        s.push_str(&format!(
            "\n{} (as of {}, {}): {}\n",
            d.dataset_id,
            d.as_of,
            d.dir,
            if d.affected {
                "AFFECTED"
            } else {
                "not affected"
            }
        ));
        for m in &d.members {
            s.push_str(&format!(
                "  member {:<10} {:>6} row(s) in {}{}{}\n",
                m.member_id,
                m.rows,
                if m.shards.is_empty() {
                    "no shard".to_owned()
                } else {
                    m.shards.join(", ")
                },
                if m.excluded_rows > 0 {
                    format!("; {} excluded", m.excluded_rows)
                } else {
                    String::new()
                },
                match m.in_commitment {
                    Some(true) => "; commitment: present",
                    Some(false) => "; commitment: absent",
                    None => "",
                }
            ));
        }
        if d.affected {
            s.push_str(&format!("  shards to rebuild: {}\n", d.shards.join(", ")));
        }
    }
    for m in &o.models {
        s.push_str(&format!(
            "\nmodel {} (trained {}) used {} — members {:?}{}\n",
            m.name,
            m.trained_at,
            m.datasets.join(", "),
            m.members,
            if m.withdrawn_before_training.is_empty() {
                String::new()
            } else {
                format!(
                    "; withdrawn BEFORE training: {:?}",
                    m.withdrawn_before_training
                )
            }
        ));
    }
    for w in &o.withdrawals {
        s.push_str(&format!(
            "\nmember {}: {}{}{}",
            w.member_id,
            w.withdrew_at.as_deref().map_or(
                "no withdrawal recorded in the ledger".to_owned(),
                |t| format!("withdrew {t}")
            ),
            if w.granted_after {
                ", then granted again"
            } else {
                ""
            },
            w.erasure_requested_at
                .as_deref()
                .map(|t| format!(", erasure requested {t}"))
                .unwrap_or_default()
        ));
    }
    if !o.withdrawals.is_empty() {
        s.push('\n');
    }
    s.push_str(&format!("\nFuture builds: {}\n", o.future_builds));
    s
}

/// Arguments of `rebuild`. Inputs not given are those the parent was built from (its
/// `inputs.json`); consent comes from `--consent` or `--store` (default: the embedded ledger).
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// The dataset to rebuild (its directory).
    #[arg(long, value_name = "DIR")]
    pub dataset: PathBuf,
    /// The new cut-off.
    #[arg(long, value_name = "TIME", value_parser = crate::commands::args::timestamp)]
    pub as_of: Timestamp,
    /// Consent-events file (or --store for the ledger's as-of snapshot).
    #[arg(long, conflicts_with = "store")]
    pub consent: Option<PathBuf>,
    /// The ledger to take consent from (default: the embedded one).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Members file (default: the parent's).
    #[arg(long)]
    pub members: Option<PathBuf>,
    /// Content file (default: the parent's; must be the same content).
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// Residence history (default: the parent's).
    #[arg(long)]
    pub residences: Option<PathBuf>,
    /// Notices (default: the parent's).
    #[arg(long)]
    pub notices: Option<PathBuf>,
    /// Erasures (default: the parent's).
    #[arg(long)]
    pub erasures: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Output directory; the new dataset is published as `DIR/<dataset_id>/`.
    #[arg(long)]
    pub out: PathBuf,
    /// The ledger whose log records the new manifest (default: --store, else the embedded one).
    #[arg(long, value_name = "URL")]
    pub log: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
    /// The licence the new dataset's card declares (default: the parent's).
    #[arg(long, value_name = "ID", value_parser = crate::commands::build::license)]
    pub license: Option<String>,
    /// Where the plan runs: `datafusion` (embedded) or `ballista://HOST:PORT` (see `build`).
    #[arg(long, default_value = "datafusion", value_name = "ENGINE", value_parser = cg_build::Engine::parse)]
    pub engine: cg_build::Engine,
    /// Memory the pass may hold before it spills to disk, in MiB (see `build`).
    #[arg(long, value_name = "MIB", default_value_t = cg_build::DEFAULT_MEMORY_MB,
          value_parser = crate::commands::build::memory_mb)]
    pub memory_mb: usize,
}

/// The parent's recorded input paths.
fn parent_inputs(dataset: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dataset.join(cg_build::INPUTS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("`{}` is not an inputs record", path.display())),
        Err(_) => Ok(serde_json::Value::Null),
    }
}

/// Runs `rebuild`.
pub fn rebuild(a: RebuildArgs, printer: Printer) -> anyhow::Result<()> {
    let printer = Printer {
        json: a.json,
        ..printer
    };
    let key = a.key.load()?;
    let recorded = parent_inputs(&a.dataset)?;
    let from_parent = |name: &str| recorded[name].as_str().map(PathBuf::from);
    let required = |given: &Option<PathBuf>, name: &str| -> anyhow::Result<PathBuf> {
        given.clone().or_else(|| from_parent(name)).ok_or_else(|| {
            anyhow::Error::new(UsageError(format!(
                "--{name} is needed: `{}` does not record where its {name} came from",
                a.dataset.display()
            )))
        })
    };
    let consent = match (&a.consent, &a.store) {
        (Some(f), _) => ConsentSourceArg::File(f.clone()),
        (None, Some(url)) => ConsentSourceArg::Store(url.clone()),
        (None, None) => ConsentSourceArg::Store(cg_ledger::default_url()),
    };
    let consent_src = consent.clone();
    let log_url = a
        .log
        .clone()
        .or_else(|| a.store.clone())
        .unwrap_or_else(cg_ledger::default_url);
    let manifest: cg_build::Manifest = serde_json::from_slice(
        &std::fs::read(a.dataset.join("manifest.json"))
            .with_context(|| format!("`{}` is not a dataset", a.dataset.display()))?,
    )
    .with_context(|| format!("`{}` has no valid manifest", a.dataset.display()))?;
    let cfg = BuildConfig {
        members: a.members.clone().or_else(|| from_parent("members")),
        content: required(&a.content, "content")?,
        consent,
        residences: a.residences.clone().or_else(|| from_parent("residences")),
        notices: a.notices.clone().or_else(|| from_parent("notices")),
        erasures: a.erasures.clone().or_else(|| from_parent("erasures")),
        as_of: a.as_of,
        purpose: cg_model::Purpose::new(&manifest.purpose)
            .map_err(|e| anyhow::anyhow!("the parent's purpose: {e}"))?,
        policy: std::sync::Arc::new(a.policy.load()?),
        out: a.out,
        shards: manifest.shard_count,
        quarantine: false,
        shard_key: std::env::var("CG_SHARD_KEY").ok().map(String::into_bytes),
        member_keys: std::sync::Arc::new(key.member_keys.clone()),
        // A rebuild keeps its parent's scheme (`cg_build::rebuild`).
        key_scheme: cg_build::KeyScheme::default(),
        ledger_checkpoint: crate::commands::build::ledger_head(&consent_src, &key)?,
        engine: a.engine.clone(),
        license: a.license.clone().or_else(|| manifest.license.clone()),
        memory_mb: a.memory_mb,
        staging: None,
        shard_writes: Default::default(),
    };
    printer.status(
        "Rebuilding",
        format!("{} as of {}", a.dataset.display(), cfg.as_of),
    );
    let started = std::time::Instant::now();
    let bars = Bars::new(printer);
    let out = cg_build::rebuild(&a.dataset, cfg, &bars).map_err(|e| match e {
        cg_build::BuildError::Exists(ref p) => anyhow::Error::new(Hinted {
            message: format!("the dataset `{}` already exists", p.display()),
            hint: "datasets are immutable; remove it or choose another --out".into(),
        }),
        other => anyhow::Error::new(other).context("the rebuild failed; nothing was published"),
    })?;
    let secs = started.elapsed().as_secs_f64();
    let changed = out
        .manifest
        .lineage
        .as_ref()
        .map_or(0, |l| l.changed_shards.len());
    printer.status(
        "Published",
        format!(
            "{} in {secs:.1}s ({changed} of {} shards changed)",
            out.dir.display(),
            out.manifest.shard_count
        ),
    );
    log_dataset(&out.dir, &log_url, &key, printer)?;
    printer.data(&out.manifest, || {
        let mut s = summary(&out.dir, &out.manifest, secs);
        if let Some(l) = &out.manifest.lineage {
            s.push_str(&format!(
                "\nrebuilt from {} (as of {}): {} member(s) added, {} removed; changed: {}\n",
                l.parent,
                l.parent_as_of,
                l.members_added,
                l.members_removed,
                if l.changed_shards.is_empty() {
                    "none".to_owned()
                } else {
                    l.changed_shards.join(", ")
                }
            ));
        }
        s
    })
}

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Start at this log index (default: the current end, so only new changes are printed).
    #[arg(long, value_name = "N")]
    pub from_index: Option<u64>,
    /// Print what is there and exit instead of following.
    #[arg(long)]
    pub once: bool,
    /// How often to look for new entries when following, in milliseconds.
    #[arg(long, default_value_t = 250, value_name = "MS")]
    pub interval_ms: u64,
}

/// One line of `watch`.
#[derive(Debug, Serialize)]
struct Change {
    log_index: u64,
    kind: &'static str,
    #[serde(flatten)]
    body: serde_json::Value,
}

/// Runs `watch`: consent changes and dataset manifests as JSON lines, each with its log index.
pub fn watch(a: WatchArgs, _printer: Printer) -> anyhow::Result<()> {
    let mut store = a.store.open_existing()?;
    let mut next = match a.from_index {
        Some(n) => n,
        None => store.log_leaf_hashes()?.len() as u64,
    };
    let mut out = std::io::stdout().lock();
    loop {
        let mut lines: Vec<Change> = Vec::new();
        store.log_scan(next, &mut |e| {
            let body = match (cg_proof::leaves::Entry::decode(&e.data), &e.event) {
                (Some(cg_proof::leaves::Entry::Event { .. }), Some((ev, _))) => (
                    "consent",
                    serde_json::json!({
                        "seq": ev.seq,
                        "member_id": ev.event.member_id.0,
                        "purpose": ev.event.purpose.as_str(),
                        "granted": ev.event.granted,
                        "ts": ev.event.ts.to_string(),
                        "source": ev.event.source.as_str(),
                        "notice_version": ev.event.notice_version,
                        "recorded_at": ev.recorded_at.to_string(),
                    }),
                ),
                (Some(cg_proof::leaves::Entry::Manifest { dataset_id, sha256 }), _) => (
                    "dataset",
                    serde_json::json!({
                        "dataset_id": dataset_id,
                        "manifest_sha256": cg_proof::hex(&sha256),
                    }),
                ),
                (
                    Some(cg_proof::leaves::Entry::PolicyActivation {
                        policy_hash,
                        accepted_widening,
                    }),
                    _,
                ) => (
                    "policy",
                    serde_json::json!({
                        "policy_hash": policy_hash,
                        "accepted_widening": accepted_widening,
                    }),
                ),
                _ => ("unknown", serde_json::json!({})),
            };
            lines.push(Change {
                log_index: e.index,
                kind: body.0,
                body: body.1,
            });
            Ok(())
        })?;
        for l in &lines {
            serde_json::to_writer(&mut out, l)?;
            writeln!(out)?;
            next = l.log_index + 1;
        }
        out.flush()?;
        if a.once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(a.interval_ms.max(10)));
    }
}
