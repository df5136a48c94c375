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
        let encoding = Encoding::new(self, &assumptions)?;
        let mut session = Session {
            comparison: self,
            solver,
            compiler: CedarSymCompiler::new(solver.spawn()?).map_err(ProveError::solver)?,
            encoding,
            window,
            purposes: &purposes,
        };
        session.assumptions_hold_together(&assumptions).await?;
        let mut checks = Vec::new();
        for &check in self.checks {
            checks.push(session.check(check).await?);
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

/// The proof schema and both sides' policy sets over it.
struct Encoding {
    schema: Schema,
    env: cedar_policy::RequestEnv,
    /// Each side's own policies, rewritten for it (checked for errors before a proof).
    old_policies: Vec<cedar_policy::Policy>,
    new_policies: Vec<cedar_policy::Policy>,
    old_set: PolicySet,
    new_set: PolicySet,
    old_compiled: CompiledPolicySet,
    new_compiled: CompiledPolicySet,
}

impl Encoding {
    fn new(c: &Comparison<'_>, assumptions: &[Assumption]) -> Result<Encoding, ProveError> {
        let schema = Schema::from_cedarschema_str(&model::proof_schema())
            .map(|(s, _)| s)
            .map_err(|e| ProveError::encoding(format!("proof schema: {e}")))?;
        let env = schema
            .request_envs()
            .next()
            .ok_or_else(|| ProveError::encoding("the proof schema has no request environment"))?;
        let old_policies = rewrite_for_side(c.old.cedar_policies(), Side::Old)?;
        let new_policies = rewrite_for_side(c.new.cedar_policies(), Side::New)?;
        let old_set = side_set(&old_policies, c.old, Side::Old, assumptions)?;
        let new_set = side_set(&new_policies, c.new, Side::New, assumptions)?;
        let compile =
            |set: &PolicySet| CompiledPolicySet::compile(set, &env, &schema).map_err(not_encoded);
        let old_compiled = compile(&old_set)?;
        let new_compiled = compile(&new_set)?;
        Ok(Encoding {
            schema,
            env,
            old_policies,
            new_policies,
            old_set,
            new_set,
            old_compiled,
            new_compiled,
        })
    }

    fn compile(&self, set: &PolicySet) -> Result<CompiledPolicySet, ProveError> {
        CompiledPolicySet::compile(set, &self.env, &self.schema).map_err(not_encoded)
    }

    /// Both sides' sets with extra conditions (a period, preferences), in the order of the
    /// implication `check` asks.
    fn restricted(
        &self,
        check: Check,
        extra: &[Assumption],
    ) -> Result<(CompiledPolicySet, CompiledPolicySet), ProveError> {
        let text: String = extra.iter().map(Assumption::as_forbid).collect();
        let add = |set: &PolicySet| {
            let mut set = set.clone();
            for p in named_policies(&text)? {
                set.add(p)
                    .map_err(|e| ProveError::encoding(format!("restriction: {e}")))?;
            }
            self.compile(&set)
        };
        Ok(ordered(check, add(&self.old_set)?, add(&self.new_set)?))
    }
}

/// One comparison's solver process and encoding.
struct Session<'a> {
    comparison: &'a Comparison<'a>,
    solver: &'a SolverConfig,
    compiler: CedarSymCompiler<cedar_policy_symcc::solver::LocalSolver>,
    encoding: Encoding,
    window: model::Window,
    purposes: &'a [Purpose],
}

impl Session<'_> {
    /// The assumptions must hold for some request, or every implication would hold vacuously.
    async fn assumptions_hold_together(
        &mut self,
        assumptions: &[Assumption],
    ) -> Result<(), ProveError> {
        let mut text = String::from("permit (principal, action, resource);\n");
        for a in assumptions {
            text.push_str(&a.as_forbid());
        }
        let set = PolicySet::from_policies(named_policies(&text)?)
            .map_err(|e| ProveError::encoding(format!("assumptions: {e}")))?;
        let set = self.encoding.compile(&set)?;
        if bounded(self.solver, self.compiler.check_always_denies_opt(&set)).await? {
            return Err(ProveError::encoding(
                "the assumptions contradict each other: no request satisfies them",
            ));
        }
        Ok(())
    }

    /// `a ⇒ b` as `check` asks, restricted by `extra`; a counterexample if there is one.
    async fn counterexample(
        &mut self,
        check: Check,
        extra: &[Assumption],
    ) -> Result<Option<cedar_policy_symcc::Env>, ProveError> {
        let (a, b) = self.encoding.restricted(check, extra)?;
        bounded(
            self.solver,
            self.compiler.check_implies_with_counterexample_opt(&a, &b),
        )
        .await
    }

    /// The side whose exclusions a check relies on must never raise an error: Cedar skips an
    /// erroring policy where the gate excludes.
    async fn never_errors(&mut self, side: Side) -> Result<(), ProveError> {
        let policies = match side {
            Side::Old => &self.encoding.old_policies,
            Side::New => &self.encoding.new_policies,
        };
        for p in policies {
            let compiled = CompiledPolicy::compile(p, &self.encoding.env, &self.encoding.schema)
                .map_err(not_encoded)?;
            if !bounded(self.solver, self.compiler.check_never_errors_opt(&compiled)).await? {
                return Err(ProveError::Unsupported {
                    policy: p.id().to_string(),
                    message: "it can raise an evaluation error (Cedar skips an erroring policy, the gate excludes), so no proof about it would be sound".to_owned(),
                });
            }
        }
        Ok(())
    }

    async fn check(&mut self, check: Check) -> Result<CheckResult, ProveError> {
        let started = Instant::now();
        let c = self.comparison;
        let (a, b) = ordered(
            check,
            &self.encoding.old_compiled,
            &self.encoding.new_compiled,
        );
        // `b` of `a ⇒ b`: the side whose exclusions a proof relies on.
        let (_, b_side) = ordered(check, Side::Old, Side::New);
        let found = bounded(
            self.solver,
            self.compiler.check_implies_with_counterexample_opt(a, b),
        )
        .await?;
        let Some(first_found) = found else {
            // A proof also needs `b` error-free; a counterexample stands on its own (the
            // replay shows what the engine decides).
            self.never_errors(b_side).await?;
            let elapsed_ms = millis(started);
            return Ok(CheckResult {
                check,
                result: Outcome::Proved,
                elapsed_ms,
                counterexample: None,
                periods: Vec::new(),
            });
        };
        let elapsed_ms = millis(started);
        let (periods, cases) = self.periods(check).await?;
        let env = self.example(check, cases).await?.unwrap_or(first_found);
        let raw = RawFacts::read(&env)?;
        let cx = Counterexample::replay(&raw, check, c.old, c.new, self.purposes)?;
        Ok(CheckResult {
            check,
            result: Outcome::Counterexample,
            elapsed_ms,
            counterexample: Some(Box::new(cx)),
            periods,
        })
    }

    /// *When* a check fails: cut-offs fall into periods in which both sides' regimes are
    /// constant (nothing else depends on the day), so each period is asked whether it holds a
    /// case. Returns the periods and, per period with a case, `(from, until, case)`.
    async fn periods(
        &mut self,
        check: Check,
    ) -> Result<(Vec<Period>, Vec<(i64, i64, cedar_policy_symcc::Env)>), ProveError> {
        let c = self.comparison;
        let mut periods = Vec::new();
        let mut cases = Vec::new();
        for (from, until, old_regime, new_regime) in
            model::joint_periods(c.old, c.new, &self.window)
        {
            let case = self
                .counterexample(check, &[model::period(from, until)])
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
        Ok((periods, cases))
    }

    /// The example shown comes from the period that matters now: the one holding today, else
    /// the next one, else the latest; preferably a plausible member (an age up to 80, recent
    /// content and notice, the main purpose, a listed kind) as of today or the period's nearest
    /// day; that period's first case if none is plausible.
    async fn example(
        &mut self,
        check: Check,
        mut cases: Vec<(i64, i64, cedar_policy_symcc::Env)>,
    ) -> Result<Option<cedar_policy_symcc::Env>, ProveError> {
        let today = model::today();
        let chosen = cases
            .iter()
            .position(|(from, until, _)| (*from..*until).contains(&today))
            .or_else(|| cases.iter().position(|(from, _, _)| *from > today))
            .or(cases.len().checked_sub(1));
        let Some((from, until, case)) = chosen.map(|i| cases.swap_remove(i)) else {
            return Ok(None);
        };
        let day = today.clamp(from, until - 1);
        let names: Vec<&str> = self.purposes.iter().map(Purpose::as_str).collect();
        let c = self.comparison;
        let mut extra = model::preferences(&names, &[c.old, c.new]);
        extra.push(model::period(day, day + 1));
        Ok(Some(
            self.counterexample(check, &extra).await?.unwrap_or(case),
        ))
    }
}

/// One side's policy set: its rewritten policies, its no-regime exclusion and every assumption.
fn side_set(
    rewritten: &[cedar_policy::Policy],
    policy: &Policy,
    side: Side,
    assumptions: &[Assumption],
) -> Result<PolicySet, ProveError> {
    let mut set = PolicySet::new();
    for p in rewritten.iter().cloned() {
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

/// The symbolic compiler refused a policy set (with the validator's findings).
fn not_encoded(e: cedar_policy_symcc::err::Error) -> ProveError {
    ProveError::encoding(format!("{e}: {}", related(&e)))
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
