//! `consentgate policy prove`: whether a policy change admits anything the old policy denied,
//! for every member, item, purpose and time ([`cg_prove`]).
//!
//! Exit codes: 0 proved, 1 counterexample (or a check that is not proved), 2 usage error,
//! 3 no answer (solver missing, timed out or `unknown`; a policy the proof cannot model).
//! Never 0 without the solver's answer.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use cg_model::Purpose;
use cg_policy::{Policy, PolicyConfig};
use cg_prove::{Check, CheckResult, Comparison, Counterexample, Outcome, Report, SolverConfig};
use clap::{Args, ValueEnum};

use crate::commands::policy::policy_error;
use crate::errors::{Finished, NoAnswer, UsageError};
use crate::printer::Printer;

/// Which implications to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// New includes ⇒ old included: nothing new is admitted (the exit code's question).
    Widening,
    /// Old included ⇒ new includes: nothing is newly excluded.
    Narrowing,
    /// Both; the exit code still answers "nothing new admitted", the other is for impact
    /// messaging.
    Both,
}

/// Arguments of `policy prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The policy in force: a bundled name (timeline, li-2024-pre, li-2024-09, li-2025-11,
    /// strict-optin), a `.cedar` file added to the bundled timeline, or a directory of `.cedar`
    /// files (one named like a bundled file replaces it) with an optional `policy.toml` config.
    #[arg(long, value_name = "NAME|FILE|DIR")]
    pub old: String,
    /// The proposed policy (same forms as `--old`).
    #[arg(long, value_name = "NAME|FILE|DIR")]
    pub new: String,
    /// Only this purpose (default: every purpose of either config's catalogue).
    #[arg(long, value_name = "PURPOSE")]
    pub purpose: Option<String>,
    /// A TOML policy config for both sides (a directory's own `policy.toml` wins for its side).
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Override a config parameter on both sides (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Override a config parameter of the old policy only (repeatable).
    #[arg(long = "old-set", value_name = "NAME=VALUE")]
    pub old_sets: Vec<String>,
    /// Override a config parameter of the new policy only (repeatable).
    #[arg(long = "new-set", value_name = "NAME=VALUE")]
    pub new_sets: Vec<String>,
    /// Which implications to check.
    #[arg(long, value_enum, default_value = "widening")]
    pub direction: Direction,
    /// Check both directions; exit 0 only if the policies decide every case alike.
    #[arg(long, conflicts_with = "direction")]
    pub equivalent: bool,
    /// The cvc5 binary (default: `$CVC5`, else `cvc5` on `PATH`).
    #[arg(long, value_name = "PATH")]
    pub solver: Option<PathBuf>,
    /// Time limit per solver query, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `policy prove`.
pub fn run(a: ProveArgs, printer: Printer) -> anyhow::Result<()> {
    let printer = Printer {
        json: a.json,
        ..printer
    };
    let old = load_side(&a.old, &a, &a.old_sets)?;
    let new = load_side(&a.new, &a, &a.new_sets)?;
    let purpose = match &a.purpose {
        None => None,
        Some(name) => {
            let catalogue: Vec<String> = old
                .config()
                .catalogue()
                .into_iter()
                .chain(new.config().catalogue())
                .map(str::to_owned)
                .collect();
            let catalogue: Vec<&str> = catalogue.iter().map(String::as_str).collect();
            Some(
                Purpose::in_catalogue(name, &catalogue)
                    .map_err(|e| UsageError(format!("--purpose: {e}")))?,
            )
        }
    };
    let checks: &[Check] = match (a.equivalent, a.direction) {
        (true, _) | (false, Direction::Both) => {
            &[Check::NothingNewAdmitted, Check::NothingNewExcluded]
        }
        (false, Direction::Widening) => &[Check::NothingNewAdmitted],
        (false, Direction::Narrowing) => &[Check::NothingNewExcluded],
    };
    if a.timeout_ms == 0 {
        return Err(UsageError("--timeout-ms must be positive".into()).into());
    }
    let solver = SolverConfig {
        path: a.solver.clone(),
        timeout: Duration::from_millis(a.timeout_ms),
    };
    let comparison = Comparison {
        old: &old,
        new: &new,
        purpose: purpose.as_ref(),
        checks,
    };
    let report = comparison.run(&solver).map_err(|e| NoAnswer {
        message: e.to_string(),
        hint: e.hint().map(str::to_owned),
    })?;
    // The exit code answers the question asked: "nothing new admitted" unless only the reverse
    // or equivalence was asked.
    let decisive: Vec<&CheckResult> = if a.equivalent || a.direction == Direction::Narrowing {
        report.checks.iter().collect()
    } else {
        report
            .result(Check::NothingNewAdmitted)
            .into_iter()
            .collect()
    };
    let proved = decisive.iter().all(|c| c.result == Outcome::Proved);
    // JSON: the report, with the answer to the question asked on top (`proved` or
    // `counterexample`, as the exit code says).
    let mut json = serde_json::to_value(&report)?;
    if let Some(map) = json.as_object_mut() {
        let answer = if proved { "proved" } else { "counterexample" };
        map.insert("result".into(), serde_json::Value::from(answer));
    }
    printer.data(&json, || render(&report))?;
    if proved {
        Ok(())
    } else {
        Err(Finished(1).into())
    }
}

/// One side's policy: a directory's `policy.toml`, else `--config`, then `--set`, then the
/// side's own overrides.
fn load_side(name: &str, a: &ProveArgs, side_sets: &[String]) -> anyhow::Result<Policy> {
    let dir_config = Path::new(name).join("policy.toml");
    let config_file = if Path::new(name).is_dir() && dir_config.is_file() {
        Some(dir_config)
    } else {
        a.config.clone()
    };
    let mut config = match &config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read policy config `{}`", path.display()))?;
            PolicyConfig::from_toml(&path.display().to_string(), &text)?
        }
        None => PolicyConfig::default(),
    };
    for s in a.sets.iter().chain(side_sets) {
        config.set(s).map_err(|e| UsageError(e.to_string()))?;
    }
    Policy::resolve(name, config).map_err(policy_error)
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "old: {} ({})\nnew: {} ({})",
        report.old.name,
        short(&report.old.hash),
        report.new.name,
        short(&report.new.hash)
    );
    for check in &report.checks {
        let _ = writeln!(
            out,
            "\n{}  {}  ({} ms)",
            match check.result {
                Outcome::Proved => "PROVED",
                Outcome::Counterexample => "COUNTEREXAMPLE",
            },
            check.check.describe(),
            check.elapsed_ms
        );
        let differing: Vec<String> = check
            .periods
            .iter()
            .filter(|p| p.differs)
            .map(|p| {
                let day =
                    |d: Option<time::Date>| d.map_or_else(|| "?".to_owned(), |d| d.to_string());
                format!(
                    "{}–{} ({} → {})",
                    day(p.from),
                    day(p.until),
                    p.old_regime,
                    p.new_regime
                )
            })
            .collect();
        if !differing.is_empty() {
            let _ = writeln!(out, "  cut-offs with such cases: {}", differing.join(", "));
        }
        if let Some(cx) = &check.counterexample {
            render_counterexample(&mut out, cx);
        }
    }
    let _ = writeln!(
        out,
        "\nsolver: {} ({}), {} ms in all\nassumed of every member, item and time:",
        report.solver.version, report.solver.path, report.elapsed_ms
    );
    for a in &report.assumptions {
        let _ = writeln!(out, "  - {}", a.says);
    }
    out
}

fn render_counterexample(out: &mut String, cx: &Counterexample) {
    let m = &cx.member;
    let _ = writeln!(out, "  as of {}, purpose {}", cx.as_of.date(), cx.purpose);
    let mut member = vec![match &m.country {
        Some(c) => format!("lives in {c}"),
        None => "country unknown".to_owned(),
    }];
    member.push(match m.birth_date {
        Some(b) => format!("born {b}"),
        None => "birth date unknown".to_owned(),
    });
    if m.events.is_empty() {
        member.push("no consent event".to_owned());
    }
    for e in &m.events {
        let mut s = format!("{} {} on {}", e.consent, e.purpose, e.at.date());
        if let Some(n) = &e.notice_version {
            let _ = write!(s, " (notice {n:?})");
        }
        member.push(s);
    }
    if let Some(at) = m.erased_at {
        member.push(format!("erased {}", at.date()));
    }
    member.push(match m.notice_delivered_at {
        Some(at) => format!("notice delivered {}", at.date()),
        None => "no notice delivered".to_owned(),
    });
    let _ = writeln!(out, "  member: {}", member.join("; "));
    let _ = writeln!(
        out,
        "  item:   {:?} created {}",
        cx.item.kind,
        cx.item.created_at.date()
    );
    for (label, e) in [("old", &cx.replay.old), ("new", &cx.replay.new)] {
        let reasons: Vec<&str> = e.reasons.iter().map(|r| r.as_str()).collect();
        let _ = writeln!(
            out,
            "  replay: {label} {} → {} ({}){}",
            e.policy,
            e.decision,
            reasons.join(", "),
            if e.policies.is_empty() {
                String::new()
            } else {
                format!(" by {}", e.policies.join(", "))
            }
        );
    }
    let _ = writeln!(
        out,
        "  {}",
        if cx.replay.confirmed {
            "confirmed by the decision engine"
        } else {
            "NOT confirmed by the decision engine: the proof's model and the engine disagree here (please report); not proved either way"
        }
    );
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
