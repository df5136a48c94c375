//! A counterexample read back from the solver's model as raw facts, turned into a concrete
//! member, item and cut-off (an [`ExplainRequest`]) and replayed through the normal decision
//! engine under both policies, so what the proof claims is shown by the engine itself.

use cedar_policy::{EvalResult, Request};
use cedar_policy_symcc::Env;
use cg_model::instant::days_to_date;
use cg_model::{Decision, Purpose, Timestamp};
use cg_policy::{ConsentInput, EventInput, ExplainRequest, Explanation, Policy};
use serde::Serialize;
use time::{Date, Duration as Days};

use crate::error::ProveError;
use crate::prove::Check;

/// The raw facts of a counterexample, as the proof schema names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RawFacts {
    /// Normalised country (`""` when unknown).
    pub country: String,
    /// Whether the jurisdiction is known.
    pub jurisdiction_known: bool,
    /// California (country `US`).
    pub us_ca: bool,
    /// Whether the birth date is known.
    pub age_known: bool,
    /// Exact age when the item was created.
    pub age_at_creation: i64,
    /// Exact age at the cut-off.
    pub age_now: i64,
    /// `none`, `granted`, `other_purpose` or `denied`.
    pub consent: String,
    /// The notice version of a grant.
    pub grant_notice: String,
    /// A GPC signal after the last explicit choice.
    pub gpc_signal: bool,
    /// Erased or closed by the cut-off.
    pub erased: bool,
    /// Whether a notice was delivered.
    pub notice_delivered: bool,
    /// Days between delivery and the cut-off.
    pub notice_age_days: i64,
    /// The item's kind.
    pub kind: String,
    /// The purpose.
    pub purpose: String,
    /// The cut-off, as days since 1970-01-01.
    pub day: i64,
}

impl RawFacts {
    /// Reads the facts from a solver model.
    pub(crate) fn read(env: &Env) -> Result<RawFacts, ProveError> {
        let request: &Request = &env.request;
        let member = request
            .principal()
            .and_then(|uid| env.entities.get(uid))
            .ok_or_else(|| ProveError::encoding("the counterexample has no member"))?;
        let content = request
            .resource()
            .and_then(|uid| env.entities.get(uid))
            .ok_or_else(|| ProveError::encoding("the counterexample has no content"))?;
        let context = request
            .context()
            .ok_or_else(|| ProveError::encoding("the counterexample has no context"))?;
        let m = |name: &str| member.attr(name).and_then(Result::ok);
        let c = |name: &str| content.attr(name).and_then(Result::ok);
        let x = |name: &str| context.get(name);
        Ok(RawFacts {
            country: string(m("country"), "country")?,
            jurisdiction_known: boolean(m("jurisdiction_known"), "jurisdiction_known")?,
            us_ca: boolean(m("us_ca"), "us_ca")?,
            age_known: boolean(m("age_known"), "age_known")?,
            age_at_creation: long(m("age_at_creation"), "age_at_creation")?,
            age_now: long(m("age_now"), "age_now")?,
            consent: string(m("consent"), "consent")?,
            grant_notice: string(m("grant_notice"), "grant_notice")?,
            gpc_signal: boolean(m("gpc_signal"), "gpc_signal")?,
            erased: boolean(m("erased"), "erased")?,
            notice_delivered: boolean(m("notice_delivered"), "notice_delivered")?,
            notice_age_days: long(m("notice_age_days"), "notice_age_days")?,
            kind: string(c("kind"), "kind")?,
            purpose: string(x("purpose"), "purpose")?,
            day: long(x("day"), "day")?,
        })
    }
}

fn missing(name: &str) -> ProveError {
    ProveError::encoding(format!(
        "the counterexample lacks `{name}` or has the wrong type"
    ))
}

fn string(v: Option<EvalResult>, name: &str) -> Result<String, ProveError> {
    match v {
        Some(EvalResult::String(s)) => Ok(s),
        _ => Err(missing(name)),
    }
}

fn boolean(v: Option<EvalResult>, name: &str) -> Result<bool, ProveError> {
    match v {
        Some(EvalResult::Bool(b)) => Ok(b),
        _ => Err(missing(name)),
    }
}

fn long(v: Option<EvalResult>, name: &str) -> Result<i64, ProveError> {
    match v {
        Some(EvalResult::Long(n)) => Ok(n),
        _ => Err(missing(name)),
    }
}

/// One consent event of the example member.
#[derive(Clone, Debug, Serialize)]
pub struct ExampleEvent {
    /// `granted`, `denied` or `gpc`.
    pub consent: &'static str,
    /// When.
    pub at: Timestamp,
    /// For which purpose.
    pub purpose: String,
    /// Under which notice version (grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_version: Option<String>,
}

/// The concrete member of a counterexample.
#[derive(Clone, Debug, Serialize)]
pub struct ExampleMember {
    /// Residence at creation and at the cut-off (`US-CA` for California); `None`: unknown.
    pub country: Option<String>,
    /// Birth date; `None`: unknown.
    pub birth_date: Option<Date>,
    /// Consent events, oldest first.
    pub events: Vec<ExampleEvent>,
    /// Erasure request or account closure.
    pub erased_at: Option<Timestamp>,
    /// Notice delivery.
    pub notice_delivered_at: Option<Timestamp>,
}

/// The concrete item of a counterexample.
#[derive(Clone, Debug, Serialize)]
pub struct ExampleItem {
    /// Its kind.
    pub kind: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// How each policy decides the example, through the normal engine.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    /// Under the policy in force.
    pub old: Explanation,
    /// Under the proposed policy.
    pub new: Explanation,
    /// Whether the engine agrees with the solver (for "nothing new admitted": new includes,
    /// old excludes).
    pub confirmed: bool,
}

/// A case that breaks the checked implication.
#[derive(Clone, Debug, Serialize)]
pub struct Counterexample {
    /// The cut-off (evaluation time).
    pub as_of: Timestamp,
    /// The purpose.
    pub purpose: String,
    /// The member.
    pub member: ExampleMember,
    /// The item.
    pub item: ExampleItem,
    /// The solver's raw facts.
    pub facts: RawFacts,
    /// The decisions.
    pub replay: Replay,
}

impl Counterexample {
    /// Makes the concrete case and replays it under both policies.
    pub(crate) fn replay(
        raw: &RawFacts,
        check: Check,
        old: &Policy,
        new: &Policy,
        purposes: &[Purpose],
    ) -> Result<Counterexample, ProveError> {
        let request = explain_request(raw, purposes)?;
        let old_says = request.explain(old);
        let new_says = request.explain(new);
        let confirmed = match check {
            Check::NothingNewAdmitted => {
                new_says.decision == Decision::Include && old_says.decision == Decision::Exclude
            }
            Check::NothingNewExcluded => {
                old_says.decision == Decision::Include && new_says.decision == Decision::Exclude
            }
        };
        let member = ExampleMember {
            country: request.country.clone(),
            birth_date: request.birth_date,
            events: request
                .events
                .iter()
                .map(|e| ExampleEvent {
                    consent: match e.consent {
                        ConsentInput::Granted => "granted",
                        ConsentInput::Denied => "denied",
                        ConsentInput::Gpc => "gpc",
                        ConsentInput::None => "none",
                    },
                    at: e.at.unwrap_or(request.as_of),
                    purpose: e
                        .purpose
                        .as_ref()
                        .unwrap_or(&request.purpose)
                        .as_str()
                        .to_owned(),
                    notice_version: e.notice.clone(),
                })
                .collect(),
            erased_at: request.erased_at,
            notice_delivered_at: request.notice_delivered_at,
        };
        Ok(Counterexample {
            as_of: request.as_of,
            purpose: request.purpose.as_str().to_owned(),
            member,
            item: ExampleItem {
                kind: request.kind.clone(),
                created_at: request.created_at.unwrap_or(request.as_of),
            },
            facts: raw.clone(),
            replay: Replay {
                old: old_says,
                new: new_says,
                confirmed,
            },
        })
    }
}

/// The concrete question the raw facts describe: a member living in one place, born so that
/// the exact ages hold, with events that fold to the raw consent state.
pub(crate) fn explain_request(
    raw: &RawFacts,
    purposes: &[Purpose],
) -> Result<ExplainRequest, ProveError> {
    let bad = |what: &str| ProveError::encoding(format!("counterexample: {what}"));
    let day = i32::try_from(raw.day).map_err(|_| bad("day out of range"))?;
    let cutoff = days_to_date(day).ok_or_else(|| bad("day out of range"))?;
    let as_of = Timestamp::at_midnight(cutoff);
    let purpose = Purpose::new(&raw.purpose).map_err(|e| bad(&e.to_string()))?;
    let mut request = ExplainRequest::new(as_of);
    request.purpose = purpose.clone();
    request.kind = raw.kind.clone();
    request.country = raw.jurisdiction_known.then(|| {
        if raw.us_ca {
            "US-CA".to_owned()
        } else {
            raw.country.clone()
        }
    });
    if raw.age_known {
        let (birth, created) = dates_for_ages(cutoff, raw.age_at_creation, raw.age_now)
            .ok_or_else(|| bad("ages out of range"))?;
        request.birth_date = Some(birth);
        request.created_at = Some(Timestamp::at_midnight(created));
    }
    let explicit_at = as_of.plus_days(-2);
    match raw.consent.as_str() {
        "granted" => {
            let mut e = EventInput::new(ConsentInput::Granted);
            e.at = Some(explicit_at);
            e.notice = Some(raw.grant_notice.clone());
            request.events.push(e);
        }
        "denied" => {
            let mut e = EventInput::new(ConsentInput::Denied);
            e.at = Some(explicit_at);
            request.events.push(e);
        }
        "other_purpose" => {
            let other = purposes
                .iter()
                .cloned()
                .chain(
                    Purpose::DEFAULT_CATALOGUE
                        .iter()
                        .filter_map(|n| Purpose::new(n).ok()),
                )
                .find(|p| *p != purpose)
                .ok_or_else(|| bad("no other purpose to grant"))?;
            let mut e = EventInput::new(ConsentInput::Granted);
            e.at = Some(explicit_at);
            e.purpose = Some(other);
            request.events.push(e);
        }
        _ => {}
    }
    if raw.gpc_signal {
        let mut e = EventInput::new(ConsentInput::Gpc);
        e.at = Some(as_of.plus_days(-1));
        request.events.push(e);
    }
    if raw.erased {
        request.erased_at = Some(as_of);
    }
    if raw.notice_delivered {
        request.notice_delivered_at = Some(as_of.plus_days(-raw.notice_age_days));
    }
    Ok(request)
}

/// A birth date and a creation date (on or before `cutoff`) giving exactly `age_at_creation`
/// and `age_now` (`-1`: before the birth date).
fn dates_for_ages(cutoff: Date, age_at_creation: i64, age_now: i64) -> Option<(Date, Date)> {
    let year_of = |from: Date, years: i64| -> Option<i32> {
        i32::try_from(i64::from(from.year()).checked_add(years)?).ok()
    };
    let birth = if age_now >= 0 {
        // The same day `age_now` years earlier (28 Feb for a 29 Feb cut-off in a common year:
        // the birthday has then passed on the cut-off).
        let year = year_of(cutoff, -age_now)?;
        Date::from_calendar_date(year, cutoff.month(), cutoff.day())
            .or_else(|_| Date::from_calendar_date(year, cutoff.month(), 28))
            .ok()?
    } else {
        cutoff.checked_add(Days::days(1))?
    };
    let created = if age_at_creation == age_now {
        cutoff
    } else if age_at_creation >= 0 {
        // The birthday `age_at_creation` years on, as the age rule counts it (29 Feb → 1 Mar
        // in common years).
        let year = year_of(birth, age_at_creation)?;
        Date::from_calendar_date(year, birth.month(), birth.day())
            .or_else(|_| Date::from_calendar_date(year, time::Month::March, 1))
            .ok()?
    } else {
        birth.checked_sub(Days::days(1))?
    };
    Some((birth, created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cg_model::age::age_at;
    use time::macros::date;

    #[test]
    fn example_dates_give_the_exact_ages() {
        for cutoff in [
            date!(2025 - 11 - 03),
            date!(2024 - 02 - 29),
            date!(2024 - 12 - 31),
        ] {
            for now in -1..=40i64 {
                for at_creation in -1..=now {
                    let (birth, created) = dates_for_ages(cutoff, at_creation, now).unwrap();
                    assert!(created <= cutoff);
                    let age = |d: Date| i64::from(age_at(birth, Timestamp::at_midnight(d)));
                    assert_eq!(age(cutoff), now, "{cutoff} {now} {at_creation}");
                    assert_eq!(
                        age(created).max(-1),
                        at_creation,
                        "{cutoff} {now} {at_creation}"
                    );
                }
            }
        }
    }
}
