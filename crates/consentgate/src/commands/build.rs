//! `consentgate build` and `consentgate demo`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use arrow::array::AsArray;
use cg_build::{BuildConfig, ConsentSourceArg, Manifest};
use cg_model::{Purpose, Timestamp};
use clap::Args;

use crate::commands::args;
use crate::commands::keys::{KeyArgs, LogKey};
use crate::commands::policy::PolicyArgs;
use crate::errors::Hinted;
use crate::printer::Printer;
use crate::progress::Bars;

/// The input files of a build or an impact report.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Members file (.parquet, .csv, .jsonl); optional with a ledger (`--store`, or no
    /// `--consent`), which holds members too: facts from both are merged, most protective wins.
    #[arg(long)]
    pub members: Option<PathBuf>,
    /// Content file.
    #[arg(long)]
    pub content: PathBuf,
    /// Consent-events file (or use --store for every member fact the ledger holds as of the
    /// cut-off).
    #[arg(long, conflicts_with = "store")]
    pub consent: Option<PathBuf>,
    /// The ledger to take member facts and consent from (`sqlite:…`, `postgres://…`; default:
    /// the embedded one).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Residence history file.
    #[arg(long)]
    pub residences: Option<PathBuf>,
    /// Notices file.
    #[arg(long)]
    pub notices: Option<PathBuf>,
    /// Erasures file.
    #[arg(long)]
    pub erasures: Option<PathBuf>,
    /// The cut-off: the state as of this time.
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub as_of: Timestamp,
    /// Purpose.
    #[arg(long, default_value = "genai_training", value_parser = args::purpose)]
    pub purpose: Purpose,
}

impl InputArgs {
    /// The member-side inputs.
    pub fn facts(&self) -> cg_build::FactInputs {
        let consent = match (&self.consent, &self.store) {
            (Some(f), _) => ConsentSourceArg::File(f.clone()),
            (None, Some(url)) => ConsentSourceArg::Store(url.clone()),
            (None, None) => ConsentSourceArg::Store(cg_ledger::default_url()),
        };
        cg_build::FactInputs {
            members: self.members.clone(),
            consent,
            residences: self.residences.clone(),
            notices: self.notices.clone(),
            erasures: self.erasures.clone(),
            purposes: Vec::new(),
        }
    }
}

/// Arguments of `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Output directory; the dataset is published as `DIR/<dataset_id>/`. Or an S3-compatible
    /// store, `s3://bucket/prefix` (credentials, region and endpoint from the `AWS_*`
    /// environment): the dataset is written to `--staging`, then uploaded, manifest last.
    #[arg(long)]
    pub out: PathBuf,
    /// With `--out s3://…`: where the dataset is written before it is uploaded (default
    /// `$TMPDIR`; with `--engine ballista://` a directory the executors share).
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// Number of shards.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub shards: u32,
    /// Exclude malformed rows as `invalid_record` (and count them) instead of failing.
    #[arg(long)]
    pub quarantine: bool,
    /// The licence the dataset card declares (an SPDX id or Hugging Face licence name in lower
    /// case, e.g. `cc-by-4.0`; default `other`).
    #[arg(long, value_name = "ID", value_parser = license)]
    pub license: Option<String>,
    /// Memory the build's pass may hold before it spills to disk, in MiB (half of it for kept rows
    /// waiting to be sorted into their shard).
    #[arg(long, value_name = "MIB", default_value_t = cg_build::DEFAULT_MEMORY_MB,
          value_parser = memory_mb)]
    pub memory_mb: usize,
    /// The member commitment receipts are proven against: `roster` (every member with content
    /// in the input, each with a salted bit; three SHA-256, ~0.4 µs of a core, a member) or
    /// `vrf` (sorted intervals over one VRF key per included member; ~40 µs of a core per
    /// member, and a receipt never shows that two other members had content in the input).
    /// See docs/formats/receipt.md.
    #[arg(long, value_name = "SCHEME", default_value = "roster", value_parser = key_scheme)]
    pub key_scheme: cg_build::KeyScheme,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
    /// The ledger whose transparency log records the dataset's manifest (default: the --store
    /// ledger, else the embedded one).
    #[arg(long, value_name = "URL")]
    pub log: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Where the plan runs: `datafusion` (embedded, this process) or `ballista://HOST:PORT` (a
    /// Ballista scheduler started with `consentgate scheduler`; inputs and `--out` must be on
    /// storage the executors share; `?partitions=N` splits each stage into N tasks, default
    /// ⌈√(content bytes / 2 MiB)⌉, at least 4;
    /// `shuffle-mb=M` bounds what each task buffers while it shuffles, default 256;
    /// `timeout=SECS` bounds the wait for the cluster, default a day, past which the job is
    /// cancelled and nothing published). The dataset is the same either way.
    #[arg(long, default_value = "datafusion", value_name = "ENGINE", value_parser = engine)]
    pub engine: cg_build::Engine,
    /// How the shards are written: `auto` (into their files while the pass decides when the
    /// content is in `content_id` order, checked row by row, else through sorted spools) or
    /// `spool` (always through the spools). The dataset is the same either way.
    #[arg(long, value_name = "HOW", default_value = "auto", value_parser = shard_writes)]
    pub shard_writes: cg_build::ShardWrites,
}

/// Parses `--memory-mb`: 64 MiB to 1 TiB.
pub fn memory_mb(s: &str) -> Result<usize, String> {
    let mb: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number of MiB"))?;
    if (64..=1 << 20).contains(&mb) {
        Ok(mb)
    } else {
        Err(format!("{mb} MiB is outside 64..=1048576"))
    }
}

/// Parses `--license`.
pub fn license(s: &str) -> Result<String, String> {
    if cg_build::card::valid_license(s) {
        Ok(s.to_owned())
    } else {
        Err("expected a licence id in lower case (letters, digits, `.`, `-`, `+`), e.g. `cc-by-4.0` or `other`".into())
    }
}

/// Parses `--key-scheme`.
pub fn key_scheme(s: &str) -> Result<cg_build::KeyScheme, String> {
    cg_build::KeyScheme::parse(s).ok_or_else(|| "expected `roster` or `vrf`".into())
}

/// Parses `--shard-writes`.
pub fn shard_writes(s: &str) -> Result<cg_build::ShardWrites, String> {
    cg_build::ShardWrites::parse(s).ok_or_else(|| "expected `auto` or `spool`".into())
}

fn engine(s: &str) -> Result<cg_build::Engine, String> {
    cg_build::Engine::parse(s)
}

/// Runs `build`.
pub fn run(a: BuildArgs, printer: Printer) -> anyhow::Result<()> {
    let printer = Printer {
        json: a.json,
        ..printer
    };
    let facts = a.inputs.facts();
    let facts_consent = facts.consent.clone();
    let key = a.key.load_or_create(printer)?;
    let log_url = a
        .log
        .clone()
        .or_else(|| a.inputs.store.clone())
        .unwrap_or_else(cg_ledger::default_url);
    let cfg = BuildConfig {
        members: facts.members,
        content: a.inputs.content,
        consent: facts.consent,
        residences: facts.residences,
        notices: facts.notices,
        erasures: facts.erasures,
        as_of: a.inputs.as_of,
        purpose: a.inputs.purpose,
        policy: std::sync::Arc::new(a.policy.load()?),
        out: a.out,
        shards: a.shards,
        quarantine: a.quarantine,
        shard_key: std::env::var("CG_SHARD_KEY").ok().map(String::into_bytes),
        member_keys: std::sync::Arc::new(key.member_keys.clone()),
        key_scheme: a.key_scheme,
        ledger_checkpoint: ledger_head(&facts_consent, &key)?,
        engine: a.engine,
        license: a.license,
        memory_mb: a.memory_mb,
        staging: a.staging,
        shard_writes: a.shard_writes,
    };
    let (dir, manifest, secs) = run_build(cfg, printer)?;
    log_dataset(&dir, &log_url, &key, printer)?;
    printer.data(&manifest, || summary(&dir, &manifest, secs))
}

/// For a build from the ledger: the signed head of its log as the build starts (signed now if
/// the log grew since the last checkpoint). `None` for a consent file, or when the ledger does
/// not exist (the build itself then reports it).
pub fn ledger_head(
    consent: &ConsentSourceArg,
    key: &LogKey,
) -> anyhow::Result<Option<cg_build::manifest::LedgerCheckpoint>> {
    let ConsentSourceArg::Store(url) = consent else {
        return Ok(None);
    };
    let Ok(mut store) = cg_ledger::open_existing(url) else {
        return Ok(None);
    };
    let cp = cg_ledger::log::checkpoint(store.as_mut(), &key.signer)?;
    Ok(Some(cg_build::manifest::LedgerCheckpoint {
        origin: key.signer.name().to_owned(),
        size: cp.size,
        root: cg_proof::hex(&cp.root),
    }))
}

/// Appends a published dataset's manifest to the log and signs a checkpoint that covers it.
pub fn log_dataset(
    dir: &Path,
    log_url: &str,
    key: &LogKey,
    printer: Printer,
) -> anyhow::Result<()> {
    let path = dir.join("manifest.json");
    let logged = (|| -> anyhow::Result<(u64, u64)> {
        // Through the store for a dataset published to one.
        let bytes = cg_build::store::read_bytes(&path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let m: Manifest = serde_json::from_slice(&bytes)?;
        let sha: [u8; 32] =
            sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &bytes))
                .into();
        let mut store = cg_ledger::open(log_url)?;
        let index = store.log_append_manifest(&m.dataset_id, &sha)?;
        let cp = cg_ledger::log::checkpoint(store.as_mut(), &key.signer)?;
        Ok((index, cp.size))
    })();
    match logged {
        Ok((index, size)) => {
            printer.status(
                "Logged",
                format!("the manifest as log entry {index} (checkpoint at size {size})"),
            );
            Ok(())
        }
        Err(e) => Err(e.context(Hinted {
            message: format!(
                "the dataset `{}` was published but its manifest is not in the log",
                dir.display()
            ),
            hint: format!(
                "append it: consentgate log append --manifest {}",
                path.display()
            ),
        })),
    }
}

/// Runs one build with a progress bar; returns the dataset dir, manifest and seconds.
pub fn run_build(cfg: BuildConfig, printer: Printer) -> anyhow::Result<(PathBuf, Manifest, f64)> {
    printer.status(
        "Building",
        format!(
            "{} as of {} under policy `{}`",
            cfg.purpose,
            cfg.as_of,
            cfg.policy.name()
        ),
    );
    let started = Instant::now();
    let out = cfg.out.clone();
    let bars = Bars::new(printer);
    let built = cg_build::build(cfg, &bars).map_err(|e| match e {
        cg_build::BuildError::Exists(ref p) => anyhow::Error::new(Hinted {
            message: format!("the dataset `{}` already exists", p.display()),
            hint: format!(
                "datasets are immutable; remove it or choose another --out than `{}`",
                out.display()
            ),
        }),
        other => anyhow::Error::new(other).context("the build failed; nothing was published"),
    })?;
    let secs = started.elapsed().as_secs_f64();
    if built.manifest.engine == "ballista" {
        let r = built.received;
        printer.status(
            "Received",
            format!(
                "{} bytes ({:.1} MiB) in {} rows, {} batches from the cluster; {} member keys derived by the executors; {} tasks per stage",
                r.bytes,
                r.bytes as f64 / (1024.0 * 1024.0),
                r.rows,
                r.batches,
                r.member_keys,
                r.tasks
            ),
        );
    }
    let u = built.uploaded;
    if u != cg_build::store::Uploaded::default() {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        printer.status(
            "Uploaded",
            format!(
                "{} files ({:.1} MiB) put and read back by this process before the manifest; {} shards ({:.1} MiB) copied on the store from the executors' objects, {:.1} MiB of them streamed through this process",
                u.files,
                mib(u.bytes),
                u.copied,
                mib(u.copied_bytes),
                mib(u.streamed_bytes)
            ),
        );
    }
    printer.status(
        "Published",
        format!("{} in {secs:.1}s", built.dir.display()),
    );
    Ok((built.dir, built.manifest, secs))
}

/// The summary table: totals, then rows by region × reason.
pub fn summary(dir: &Path, m: &Manifest, secs: f64) -> String {
    let total: u64 = m.totals.values().sum();
    let mut s = format!(
        "dataset   {}\npath      {}\npolicy    {} ({})\nas of     {}\nrows      {total} in {secs:.1}s",
        m.dataset_id,
        dir.display(),
        m.policy.name,
        &m.policy.hash[..12],
        m.as_of
    );
    for (d, n) in &m.totals {
        s.push_str(&format!("\n  {d:<17} {n:>10}"));
    }
    let mut regions: Vec<String> = m.counts.iter().map(|c| c.region.clone()).collect();
    regions.sort();
    regions.dedup();
    let mut by: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    for c in &m.counts {
        *by.entry((c.decision.clone(), c.reason.clone()))
            .or_default()
            .entry(c.region.clone())
            .or_default() += c.rows;
    }
    s.push_str(&format!("\n\n{:<17} {:<22}", "decision", "reason"));
    for r in &regions {
        s.push_str(&format!(" {r:>8}"));
    }
    for ((d, reason), cells) in &by {
        s.push_str(&format!("\n{d:<17} {reason:<22}"));
        for r in &regions {
            s.push_str(&format!(" {:>8}", cells.get(r).copied().unwrap_or(0)));
        }
    }
    s.push('\n');
    s
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Members to generate.
    #[arg(long, default_value_t = 100_000)]
    pub members: u64,
    /// Content rows to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub content: u64,
    /// Working directory (corpus, ledger, datasets); replaced on each run.
    #[arg(long, default_value = ".consentgate/demo")]
    pub dir: PathBuf,
    /// Shards per dataset.
    #[arg(long, default_value_t = 16)]
    pub shards: u32,
}

/// Runs `demo`: generate, load the ledger, build inside the 2024-09 suspension and after the
/// 2025-11 resumption, and show what changed.
pub fn demo(a: DemoArgs, printer: Printer) -> anyhow::Result<()> {
    let started = Instant::now();
    // Only a directory the demo made itself (it holds the marker) is ever replaced.
    let marker = a.dir.join(".consentgate-demo");
    if a.dir.exists() {
        let empty = std::fs::read_dir(&a.dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !marker.exists() && !empty {
            return Err(Hinted {
                message: format!(
                    "`{}` exists and was not made by `consentgate demo`",
                    a.dir.display()
                ),
                hint: "choose another --dir; the demo replaces only its own directory".into(),
            }
            .into());
        }
        std::fs::remove_dir_all(&a.dir)
            .with_context(|| format!("cannot clear `{}`", a.dir.display()))?;
    }
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create `{}`", a.dir.display()))?;
    std::fs::write(
        &marker,
        b"made by consentgate demo; the next run replaces this directory\n",
    )
    .with_context(|| format!("cannot write `{}`", marker.display()))?;
    let corpus = a.dir.join("corpus");
    let bars = Bars::new(printer);
    printer.status(
        "Generating",
        format!("{} members, {} content rows", a.members, a.content),
    );
    let cfg = cg_synth::CorpusConfig {
        members: a.members,
        content: a.content,
        seed: 7,
        format: cg_io::Format::Parquet,
    };
    let generated =
        cg_synth::generate(&cfg, &corpus, &bars).context("cannot generate the demo corpus")?;
    let path = |t: &str| {
        generated
            .tables
            .iter()
            .find(|x| x.table == t)
            .map(|x| x.path.clone())
            .unwrap_or_default()
    };
    let store_url = format!("sqlite:{}", a.dir.join("ledger.sqlite").display());
    printer.status(
        "Loading",
        format!("consent and member facts into the embedded ledger {store_url}"),
    );
    let mut store = cg_ledger::open(&store_url)?;
    for t in ["consent", "members", "residences", "notices", "erasures"] {
        cg_ledger::import_file(store.as_mut(), &path(t), &bars)?;
    }
    drop(store);
    let key = LogKey::create(
        &a.dir.join("log.key"),
        crate::commands::keys::DEFAULT_ORIGIN,
    )?;
    let mut out = String::new();
    let mut last = None;
    for (label, as_of) in [
        ("inside the 2024-09 suspension", "2025-03-01"),
        ("after the 2025-11 resumption", "2025-12-01"),
    ] {
        let cfg = BuildConfig {
            members: Some(path("members")),
            content: path("content"),
            consent: ConsentSourceArg::Store(store_url.clone()),
            residences: Some(path("residences")),
            notices: Some(path("notices")),
            erasures: Some(path("erasures")),
            as_of: Timestamp::parse(as_of)?,
            purpose: Purpose::genai_training(),
            policy: std::sync::Arc::new(cg_policy::Policy::bundled(
                "timeline",
                cg_policy::PolicyConfig::default(),
            )?),
            out: a.dir.join("datasets"),
            shards: a.shards,
            quarantine: false,
            shard_key: None,
            member_keys: std::sync::Arc::new(key.member_keys.clone()),
            key_scheme: cg_build::KeyScheme::default(),
            ledger_checkpoint: ledger_head(&ConsentSourceArg::Store(store_url.clone()), &key)?,
            engine: cg_build::Engine::Embedded,
            license: None,
            memory_mb: cg_build::DEFAULT_MEMORY_MB,
            staging: None,
            shard_writes: Default::default(),
        };
        let (dir, manifest, secs) = run_build(cfg, printer)?;
        log_dataset(&dir, &store_url, &key, printer)?;
        out.push_str(&format!("\n=== Build as of {as_of} ({label}) ===\n"));
        out.push_str(&summary(&dir, &manifest, secs));
        out.push_str("\nRedacted examples from the first shard:\n");
        for t in examples(&dir.join("shards/part-00000.parquet"), 3)? {
            out.push_str(&format!("  • {t}\n"));
        }
        last = Some(dir);
    }
    if let Some(dir) = last {
        out.push_str(&demo_receipts(&dir, &a.dir, &store_url, &key, printer)?);
    }
    out.push_str(&format!(
        "\nCorpus: {}\nLedger: {store_url}\nDatasets: {}\nDone in {:.1}s. Try: consentgate policy explain --country FR --birth-date 1990-01-01 --as-of 2025-03-01\n     and: consentgate policy prove --old li-2024-09 --new li-2025-11   (what the 2025 resumption admits; needs cvc5: scripts/install-solver.sh)\n",
        corpus.display(),
        a.dir.join("datasets").display(),
        started.elapsed().as_secs_f64()
    ));
    print!("{out}");
    Ok(())
}

/// Issues and verifies (offline, with only the verifier key) a receipt for one member whose
/// content is in the dataset and one whose content was excluded.
fn demo_receipts(
    dataset: &Path,
    demo_dir: &Path,
    store_url: &str,
    key: &LogKey,
    printer: Printer,
) -> anyhow::Result<String> {
    let included = cg_build::included_members(dataset)?;
    let excluded = first_excluded_member(dataset, &included)?;
    let receipts = demo_dir.join("receipts");
    std::fs::create_dir_all(&receipts)
        .with_context(|| format!("cannot create `{}`", receipts.display()))?;
    let vkey = key.signer.verifier_key();
    let vkey_path = demo_dir.join("log.vkey");
    std::fs::write(&vkey_path, format!("{vkey}\n"))
        .with_context(|| format!("cannot write `{}`", vkey_path.display()))?;
    let mut store = cg_ledger::open(store_url)?;
    let mut out = String::from("\nReceipts (verified offline with only the log's verifier key):\n");
    for member in included.first().copied().into_iter().chain(excluded) {
        let receipt = crate::commands::receipt::issue(dataset, member, store.as_mut(), key)?;
        let path = receipts.join(format!("member-{member}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&receipt)? + "\n")
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        let verified = crate::commands::receipt::verify_file(&path, &vkey, Some(member))?;
        printer.status("Verified", verified.statement());
        out.push_str(&format!(
            "  ✓ {}  ({})\n",
            verified.statement(),
            path.display()
        ));
    }
    out.push_str(&format!(
        "  Check one yourself: consentgate receipt verify {} --vkey {}\n",
        receipts.join("member-….json").display(),
        vkey_path.display()
    ));
    Ok(out)
}

/// The first member (by id) with content in the decision record and none of it in the shards.
fn first_excluded_member(dataset: &Path, included: &[i64]) -> anyhow::Result<Option<i64>> {
    let mut best: Option<i64> = None;
    cg_build::decisions::for_each_decision(dataset, |row| {
        if let Some(m) = row.member_id
            && included.binary_search(&m).is_err()
            && best.is_none_or(|b| m < b)
        {
            best = Some(m);
        }
        Ok(())
    })?;
    Ok(best)
}

/// Up to `n` shard texts that show a placeholder.
fn examples(path: &Path, n: usize) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch?;
        let text = batch.column(3).as_string::<i32>();
        for t in text.iter().flatten() {
            if t.contains('<') && out.len() < n {
                out.push(t.chars().take(220).collect());
            }
        }
        if out.len() >= n {
            break;
        }
    }
    Ok(out)
}
