//! `consentgate policy check|explain|impact` (`prove` lives in [`crate::commands::prove`]).

use std::path::PathBuf;

use anyhow::Context;
use cg_model::{Purpose, Timestamp};
use cg_policy::{
    ConsentInput, EventInput, ExplainRequest, Policy, PolicyConfig, PolicyError, SourceFile,
};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::commands::args;
use crate::errors::UsageError;
use crate::printer::Printer;

/// `policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policies against the schema and print the policy name and content hash.
    Check(CheckArgs),
    /// Decide one item from the command line and explain the decision.
    Explain(Box<ExplainArgs>),
    /// What-if: evaluate two policies over the same inputs and report what changes.
    Impact(Box<ImpactArgs>),
    /// Prove, for every member, item, purpose and time, that a policy change admits nothing
    /// the old policy denied — or show the case where it does (cvc5 via Cedar's symbolic
    /// compiler). Exit 0 proved, 1 counterexample, 2 usage, 3 no answer.
    Prove(Box<crate::commands::prove::ProveArgs>),
}

/// Arguments of `policy impact`.
#[derive(Debug, Args)]
pub struct ImpactArgs {
    /// The policy in force (bundled name or `.cedar` file).
    #[arg(long, value_name = "NAME|FILE")]
    pub from: String,
    /// The proposed policy.
    #[arg(long, value_name = "NAME|FILE")]
    pub to: String,
    /// A TOML policy config for both.
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Override a config parameter for both (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    #[command(flatten)]
    pub inputs: crate::commands::build::InputArgs,
    /// Example content ids per change.
    #[arg(long, default_value_t = 5)]
    pub examples: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the policy comes from: shared by every command that evaluates one.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// A bundled policy (timeline, li-2024-pre, li-2024-09, li-2025-11, strict-optin) or a
    /// `.cedar` file added to the bundled policies.
    #[arg(long, default_value = "timeline", value_name = "NAME|FILE")]
    pub policy: String,
    /// A TOML policy config (parameters and custom regimes).
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Override one config parameter, e.g. `--set minimum_age=16` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
}

impl PolicyArgs {
    /// The config: file, then `--set` overrides.
    pub fn config(&self) -> anyhow::Result<PolicyConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read policy config `{}`", path.display()))?;
                PolicyConfig::from_toml(&path.display().to_string(), &text)?
            }
            None => PolicyConfig::default(),
        };
        for s in &self.sets {
            config.set(s).map_err(|e| UsageError(e.to_string()))?;
        }
        Ok(config)
    }

    /// Whether anything other than the default policy was asked for (`--policy` other than
    /// `timeline`, `--config` or `--set`).
    pub fn is_explicit(&self) -> bool {
        self.policy != "timeline" || self.config.is_some() || !self.sets.is_empty()
    }

    /// Loads the policy, rendering validation problems on stderr.
    pub fn load(&self) -> anyhow::Result<Policy> {
        let config = self.config()?;
        Policy::resolve(&self.policy, config).map_err(policy_error)
    }
}

/// Turns a policy error into the CLI's error: usage errors exit 2; invalid policies are
/// rendered with their source spans first.
pub fn policy_error(e: PolicyError) -> anyhow::Error {
    if e.is_usage() {
        return UsageError(e.to_string()).into();
    }
    if let PolicyError::Invalid(inv) = &e {
        let handler =
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
        for p in inv.problems() {
            let mut out = String::new();
            if handler.render_report(&mut out, p).is_ok() {
                eprintln!("{out}");
            }
        }
    }
    anyhow::Error::new(e)
}

/// Arguments of `policy check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// User-written `.cedar` files to validate together with the bundled policies.
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct CheckReport {
    name: String,
    hash: String,
    policies: usize,
    regimes: Vec<cg_policy::RegimeSpec>,
}

/// Consent state flag values.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ConsentArg {
    /// A grant.
    Granted,
    /// A withdrawal, opt-out or objection.
    Denied,
    /// No event.
    None,
    /// A Global Privacy Control opt-out signal.
    Gpc,
}

/// Arguments of `policy explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The member's current residence (ISO 3166-1 code; territories and aliases normalise;
    /// an unknown code is a decision, not an error).
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    /// Birth date; without it (or with `unknown`) the age is unknown, which excludes wherever
    /// a minimum age applies.
    #[arg(long, value_name = "DATE", value_parser = args::date)]
    pub birth_date: Option<args::MaybeDate>,
    /// Content kind.
    #[arg(long, default_value = "post")]
    pub kind: String,
    /// When the content was created (default: the cut-off).
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub created_at: Option<Timestamp>,
    /// The evaluation time (the build's cut-off).
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub as_of: Timestamp,
    /// The purpose.
    #[arg(long, default_value = "genai_training", value_parser = args::purpose)]
    pub purpose: Purpose,
    /// The member's choice for the purpose.
    #[arg(long, value_enum, default_value_t = ConsentArg::None)]
    pub consent: ConsentArg,
    /// When the choice was made (default: the cut-off).
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub consent_at: Option<Timestamp>,
    /// The purpose the choice was made for, if another one.
    #[arg(long, value_name = "PURPOSE", value_parser = args::any_purpose)]
    pub consent_purpose: Option<Purpose>,
    /// The notice version the choice was made under.
    #[arg(long, value_name = "VERSION")]
    pub consent_notice: Option<String>,
    /// The source of the choice (settings, objection_form, gpc, api, import).
    #[arg(long, value_name = "SOURCE")]
    pub consent_source: Option<String>,
    /// An earlier residence, `CC@TIME` (repeatable).
    #[arg(long = "residence", value_name = "CC@TIME", value_parser = args::residence)]
    pub residences: Vec<(String, Timestamp)>,
    /// Erasure request or account closure.
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub erased_at: Option<Timestamp>,
    /// When the privacy notice was delivered.
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub notice_delivered_at: Option<Timestamp>,
    /// The author is not in the members input.
    #[arg(long)]
    pub member_unknown: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `policy ...`.
pub fn run(cmd: PolicyCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Check(a) => check(a, printer),
        PolicyCommand::Explain(a) => explain(*a, printer),
        PolicyCommand::Impact(a) => impact(*a, printer),
        PolicyCommand::Prove(a) => crate::commands::prove::run(*a, printer),
    }
}

fn check(a: CheckArgs, printer: Printer) -> anyhow::Result<()> {
    let printer = Printer {
        json: a.json,
        ..printer
    };
    let policy = if a.files.is_empty() {
        a.policy.load()?
    } else {
        let mut files = Vec::new();
        for path in &a.files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read policy file `{}`", path.display()))?;
            files.push(SourceFile {
                name: path.display().to_string(),
                text,
            });
        }
        Policy::with_files(files, a.policy.config()?).map_err(policy_error)?
    };
    let report = CheckReport {
        name: policy.name().to_owned(),
        hash: policy.hash().to_owned(),
        policies: policy.len(),
        regimes: policy.regimes().to_vec(),
    };
    printer.status(
        "Valid",
        format!("policy `{}` ({} policies)", report.name, report.policies),
    );
    printer.data(&report, || format!("{} {}\n", report.name, report.hash))
}

fn explain(a: ExplainArgs, printer: Printer) -> anyhow::Result<()> {
    let printer = Printer {
        json: a.json,
        ..printer
    };
    let policy = a.policy.load()?;
    let mut req = ExplainRequest::new(a.as_of);
    req.purpose = a.purpose;
    req.member_known = !a.member_unknown;
    req.country = a.country;
    req.residences = a.residences;
    req.birth_date = a.birth_date.and_then(|d| d.0);
    req.kind = a.kind;
    req.created_at = a.created_at;
    req.erased_at = a.erased_at;
    req.notice_delivered_at = a.notice_delivered_at;
    let consent = match a.consent {
        ConsentArg::Granted => ConsentInput::Granted,
        ConsentArg::Denied => ConsentInput::Denied,
        ConsentArg::None => ConsentInput::None,
        ConsentArg::Gpc => ConsentInput::Gpc,
    };
    if consent != ConsentInput::None {
        req.events.push(EventInput {
            consent,
            at: a.consent_at,
            purpose: a.consent_purpose,
            notice: a.consent_notice,
            source: a.consent_source,
        });
    }
    let e = req.explain(&policy);
    printer.data(&e, || {
        let list = |v: &[String]| if v.is_empty() { "-".to_owned() } else { v.join(", ") };
        let reasons: Vec<String> = e.reasons.iter().map(|r| r.to_string()).collect();
        format!(
            "decision      {}\nreasons       {}\nregime        {}\njurisdiction  {}\npolicies      {}\nnotes         {}\npolicy        {} ({})\nas of         {}\n",
            e.decision,
            list(&reasons),
            e.regime.as_deref().unwrap_or("-"),
            e.jurisdiction.as_deref().unwrap_or("unknown"),
            list(&e.policies),
            list(&e.notes),
            e.policy,
            &e.policy_hash[..12.min(e.policy_hash.len())],
            e.as_of,
        )
    })
}

fn impact(a: ImpactArgs, printer: Printer) -> anyhow::Result<()> {
    let printer = Printer {
        json: a.json,
        ..printer
    };
    let load = |name: &str| {
        PolicyArgs {
            policy: name.to_owned(),
            config: a.config.clone(),
            sets: a.sets.clone(),
        }
        .load()
        .map(std::sync::Arc::new)
    };
    let (from, to) = (load(&a.from)?, load(&a.to)?);
    let cfg = cg_build::ImpactConfig {
        facts: a.inputs.facts(),
        content: a.inputs.content,
        as_of: a.inputs.as_of,
        purpose: a.inputs.purpose,
        from,
        to,
        examples: a.examples,
    };
    let bars = crate::progress::Bars::new(printer);
    let r = cg_build::impact(cfg, &bars).context("the impact report failed")?;
    printer.data(&r, || {
        let mut s = format!(
            "from {} ({}) to {} ({}) as of {}\nrows {}: {} change decision ({} members); kept {} -> {}\n\n{:<8} {:<17} {:<22} {:<17} {:<22} {:>8} {:>8}  examples\n",
            r.from.name, &r.from.hash[..12], r.to.name, &r.to.hash[..12], r.as_of, r.rows, r.rows_changed, r.members_changed,
            r.kept_from, r.kept_to, "region", "from", "reason", "to", "reason", "rows", "members"
        );
        for c in &r.changes {
            let ex: Vec<String> = c.examples.iter().map(|e| e.to_string()).collect();
            s.push_str(&format!(
                "{:<8} {:<17} {:<22} {:<17} {:<22} {:>8} {:>8}  {}\n",
                c.region, c.from_decision, c.from_reason, c.to_decision, c.to_reason, c.rows, c.members, ex.join(",")
            ));
        }
        s
    })
}
