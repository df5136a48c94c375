//! `consentgate report build|ai-act-summary|processing-record`: the documents regulators,
//! model teams and privacy teams ask for, generated from manifests, shards, the ledger and its
//! log (see `cg-report`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use cg_model::Timestamp;
use cg_policy::Policy;
use cg_report::DatasetFacts;
use clap::{Args, Subcommand, ValueEnum};

use crate::commands::consent::StoreArgs;
use crate::commands::policy::PolicyArgs;
use crate::printer::Printer;

/// `report` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// One self-contained HTML page about a dataset: rows by region × decision, reasons,
    /// redactions by entity type, the log entry; with --compare, what changed.
    Build(BuildReportArgs),
    /// The AI Act Art 53(1)(d) public summary of training content, as far as consentgate's
    /// records reach (the provider's own fields from --provider, or marked to be completed).
    AiActSummary(AiActArgs),
    /// A GDPR Art 30 record of processing for a purpose, from the ledger, the policy in force,
    /// the datasets and the model registry.
    ProcessingRecord(ProcessingArgs),
}

/// Output format of text documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown.
    Md,
    /// JSON.
    Json,
}

/// Arguments of `report build`.
#[derive(Debug, Args)]
pub struct BuildReportArgs {
    /// The dataset directory.
    pub dir: PathBuf,
    /// A second dataset to compare with (the "before": another policy or cut-off).
    #[arg(long, value_name = "DIR2")]
    pub compare: Option<PathBuf>,
    /// Write the page here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The ledger whose log should record the manifest (default: the embedded one, if it
    /// exists).
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `report ai-act-summary`.
#[derive(Debug, Args)]
pub struct AiActArgs {
    /// The datasets the model was trained on (dataset directories, or directories of them).
    #[arg(long, required = true, num_args = 1.., value_name = "DIR")]
    pub datasets: Vec<PathBuf>,
    /// The model's versioned name.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// The provider's own answers (TOML: `[provider]`, `[model]`, `[sections."2.1"]`, ...).
    #[arg(long, value_name = "FILE")]
    pub provider: Option<PathBuf>,
    /// The policy the datasets were built with, when it is not a bundled one (its hash must
    /// match the manifests').
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Write the summary here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Markdown or JSON.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
}

/// Arguments of `report processing-record`.
#[derive(Debug, Args)]
pub struct ProcessingArgs {
    /// The purpose.
    #[arg(long, default_value = "genai_training", value_parser = crate::commands::args::any_purpose)]
    pub purpose: cg_model::Purpose,
    #[command(flatten)]
    pub store: StoreArgs,
    /// The controller's own answers (TOML: `[controller] name, contact, representative, dpo`,
    /// `[processing] retention, transfers, recipients, description`).
    #[arg(long, value_name = "FILE")]
    pub controller: Option<PathBuf>,
    /// Published datasets (dataset directories, or directories of them).
    #[arg(long, num_args = 1.., value_name = "DIR")]
    pub datasets: Vec<PathBuf>,
    /// The model registry (TOML or JSON: `[[model]] name, datasets, trained_at`).
    #[arg(long, value_name = "FILE")]
    pub models: Option<PathBuf>,
    /// The policy in force (default: the one the service last activated in this ledger, else
    /// the bundled timeline).
    #[arg(long, value_name = "NAME|FILE")]
    pub policy: Option<String>,
    /// Write the record here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Markdown or JSON.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
}

/// Runs a `report` subcommand.
pub fn run(cmd: ReportCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        ReportCommand::Build(a) => build(a, printer),
        ReportCommand::AiActSummary(a) => ai_act(a, printer),
        ReportCommand::ProcessingRecord(a) => processing(a, printer),
    }
}

fn read_dataset(dir: &Path) -> anyhow::Result<DatasetFacts> {
    DatasetFacts::read(dir).with_context(|| format!("cannot report on `{}`", dir.display()))
}

fn emit(out: Option<&Path>, text: &str, what: &str, printer: Printer) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            printer.status("Wrote", format!("{what} to {}", path.display()));
            Ok(())
        }
        None => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
            Ok(())
        }
    }
}

fn build(a: BuildReportArgs, printer: Printer) -> anyhow::Result<()> {
    let d = read_dataset(&a.dir)?;
    let before = a.compare.as_deref().map(read_dataset).transpose()?;
    let store = match &a.store.store {
        Some(_) => Some(a.store.open_existing()?),
        None => cg_ledger::open_existing(&cg_ledger::default_url()).ok(),
    };
    let log = match store {
        Some(mut s) => Some(cg_report::build_report::log_position(s.as_mut(), &d)?),
        None => None,
    };
    if !d.verifies() {
        printer.status(
            "Warning",
            format!(
                "{} does not match its manifest; the report says so",
                d.manifest.dataset_id
            ),
        );
    }
    let html = cg_report::build_report::render(&d, before.as_ref(), log.as_ref());
    emit(a.out.as_deref(), &html, "the build report", printer)
}

/// The policies that may have made a dataset: the one given, and the bundled one of the
/// manifest's name; the first whose hash matches is used.
fn regime_resolver(datasets: &[DatasetFacts], given: &PolicyArgs) -> anyhow::Result<Vec<Policy>> {
    let mut policies = Vec::new();
    if given.is_explicit() {
        policies.push(given.load()?);
    }
    for d in datasets {
        if policies.iter().any(|p| p.hash() == d.manifest.policy.hash) {
            continue;
        }
        if let Ok(p) = Policy::bundled(&d.manifest.policy.name, cg_policy::PolicyConfig::default())
            && p.hash() == d.manifest.policy.hash
        {
            policies.push(p);
        }
    }
    Ok(policies)
}

fn ai_act(a: AiActArgs, printer: Printer) -> anyhow::Result<()> {
    let dirs = crate::commands::withdrawal::dataset_dirs(&a.datasets)?;
    let datasets: Vec<DatasetFacts> = dirs
        .iter()
        .map(|d| read_dataset(d))
        .collect::<Result<_, _>>()?;
    let provider = match &a.provider {
        Some(p) => cg_report::ai_act::ProviderInfo::read(p)?,
        None => cg_report::ai_act::ProviderInfo::default(),
    };
    let policies = regime_resolver(&datasets, &a.policy)?;
    for d in &datasets {
        if !policies.iter().any(|p| p.hash() == d.manifest.policy.hash) {
            printer.status(
                "Warning",
                format!(
                    "{}: policy `{}` (hash {}) is not bundled; pass --policy/--config to state its regimes",
                    d.manifest.dataset_id, d.manifest.policy.name, d.manifest.policy.hash
                ),
            );
        }
        if !d.verifies() {
            printer.status(
                "Warning",
                format!("{} does not match its manifest", d.manifest.dataset_id),
            );
        }
    }
    let regime_of = |d: &DatasetFacts| {
        let policy = policies
            .iter()
            .find(|p| p.hash() == d.manifest.policy.hash)?;
        let as_of = Timestamp::parse(&d.manifest.as_of).ok()?;
        cg_model::regime::Regime::by_id(policy.regime_id_at(as_of)?)
    };
    let s = cg_report::ai_act::summary(&datasets, a.model.as_deref(), &provider, &regime_of);
    let text = match a.format {
        Format::Md => cg_report::ai_act::markdown(&s),
        Format::Json => serde_json::to_string_pretty(&s)? + "\n",
    };
    emit(
        a.out.as_deref(),
        &text,
        "the training-content summary",
        printer,
    )
}

fn processing(a: ProcessingArgs, printer: Printer) -> anyhow::Result<()> {
    let mut store = a.store.open_existing()?;
    let dirs = if a.datasets.is_empty() {
        Vec::new()
    } else {
        crate::commands::withdrawal::dataset_dirs(&a.datasets)?
    };
    let datasets: Vec<DatasetFacts> = dirs
        .iter()
        .map(|d| read_dataset(d))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|d| d.manifest.purpose == a.purpose.as_str())
        .collect();
    let controller = match &a.controller {
        Some(p) => cg_report::processing::ControllerInfo::read(p)?,
        None => cg_report::processing::ControllerInfo::default(),
    };
    let models = match &a.models {
        Some(p) => cg_report::registry::read(p)?,
        None => Vec::new(),
    };
    let (policy, source) = match &a.policy {
        Some(p) => (
            Policy::resolve(p, cg_policy::PolicyConfig::default())
                .map_err(crate::commands::policy::policy_error)?,
            "given with --policy".to_owned(),
        ),
        None => match store.policy_activation_latest()? {
            Some(act) => {
                let recipe: cg_policy::PolicyRecipe = serde_json::from_str(&act.recipe)
                    .context("the ledger's policy activation has an unreadable recipe")?;
                (
                    Policy::from_recipe(&recipe).map_err(crate::commands::policy::policy_error)?,
                    format!("activated {}", act.activated_at),
                )
            }
            None => (
                Policy::bundled("timeline", cg_policy::PolicyConfig::default())
                    .map_err(crate::commands::policy::policy_error)?,
                "bundled default; no activation recorded in the ledger".to_owned(),
            ),
        },
    };
    let inputs = cg_report::processing::RecordInputs {
        purpose: &a.purpose,
        controller: &controller,
        policy: (&policy, source),
        datasets: &datasets,
        models: &models,
    };
    let record = cg_report::processing::record(store.as_mut(), &inputs)?;
    let text = match a.format {
        Format::Md => cg_report::processing::markdown(&record),
        Format::Json => serde_json::to_string_pretty(&record)? + "\n",
    };
    emit(a.out.as_deref(), &text, "the record of processing", printer)
}
