//! "May I use this?": one member's content of a kind, at an instant, for a purpose — decided
//! from the ledger's facts and consent state with the policy in force. The same facts the build
//! uses (residence at creation and at the instant, birth date, consent, GPC, erasure and closure,
//! notice), the same Cedar policies; decisions per attribute tuple are memoised, so a check
//! costs two ledger reads and a hash lookup once warm. Fail closed: an unknown member is
//! `member_unknown`, a member without a known country `jurisdiction_unknown`, a Cedar error
//! `policy_error`.

use std::sync::Mutex;

use cg_ledger::{MemberFacts as LedgerFacts, Store, fold_stored};
use cg_model::consent::ConsentSource;
use cg_model::{Decision, Jurisdiction, MemberId, Purpose, Timestamp, Verdict};
use cg_policy::{Decided, EvalContext, ItemFacts, MemberFacts, Policy, most_protective};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The policy in force and its decision memo.
pub struct ActivePolicy {
    /// The policy.
    pub policy: Policy,
    /// When it was put in force.
    pub activated_at: Timestamp,
    memo: Mutex<FxHashMap<(u64, Purpose), Decided>>,
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
        ActivePolicy {
            policy,
            activated_at: Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()),
            memo: Mutex::new(FxHashMap::default()),
        }
    }

    fn decide(&self, item: &ItemFacts<'_>, ctx: &EvalContext) -> Verdict {
        match self.policy.tuples(item, ctx) {
            Err(v) => v,
            Ok(tuples) => {
                let results: Vec<Decided> = tuples
                    .iter()
                    .map(|t| {
                        let key = (t.key(), ctx.purpose.clone());
                        if let Some(d) = self.memo.lock().ok().and_then(|m| m.get(&key).cloned()) {
                            return d;
                        }
                        let d = self.policy.evaluate_tuple(t, &ctx.purpose);
                        if let Ok(mut m) = self.memo.lock() {
                            m.insert(key, d.clone());
                        }
                        d
                    })
                    .collect();
                most_protective(results).verdict
            }
        }
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
    /// The instant (RFC 3339 or a date; default: now).
    #[serde(default)]
    pub at: Option<String>,
    /// The content kind (default `post`).
    #[serde(default)]
    pub kind: Option<String>,
    /// When the content was created (default: `at`).
    #[serde(default)]
    pub created_at: Option<String>,
}

/// A check's answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckResult {
    /// The member.
    pub member_id: i64,
    /// The purpose.
    pub purpose: String,
    /// The instant decided for.
    pub at: String,
    /// `include`, `include_redacted` or `exclude`.
    pub decision: String,
    /// `true` for include and include_redacted.
    pub allowed: bool,
    /// Reason codes, headline first.
    pub reasons: Vec<String>,
    /// The regime in force at the instant.
    pub regime: Option<String>,
    /// The member's normalised jurisdiction at the instant.
    pub jurisdiction: Option<String>,
    /// The policy's name.
    pub policy: String,
    /// The policy's content hash.
    pub policy_hash: String,
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

/// Parses an optional time field.
pub fn time_field(field: &str, v: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    v.map(|s| Timestamp::parse(s).map_err(|e| ApiError::bad(field, e.to_string())))
        .transpose()
}

/// The raw country of a member at `t`: the latest residence at or before `t`, else the
/// members row's country.
fn country_at(f: &LedgerFacts, t: Timestamp) -> Option<&str> {
    f.residences
        .iter()
        .filter(|r| r.valid_from <= t)
        .max_by_key(|r| r.valid_from)
        .map(|r| r.country.as_deref())
        .unwrap_or_else(|| f.record.as_ref().and_then(|r| r.country.as_deref()))
}

/// Decides one request against the ledger.
pub fn decide(
    store: &mut dyn Store,
    active: &ActivePolicy,
    req: &CheckRequest,
) -> Result<CheckResult, ApiError> {
    // Only catalogue purposes: a misspelt purpose must not be decided (it would fall to a
    // regime's default, e.g. legitimate interest, and answer "allowed").
    let purpose =
        Purpose::known(&req.purpose).map_err(|e| ApiError::bad("purpose", e.to_string()))?;
    let at = time_field("at", req.at.as_deref())?.unwrap_or_else(now);
    let created_at = time_field("created_at", req.created_at.as_deref())?.unwrap_or(at);
    let kind = req.kind.as_deref().unwrap_or("post");
    let facts = store.member(MemberId(req.member_id))?;
    let history = store.history(MemberId(req.member_id))?;
    let (this, other): (Vec<_>, Vec<_>) = history
        .into_iter()
        .partition(|e| e.event.purpose == purpose);
    let (consent, _) = fold_stored(&this, at);
    let other_purpose_grant = consent.explicit.is_none()
        && other
            .iter()
            .any(|e| e.event.ts <= at && e.event.granted && e.event.source != ConsentSource::Gpc);
    let member = facts
        .as_ref()
        .filter(|f| f.record.is_some())
        .map(|f| MemberFacts {
            country_at_creation: country_at(f, created_at),
            country_at_cutoff: country_at(f, at),
            birth_date: f.record.as_ref().and_then(|r| r.birth_date),
            consent: consent.clone(),
            other_purpose_grant,
            erased_at: f
                .record
                .as_ref()
                .and_then(|r| r.closed_at)
                .into_iter()
                .chain(f.erasures.iter().map(|e| e.ts))
                .min(),
            notice_delivered_at: f.notices.iter().map(|n| n.delivered_at).min(),
        });
    let jurisdiction = member
        .as_ref()
        .and_then(|m| Jurisdiction::normalize(m.country_at_cutoff).ok())
        .map(|j| j.to_string());
    let item = ItemFacts {
        kind,
        created_at,
        member,
    };
    let ctx = EvalContext {
        purpose: purpose.clone(),
        as_of: at,
    };
    let verdict = active.decide(&item, &ctx);
    Ok(CheckResult {
        member_id: req.member_id,
        purpose: purpose.to_string(),
        at: at.to_string(),
        decision: verdict.decision().as_str().to_owned(),
        allowed: verdict.decision() != Decision::Exclude,
        reasons: verdict
            .reasons()
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        regime: active.policy.regime_id_at(at).map(str::to_owned),
        jurisdiction,
        policy: active.policy.name().to_owned(),
        policy_hash: active.policy.hash().to_owned(),
    })
}
