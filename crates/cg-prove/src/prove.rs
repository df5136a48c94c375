//! Running a comparison: the two sides' policy sets over the proof schema, the solver queries,
//! and the counterexamples read back and replayed.

use std::str::FromStr;
use std::time::Instant;

use cedar_policy::{PolicySet, Schema};
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicy, CompiledPolicySet};
use cg_model::Purpose;
use cg_policy::Policy;
use serde::Serialize;

use crate::error::ProveError;
use crate::model::{self, Assumption, Side};
use crate::replay::{Counterexample, RawFacts};
use crate::rewrite::rewrite_for_side;
use crate::solver::{SolverConfig, SolverInfo};

/// What a check asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Whatever the new policy includes, the old one included: nothing new is admitted.
    NothingNewAdmitted,
    /// Whatever the old policy included, the new one includes: nothing is newly excluded.
    NothingNewExcluded,
}

impl Check {
    /// One line saying what the check establishes.
    pub fn describe(self) -> &'static str {
        match self {
            Check::NothingNewAdmitted => "new includes ⇒ old included (nothing new admitted)",
            Check::NothingNewExcluded => "old included ⇒ new includes (nothing newly excluded)",
        }
    }
}

/// The answer to one check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// The check.
    pub check: Check,
    /// `proved` or `counterexample`.
    pub result: Outcome,
    /// Solver time for this check.
    pub elapsed_ms: u64,
    /// The case that breaks the implication, replayed through the decision engine (from the
    /// period holding today if it holds one, else the next, else the latest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Box<Counterexample>>,
    /// With a counterexample: every period of cut-offs in which both policies' regimes are
    /// constant, and whether it holds a case (so *from when* the change matters).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<Period>,
}

/// Cut-offs during which both policies apply one regime each.
#[derive(Clone, Debug, Serialize)]
pub struct Period {
    /// First day.
    pub from: Option<time::Date>,
    /// Last day.
    pub until: Option<time::Date>,
    /// The old policy's regime then (`none`: no regime, everything excluded).
    pub old_regime: String,
    /// The new policy's regime then.
    pub new_regime: String,
    /// Whether some member and item are decided differently as the check asks (for "nothing
    /// new admitted": included by the new policy, excluded by the old).
    pub differs: bool,
}

/// `(a, b)` of the implication `a ⇒ b` a check asks, from the old and new sides.
fn ordered<T>(check: Check, old: T, new: T) -> (T, T) {
    match check {
        Check::NothingNewAdmitted => (new, old),
        Check::NothingNewExcluded => (old, new),
    }
}

/// A check's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The implication holds for every member, item, purpose and time.
    Proved,
    /// It does not: a counterexample follows.
    Counterexample,
}

/// A policy as the report names it.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyRef {
    /// Its name.
    pub name: String,
    /// Its content hash.
    pub hash: String,
}

impl PolicyRef {
    fn of(p: &Policy) -> PolicyRef {
        PolicyRef {
            name: p.name().to_owned(),
            hash: p.hash().to_owned(),
        }
    }
}

/// Everything `policy prove` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The policy in force.
    pub old: PolicyRef,
    /// The proposed policy.
    pub new: PolicyRef,
    /// One result per check asked.
    pub checks: Vec<CheckResult>,
    /// The facts the proof assumes of every member, item and time.
    pub assumptions: Vec<Assumption>,
    /// The solver that answered.
    pub solver: SolverInfo,
    /// Wall time of the whole comparison (encoding, solver start, checks, replays).
    pub elapsed_ms: u64,
}

impl Report {
    /// Whether every check was proved.
    pub fn all_proved(&self) -> bool {
        self.checks.iter().all(|c| c.result == Outcome::Proved)
    }

    /// The result of `check`, if it was asked.
    pub fn result(&self, check: Check) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == check)
    }
}

/// A comparison to run.
#[derive(Clone, Copy, Debug)]
pub struct Comparison<'a> {
    /// The policy in force.
    pub old: &'a Policy,
    /// The proposed policy.
    pub new: &'a Policy,
    /// Only this purpose (default: every purpose of either config's catalogue).
    pub purpose: Option<&'a Purpose>,
    /// The checks, in order.
    pub checks: &'a [Check],
}

impl Comparison<'_> {
    /// Runs the comparison on its own single-threaded runtime. Call from synchronous code
    /// (inside an async runtime use [`Comparison::run_async`] or `spawn_blocking`).
    pub fn run(&self, solver: &SolverConfig) -> Result<Report, ProveError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ProveError::encoding(format!("cannot start a runtime: {e}")))?;
        runtime.block_on(self.run_async(solver))
    }

    /// Runs the comparison.
    pub async fn run_async(&self, solver: &SolverConfig) -> Result<Report, ProveError> {
        let started = Instant::now();
        let info = solver.probe().await?;
        let purposes = self.purposes();
        let purpose_names: Vec<&str> = purposes.iter().map(Purpose::as_str).collect();
        let window = model::Window::of(&[self.old, self.new]);
        let mut assumptions = model::shared_assumptions(&purpose_names, &window);
        assumptions.extend(model::side_assumptions(self.old, Side::Old));
        assumptions.extend(model::side_assumptions(self.new, Side::New));

        let schema_text = model::proof_schema();
        let schema = Schema::from_cedarschema_str(&schema_text)
            .map(|(s, _)| s)
            .map_err(|e| ProveError::encoding(format!("proof schema: {e}")))?;
        let env = schema
            .request_envs()
            .next()
            .ok_or_else(|| ProveError::encoding("the proof schema has no request environment"))?;
        let old_set = side_set(self.old, Side::Old, &assumptions)?;
        let new_set = side_set(self.new, Side::New, &assumptions)?;
        let compile = |set: &PolicySet| {
            CompiledPolicySet::compile(set, &env, &schema)
                .map_err(|e| ProveError::encoding(format!("{e}: {}", related(&e))))
        };
        let old_compiled = compile(&old_set)?;
        let new_compiled = compile(&new_set)?;
        // `set` plus extra conditions (a period, preferences), compiled.
        let restricted = |set: &PolicySet, extra: &[Assumption]| {
            let mut set = set.clone();
            let text: String = extra.iter().map(Assumption::as_forbid).collect();
            for p in named_policies(&text)? {
                set.add(p)
                    .map_err(|e| ProveError::encoding(format!("restriction: {e}")))?;
            }
            compile(&set)
        };

        let mut compiler = CedarSymCompiler::new(solver.spawn()?).map_err(ProveError::solver)?;

        // The assumptions must hold for some request, or every implication would hold vacuously.
        let mut only_assumptions = String::from("permit (principal, action, resource);\n");
        for a in &assumptions {
            only_assumptions.push_str(&a.as_forbid());
        }
        let only_assumptions = PolicySet::from_policies(named_policies(&only_assumptions)?)
            .map_err(|e| ProveError::encoding(format!("assumptions: {e}")))?;
        let only_assumptions = compile(&only_assumptions)?;
        if bounded(solver, compiler.check_always_denies_opt(&only_assumptions)).await? {
            return Err(ProveError::encoding(
                "the assumptions contradict each other: no request satisfies them",
            ));
        }

        let mut checks = Vec::new();
        for &check in self.checks {
            let check_started = Instant::now();
            // `a ⇒ b`: every request `a` allows, `b` allows. The side whose exclusions must be
            // sound (`b`) must never error: Cedar skips an erroring policy, the gate excludes.
            let (a, b, b_policy, b_side) = match check {
                Check::NothingNewAdmitted => (&new_compiled, &old_compiled, self.old, Side::Old),
                Check::NothingNewExcluded => (&old_compiled, &new_compiled, self.new, Side::New),
            };
            for policy in rewrite_for_side(b_policy.cedar_policies(), b_side)? {
                let compiled = CompiledPolicy::compile(&policy, &env, &schema)
                    .map_err(|e| ProveError::encoding(format!("{e}: {}", related(&e))))?;
                if !bounded(solver, compiler.check_never_errors_opt(&compiled)).await? {
                    return Err(ProveError::Unsupported {
                        policy: policy.id().to_string(),
                        message: "it can raise an evaluation error (Cedar skips an erroring policy, the gate excludes), so no proof about it would be sound".to_owned(),
                    });
                }
            }
            let found =
                bounded(solver, compiler.check_implies_with_counterexample_opt(a, b)).await?;
            let elapsed_ms = millis(check_started);
            let (counterexample, periods) = match found {
                None => (None, Vec::new()),
                Some(first_found) => {
                    // The decision is made; now say *when*: the cut-offs fall into periods
                    // where both sides' regimes are constant (nothing else depends on the
                    // day), so ask each period whether it holds a case.
                    let mut periods = Vec::new();
                    let mut cases: Vec<(i64, i64, cedar_policy_symcc::Env)> = Vec::new();
                    for (from, until, old_regime, new_regime) in
                        model::joint_periods(self.old, self.new, &window)
                    {
                        let only = [model::period(from, until)];
                        let (pa, pb) = ordered(
                            check,
                            restricted(&old_set, &only)?,
                            restricted(&new_set, &only)?,
                        );
                        let case = bounded(
                            solver,
                            compiler.check_implies_with_counterexample_opt(&pa, &pb),
                        )
                        .await?;
                        periods.push(Period {
                            from: model::day_date(from),
                            until: model::day_date(until - 1),
                            old_regime,
                            new_regime,
                            differs: case.is_some(),
                        });
                        if let Some(env) = case {
                            cases.push((from, until, env));
                        }
                    }
                    // The example shown comes from the period that matters now: the one holding
                    // today, else the next one, else the latest; preferably a plausible member
                    // (an age up to 80, recent content and notice, the main purpose, a listed
                    // kind) as of today (or the period's nearest day); any case if none is
                    // plausible.
                    let today = model::today();
                    let chosen = cases
                        .iter()
                        .position(|(from, until, _)| (*from..*until).contains(&today))
                        .or_else(|| cases.iter().position(|(from, _, _)| *from > today))
                        .or(cases.len().checked_sub(1));
                    let env = match chosen.map(|i| cases.swap_remove(i)) {
                        None => first_found,
                        Some((from, until, env)) => {
                            let start = today.clamp(from, until - 1);
                            let mut extra =
                                model::preferences(&purpose_names, &[self.old, self.new]);
                            extra.push(model::period(start, start + 1));
                            let (pa, pb) = ordered(
                                check,
                                restricted(&old_set, &extra)?,
                                restricted(&new_set, &extra)?,
                            );
                            bounded(
                                solver,
                                compiler.check_implies_with_counterexample_opt(&pa, &pb),
                            )
                            .await?
                            .unwrap_or(env)
                        }
                    };
                    let raw = RawFacts::read(&env)?;
                    let cx = Counterexample::replay(&raw, check, self.old, self.new, &purposes)?;
                    (Some(Box::new(cx)), periods)
                }
            };
            checks.push(CheckResult {
                check,
                result: if counterexample.is_some() {
                    Outcome::Counterexample
                } else {
                    Outcome::Proved
                },
                elapsed_ms,
                counterexample,
                periods,
            });
        }
        Ok(Report {
            old: PolicyRef::of(self.old),
            new: PolicyRef::of(self.new),
            checks,
            assumptions,
            solver: info,
            elapsed_ms: millis(started),
        })
    }

    fn purposes(&self) -> Vec<Purpose> {
        if let Some(p) = self.purpose {
            return vec![p.clone()];
        }
        let mut names: Vec<&str> = self.old.config().catalogue();
        for n in self.new.config().catalogue() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names
            .into_iter()
            .filter_map(|n| Purpose::new(n).ok())
            .collect()
    }
}

/// One side's policy set: its rewritten policies, its no-regime exclusion and every assumption.
fn side_set(
    policy: &Policy,
    side: Side,
    assumptions: &[Assumption],
) -> Result<PolicySet, ProveError> {
    let mut set = PolicySet::new();
    for p in rewrite_for_side(policy.cedar_policies(), side)? {
        let id = p.id().to_string();
        set.add(p).map_err(|e| ProveError::Unsupported {
            policy: id,
            message: e.to_string(),
        })?;
    }
    let mut extra = String::new();
    if let Some(forbid) = model::no_regime_forbid(policy, side) {
        extra.push_str(&forbid);
    }
    for a in assumptions {
        extra.push_str(&a.as_forbid());
    }
    for p in named_policies(&extra)? {
        let id = p.id().to_string();
        set.add(p).map_err(|e| {
            ProveError::encoding(format!("policy id `{id}` is reserved for the proof ({e})"))
        })?;
    }
    Ok(set)
}

/// Parses the proof's own policies, each with its `@id` as its policy id.
fn named_policies(text: &str) -> Result<Vec<cedar_policy::Policy>, ProveError> {
    let parsed = PolicySet::from_str(text)
        .map_err(|e| ProveError::encoding(format!("the proof's policies: {e}")))?;
    Ok(parsed
        .policies()
        .map(|p| match p.annotation("id") {
            Some(id) => p.new_id(cedar_policy::PolicyId::new(id)),
            None => p.clone(),
        })
        .collect())
}

/// Awaits a solver query within the configured limit.
async fn bounded<T>(
    solver: &SolverConfig,
    query: impl Future<Output = cedar_policy_symcc::err::Result<T>>,
) -> Result<T, ProveError> {
    // cvc5 enforces `--tlimit-per` itself; the wall-clock bound (with slack for start-up and
    // model printing) covers a solver that stops responding.
    let wall = solver.timeout + std::time::Duration::from_secs(5);
    match tokio::time::timeout(wall, query).await {
        Err(_) => Err(ProveError::SolverTimeout {
            timeout_ms: u64::try_from(solver.timeout.as_millis()).unwrap_or(u64::MAX),
        }),
        Ok(Err(cedar_policy_symcc::err::Error::SolverUnknown)) => Err(ProveError::SolverUnknown {
            timeout_ms: u64::try_from(solver.timeout.as_millis()).unwrap_or(u64::MAX),
        }),
        Ok(Err(e)) => Err(ProveError::solver(e)),
        Ok(Ok(v)) => Ok(v),
    }
}

fn related(e: &cedar_policy_symcc::err::Error) -> String {
    use miette::Diagnostic;
    e.related()
        .map(|r| r.map(|d| d.to_string()).collect::<Vec<_>>().join("; "))
        .unwrap_or_default()
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
