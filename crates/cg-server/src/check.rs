//! "May I use this?": one member's content of a kind, for a purpose, decided for training *now*
//! — from the member's facts as the ledger holds them ([`cg_ledger::Store::member_facts`], the
//! same model and fold a build uses) and the compiled decision engine ([`cg_policy::Engine`])
//! with the policy in force. The cut-off is always the request time: a caller cannot ask a
//! service check about a past instant (a member who has since erased or withdrawn would read
//! as allowed). `created_at` says when the content was made (default: now). The historical
//! question "what was decided as of T?" is the auditors' ([`decide_as_of`],
//! `POST /v1/audit/decision`).
//!
//! Fail closed: an unknown member is `member_unknown`, a member without a known country
//! `jurisdiction_unknown`, a Cedar error `policy_error`; a purpose outside the catalogue is
//! refused.

use std::sync::{Arc, Mutex};

use cg_ledger::Store;
use cg_model::{Decision, Jurisdiction, MemberFacts, MemberId, Purpose, Timestamp};
use cg_policy::{DecisionMemo, Engine, Policy};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The policy in force, who put it there, and its decision memos (one per purpose, shared by
/// every check whatever its instant).
pub struct ActivePolicy {
    /// The policy.
    pub policy: Arc<Policy>,
    /// When it was put in force.
    pub activated_at: Timestamp,
    /// Who put it in force (a token's label or id; `None`: the server's start-up policy).
    pub activated_by: Option<String>,
    memos: Mutex<FxHashMap<Purpose, Arc<DecisionMemo>>>,
}

impl std::fmt::Debug for ActivePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivePolicy")
            .field("policy", &self.policy.name())
            .finish_non_exhaustive()
    }
}

impl ActivePolicy {
    /// Puts a policy in force now.
    pub fn new(policy: Policy) -> ActivePolicy {
        ActivePolicy::restored(policy, now(), None)
    }

    /// A policy put in force at `activated_at` by `activated_by`.
    pub fn restored(
        policy: Policy,
        activated_at: Timestamp,
        activated_by: Option<String>,
    ) -> ActivePolicy {
        ActivePolicy::shared(Arc::new(policy), activated_at, activated_by)
    }

    /// [`ActivePolicy::restored`] for a policy already shared (one a proof compared).
    pub fn shared(
        policy: Arc<Policy>,
        activated_at: Timestamp,
        activated_by: Option<String>,
    ) -> ActivePolicy {
        ActivePolicy {
            policy,
            activated_at,
            activated_by,
            memos: Mutex::new(FxHashMap::default()),
        }
    }

    /// The engine for `purpose` at `as_of`, sharing the purpose's memo.
    fn engine(&self, purpose: &Purpose, as_of: Timestamp) -> Engine {
        let memo = match self.memos.lock() {
            Ok(mut memos) => memos
                .entry(purpose.clone())
                .or_insert_with(|| DecisionMemo::new(self.policy.clone(), purpose.clone()))
                .clone(),
            // A poisoned lock only loses the memo: decide with a fresh one.
            Err(_) => DecisionMemo::new(self.policy.clone(), purpose.clone()),
        };
        memo.at(as_of)
    }
}

/// A check request.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The member.
    pub member_id: i64,
    /// The purpose (`genai_training`, ...).
    pub purpose: String,
    /// Not accepted: a check decides for now. Kept so that a caller sending it is told why,
    /// and where to ask about the past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The content kind (default `post`).
    #[serde(default)]
    pub kind: Option<String>,
    /// When the content was created (default: now).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// An auditor's question: what would have been decided as of a past instant.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditDecisionRequest {
    /// The member.
    pub member_id: i64,
    /// The purpose.
    pub purpose: String,
    /// The cut-off to decide as of (RFC 3339 or a date).
    pub as_of: String,
    /// The content kind (default `post`).
    #[serde(default)]
    pub kind: Option<String>,
    /// When the content was created (default: `as_of`).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A check's answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckResult {
    /// The coarse reason: `permitted`, `permitted_with_redaction` or `not_permitted` — all a
    /// service needs, and nothing about the member (not their region, age, erasure, or whether
    /// the id exists).
    pub reason: String,
    /// The member.
    pub member_id: i64,
    /// The purpose.
    pub purpose: String,
    /// The instant decided for (the cut-off).
    pub at: String,
    /// `include`, `include_redacted` or `exclude`.
    pub decision: String,
    /// `true` for include and include_redacted.
    pub allowed: bool,
    /// Reason codes, headline first (for services: the coarse reason only).
    pub reasons: Vec<String>,
    /// The regime in force at the instant (null for services).
    pub regime: Option<String>,
    /// The member's normalised jurisdiction at the instant (null for services).
    pub jurisdiction: Option<String>,
    /// The policy's name.
    pub policy: String,
    /// The policy's content hash.
    pub policy_hash: String,
}

impl CheckResult {
    /// What a service is told: the decision and the coarse reason. Reason codes such as
    /// `minor`, `erased` or `member_unknown`, the jurisdiction and the regime stay with admins
    /// and auditors.
    pub fn for_service(self) -> CheckResult {
        CheckResult {
            reasons: vec![self.reason.clone()],
            regime: None,
            jurisdiction: None,
            ..self
        }
    }
}

/// The coarse reason of a decision.
fn coarse(d: Decision) -> &'static str {
    match d {
        Decision::Include => "permitted",
        Decision::IncludeRedacted => "permitted_with_redaction",
        Decision::Exclude => "not_permitted",
    }
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

/// Parses an optional time field.
pub fn time_field(field: &str, v: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    v.map(|s| Timestamp::parse(s).map_err(|e| ApiError::bad(field, e.to_string())))
        .transpose()
}

/// Decides one service check, for training now.
pub fn decide(
    store: &mut dyn Store,
    active: &ActivePolicy,
    req: &CheckRequest,
) -> Result<CheckResult, ApiError> {
    if req.at.is_some() {
        return Err(no_instant());
    }
    let created_at = time_field("created_at", req.created_at.as_deref())?;
    decide_for(
        store,
        active,
        req.member_id,
        &req.purpose,
        req.kind.as_deref(),
        created_at,
        now(),
    )
}

/// A service check asked about an instant: refused (see the module docs).
fn no_instant() -> ApiError {
    ApiError::bad(
        "at",
        "a check decides for training now and takes no instant; give `created_at` for when the content was made (auditors ask about the past with POST /v1/audit/decision)",
    )
}

/// Decides as of a past (or any) instant: the auditors' question.
pub fn decide_as_of(
    store: &mut dyn Store,
    active: &ActivePolicy,
    req: &AuditDecisionRequest,
) -> Result<CheckResult, ApiError> {
    let as_of = Timestamp::parse(&req.as_of).map_err(|e| ApiError::bad("as_of", e.to_string()))?;
    let created_at = time_field("created_at", req.created_at.as_deref())?;
    decide_for(
        store,
        active,
        req.member_id,
        &req.purpose,
        req.kind.as_deref(),
        created_at,
        as_of,
    )
}

/// Many service checks, for training now (one instant for all): each item's answer or its
/// error, in order. The members' facts are read together, per purpose
/// ([`Store::members_facts`]: on PostgreSQL five queries for the lot instead of five per
/// item), and each item is decided like [`decide`] decides it. A storage error fails the whole
/// batch.
pub fn decide_batch(
    store: &mut dyn Store,
    active: &ActivePolicy,
    items: &[CheckRequest],
) -> Result<Vec<Result<CheckResult, ApiError>>, ApiError> {
    let as_of = now();
    let prepared: Vec<Result<(Purpose, Option<Timestamp>), ApiError>> = items
        .iter()
        .map(|req| {
            if req.at.is_some() {
                return Err(no_instant());
            }
            let created_at = time_field("created_at", req.created_at.as_deref())?;
            Ok((catalogue_purpose(active, &req.purpose)?, created_at))
        })
        .collect();
    let mut wanted: FxHashMap<Purpose, Vec<MemberId>> = FxHashMap::default();
    for (req, p) in items.iter().zip(&prepared) {
        if let Ok((purpose, _)) = p {
            wanted
                .entry(purpose.clone())
                .or_default()
                .push(MemberId(req.member_id));
        }
    }
    let mut facts: FxHashMap<(Purpose, i64), Option<MemberFacts>> = FxHashMap::default();
    for (purpose, members) in wanted {
        let read = store.members_facts(&members, &purpose, as_of)?;
        if read.len() != members.len() {
            return Err(ApiError::internal(format!(
                "the ledger answered {} of {} members",
                read.len(),
                members.len()
            )));
        }
        for (m, f) in members.into_iter().zip(read) {
            facts.insert((purpose.clone(), m.0), f);
        }
    }
    Ok(items
        .iter()
        .zip(prepared)
        .map(|(req, p)| {
            let (purpose, created_at) = p?;
            // A member named twice is answered twice from the same facts.
            let member_facts = facts
                .get(&(purpose.clone(), req.member_id))
                .and_then(Option::as_ref);
            Ok(result_of(
                active,
                req.member_id,
                &purpose,
                req.kind.as_deref(),
                created_at,
                as_of,
                member_facts,
            ))
        })
        .collect())
}

/// A purpose of the policy's catalogue: a misspelt purpose must not be decided (it would fall
/// to a regime's default, e.g. legitimate interest, and answer "allowed").
fn catalogue_purpose(active: &ActivePolicy, purpose: &str) -> Result<Purpose, ApiError> {
    active
        .policy
        .config()
        .purpose(purpose)
        .map_err(|e| ApiError::bad("purpose", e.to_string()))
}

/// The one decision path of the service: the ledger's facts as of `as_of`, the engine.
fn decide_for(
    store: &mut dyn Store,
    active: &ActivePolicy,
    member_id: i64,
    purpose: &str,
    kind: Option<&str>,
    created_at: Option<Timestamp>,
    as_of: Timestamp,
) -> Result<CheckResult, ApiError> {
    let purpose = catalogue_purpose(active, purpose)?;
    let facts = store.member_facts(MemberId(member_id), &purpose, as_of)?;
    Ok(result_of(
        active,
        member_id,
        &purpose,
        kind,
        created_at,
        as_of,
        facts.as_ref(),
    ))
}

/// The engine's answer for a member's facts as of `as_of` (`None`: an unknown member).
fn result_of(
    active: &ActivePolicy,
    member_id: i64,
    purpose: &Purpose,
    kind: Option<&str>,
    created_at: Option<Timestamp>,
    as_of: Timestamp,
    facts: Option<&MemberFacts>,
) -> CheckResult {
    let created_at = created_at.unwrap_or(as_of);
    let kind = kind.unwrap_or("post");
    let engine = active.engine(purpose, as_of);
    let compiled = facts.map(|f| engine.compile(f));
    let verdict = engine
        .decider()
        .verdict(compiled.as_ref(), engine.kind(kind), created_at);
    let jurisdiction = facts
        .and_then(|f| Jurisdiction::normalize(f.country_at(as_of)).ok())
        .map(|j| j.to_string());
    CheckResult {
        reason: coarse(verdict.decision()).to_owned(),
        member_id,
        purpose: purpose.to_string(),
        at: as_of.to_string(),
        decision: verdict.decision().as_str().to_owned(),
        allowed: verdict.decision() != Decision::Exclude,
        reasons: verdict
            .reasons()
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        regime: active.policy.regime_id_at(as_of).map(str::to_owned),
        jurisdiction,
        policy: active.policy.name().to_owned(),
        policy_hash: active.policy.hash().to_owned(),
    }
}
