//! [`ExplainRequest`]: one member and one item described the way a person types them
//! (`policy explain` flags, scenario files), turned into [`ItemFacts`] and explained.

use cg_model::consent::{ConsentEvent, ConsentSource};
use cg_model::member::ConsentFold;
use cg_model::{ConsentState, MemberId, Purpose, Timestamp};
use time::Date;

use crate::engine::{EvalContext, Explanation, Policy};
use crate::facts::{ItemFacts, MemberView};

/// What the member chose, as a person describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentInput {
    /// No event.
    None,
    /// A grant.
    Granted,
    /// A withdrawal, opt-out or objection.
    Denied,
    /// A GPC opt-out signal from the member's browser.
    Gpc,
}

impl std::str::FromStr for ConsentInput {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(ConsentInput::None),
            "granted" => Ok(ConsentInput::Granted),
            "denied" => Ok(ConsentInput::Denied),
            "gpc" => Ok(ConsentInput::Gpc),
            other => Err(format!(
                "`{other}` is not a consent state (granted, denied, none, gpc)"
            )),
        }
    }
}

/// One consent event as a person describes it.
#[derive(Clone, Debug)]
pub struct EventInput {
    /// What was chosen.
    pub consent: ConsentInput,
    /// When (default: the cut-off).
    pub at: Option<Timestamp>,
    /// For which purpose (default: the request's purpose).
    pub purpose: Option<Purpose>,
    /// Under which notice version.
    pub notice: Option<String>,
    /// From which source (default `settings`; `gpc` for [`ConsentInput::Gpc`]).
    pub source: Option<String>,
}

impl EventInput {
    /// An event with defaults.
    pub fn new(consent: ConsentInput) -> EventInput {
        EventInput {
            consent,
            at: None,
            purpose: None,
            notice: None,
            source: None,
        }
    }
}

/// A single-item question: "may this member's item be used?".
#[derive(Clone, Debug)]
pub struct ExplainRequest {
    /// The evaluation time (the cut-off).
    pub as_of: Timestamp,
    /// The purpose.
    pub purpose: Purpose,
    /// Whether the author is a known member (`false` → `member_unknown`).
    pub member_known: bool,
    /// Current residence (raw code): the residence at the cut-off.
    pub country: Option<String>,
    /// Earlier residences `(raw code, valid from)`: the residence at creation is the latest
    /// entry at or before the creation time, else the current one.
    pub residences: Vec<(String, Timestamp)>,
    /// Birth date (`None` = unknown).
    pub birth_date: Option<Date>,
    /// Content kind.
    pub kind: String,
    /// Creation time (default: the cut-off).
    pub created_at: Option<Timestamp>,
    /// The member's consent events (any order).
    pub events: Vec<EventInput>,
    /// Erasure request or account closure.
    pub erased_at: Option<Timestamp>,
    /// Notice delivery.
    pub notice_delivered_at: Option<Timestamp>,
}

impl ExplainRequest {
    /// A request with defaults: known member, no country, unknown birth date, a `post` created
    /// at the cut-off, no consent event.
    pub fn new(as_of: Timestamp) -> ExplainRequest {
        ExplainRequest {
            as_of,
            purpose: Purpose::genai_training(),
            member_known: true,
            country: None,
            residences: Vec::new(),
            birth_date: None,
            kind: "post".to_owned(),
            created_at: None,
            events: Vec::new(),
            erased_at: None,
            notice_delivered_at: None,
        }
    }

    fn consent_state(&self) -> (ConsentState, bool) {
        let mut fold = ConsentFold::new(&self.purpose, self.as_of);
        for e in self
            .events
            .iter()
            .filter(|e| e.consent != ConsentInput::None)
        {
            fold.push(ConsentEvent {
                event_id: None,
                member_id: MemberId(0),
                purpose: e.purpose.clone().unwrap_or_else(|| self.purpose.clone()),
                granted: e.consent == ConsentInput::Granted,
                ts: e.at.unwrap_or(self.as_of),
                source: match (&e.source, e.consent) {
                    (Some(s), _) => ConsentSource::from(s.as_str()),
                    (None, ConsentInput::Gpc) => ConsentSource::Gpc,
                    (None, _) => ConsentSource::Settings,
                },
                notice_version: e.notice.clone(),
            });
        }
        fold.finish()
    }

    /// Explains the item under `policy`.
    pub fn explain(&self, policy: &Policy) -> Explanation {
        let created_at = self.created_at.unwrap_or(self.as_of);
        let at_creation = self
            .residences
            .iter()
            .filter(|(_, from)| *from <= created_at)
            .max_by_key(|(_, from)| *from)
            .map(|(c, _)| c.as_str())
            .or(self.country.as_deref());
        let (consent, other_purpose_grant) = self.consent_state();
        let member = self.member_known.then_some(MemberView {
            country_at_creation: at_creation,
            country_at_cutoff: self.country.as_deref(),
            birth_date: self.birth_date,
            consent,
            other_purpose_grant,
            erased_at: self.erased_at,
            notice_delivered_at: self.notice_delivered_at,
        });
        let item = ItemFacts {
            kind: &self.kind,
            created_at,
            member,
        };
        let ctx = EvalContext {
            purpose: self.purpose.clone(),
            as_of: self.as_of,
        };
        policy.explain(&item, &ctx)
    }
}
