//! Consent events and the point-in-time fold that turns a member's history into a state.
//!
//! Events are immutable facts: "member M, for purpose P, granted (or withdrew/objected) at T,
//! through source S, under notice version V". The state as of T replays every event with
//! `ts <= T` in order; nothing is ever applied retroactively (GDPR Art 7(3)).
//!
//! A Global Privacy Control signal (`source = gpc`, `granted = false`) is kept apart from
//! explicit choices: whether it counts as an objection is policy (`gpc_as_objection`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, MemberId};
use crate::instant::Timestamp;
use crate::purpose::Purpose;

/// Where a consent event came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ConsentSource {
    /// The member's privacy setting (toggle).
    Settings,
    /// The data-processing objection form (GDPR Art 21).
    ObjectionForm,
    /// A Global Privacy Control signal (`Sec-GPC: 1`) from a logged-in member's browser.
    Gpc,
    /// Another service through the API.
    Api,
    /// A bulk import.
    Import,
    /// Any other source, kept verbatim.
    Other(String),
}

impl ConsentSource {
    /// The stable name.
    pub fn as_str(&self) -> &str {
        match self {
            ConsentSource::Settings => "settings",
            ConsentSource::ObjectionForm => "objection_form",
            ConsentSource::Gpc => "gpc",
            ConsentSource::Api => "api",
            ConsentSource::Import => "import",
            ConsentSource::Other(s) => s,
        }
    }
}

impl From<String> for ConsentSource {
    fn from(s: String) -> Self {
        ConsentSource::from(s.as_str())
    }
}

impl From<&str> for ConsentSource {
    fn from(s: &str) -> Self {
        match s {
            "settings" => ConsentSource::Settings,
            "objection_form" => ConsentSource::ObjectionForm,
            "gpc" => ConsentSource::Gpc,
            "api" => ConsentSource::Api,
            "import" => ConsentSource::Import,
            other => ConsentSource::Other(other.to_owned()),
        }
    }
}

impl From<ConsentSource> for String {
    fn from(s: ConsentSource) -> String {
        s.as_str().to_owned()
    }
}

impl fmt::Display for ConsentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One consent event, as in the input contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    /// Client-supplied id for idempotency, if any.
    pub event_id: Option<EventId>,
    /// The member.
    pub member_id: MemberId,
    /// The purpose the choice is about.
    pub purpose: Purpose,
    /// `true` = grant; `false` = withdrawal, objection or opt-out.
    pub granted: bool,
    /// When the choice was made (UTC).
    pub ts: Timestamp,
    /// Where it came from.
    pub source: ConsentSource,
    /// The privacy-notice version the member saw, if known.
    pub notice_version: Option<String>,
}

impl ConsentEvent {
    /// Whether this is a GPC opt-out signal rather than an explicit choice.
    pub fn is_gpc_signal(&self) -> bool {
        self.source == ConsentSource::Gpc && !self.granted
    }
}

/// The event that decided a state, in the shape reports and APIs show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChoice {
    /// `true` = granted.
    pub granted: bool,
    /// Event time.
    pub at: Timestamp,
    /// Event source.
    pub source: ConsentSource,
    /// Notice version, if recorded.
    pub notice_version: Option<String>,
    /// The event id, if recorded.
    pub event_id: Option<EventId>,
}

impl From<&ConsentEvent> for ConsentChoice {
    fn from(e: &ConsentEvent) -> Self {
        ConsentChoice {
            granted: e.granted,
            at: e.ts,
            source: e.source.clone(),
            notice_version: e.notice_version.clone(),
            event_id: e.event_id,
        }
    }
}

/// A member's state for one purpose at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    /// The latest explicit choice (toggle, objection form, API, import) at or before the instant.
    ///
    /// Both choices are boxed: most members have neither, and a build holds one state per
    /// member (two inline choices were ~160 of a member's ~310 bytes of facts).
    pub explicit: Option<Box<ConsentChoice>>,
    /// A GPC opt-out signal at or after the latest explicit choice, if any.
    pub gpc_signal: Option<Box<ConsentChoice>>,
}

impl ConsentState {
    /// Neither an explicit choice nor a GPC signal.
    pub fn is_empty(&self) -> bool {
        self.explicit.is_none() && self.gpc_signal.is_none()
    }

    /// Folds `events` (one member, one purpose, any order) as of `as_of`.
    /// Ties on `ts` are broken by input order: later in the slice wins.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a ConsentEvent>, as_of: Timestamp) -> Self {
        let mut relevant: Vec<(usize, &ConsentEvent)> = events
            .into_iter()
            .enumerate()
            .filter(|(_, e)| e.ts <= as_of)
            .collect();
        relevant.sort_by_key(|(i, e)| (e.ts, *i));
        let mut state = ConsentState::default();
        for (_, e) in relevant {
            state.apply(e);
        }
        state
    }

    /// Applies one event that happened after every event applied so far.
    pub fn apply(&mut self, e: &ConsentEvent) {
        if e.is_gpc_signal() {
            self.gpc_signal = Some(Box::new(ConsentChoice::from(e)));
        } else if e.source == ConsentSource::Gpc {
            // `Sec-GPC` can only signal an opt-out; a "granted" GPC event carries no choice.
        } else {
            self.explicit = Some(Box::new(ConsentChoice::from(e)));
            // An explicit choice made after a GPC signal supersedes it.
            self.gpc_signal = None;
        }
    }

    /// What a caller asking "did they consent?" sees: `Some(true)` granted, `Some(false)`
    /// withdrawn/objected/GPC, `None` no event applies.
    pub fn granted(&self, gpc_as_objection: bool) -> Option<bool> {
        if gpc_as_objection && self.gpc_signal.is_some() {
            return Some(false);
        }
        self.explicit.as_ref().map(|c| c.granted)
    }

    /// The event that decided [`ConsentState::granted`].
    pub fn deciding(&self, gpc_as_objection: bool) -> Option<&ConsentChoice> {
        match (&self.gpc_signal, gpc_as_objection) {
            (Some(g), true) => Some(g),
            _ => self.explicit.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(granted: bool, day: &str, source: &str) -> ConsentEvent {
        ConsentEvent {
            event_id: None,
            member_id: MemberId(1),
            purpose: Purpose::genai_training(),
            granted,
            ts: Timestamp::parse(day).unwrap(),
            source: ConsentSource::from(source),
            notice_version: None,
        }
    }

    #[test]
    fn as_of_replays_history_never_retroactively() {
        let events = [
            ev(true, "2025-01-10", "settings"),
            ev(false, "2025-06-10", "settings"),
        ];
        let at = |d| ConsentState::fold(&events, Timestamp::parse(d).unwrap()).granted(true);
        assert_eq!(at("2025-01-09"), None);
        assert_eq!(at("2025-01-10"), Some(true));
        assert_eq!(at("2025-06-01"), Some(true));
        assert_eq!(at("2025-06-10"), Some(false));
        assert_eq!(at("2026-01-01"), Some(false));
    }

    #[test]
    fn order_of_input_does_not_matter_but_ties_follow_input() {
        let a = [
            ev(false, "2025-06-10", "settings"),
            ev(true, "2025-01-10", "settings"),
        ];
        let s = ConsentState::fold(&a, Timestamp::parse("2025-07-01").unwrap());
        assert_eq!(s.granted(true), Some(false));
        let tie = [
            ev(true, "2025-06-10", "api"),
            ev(false, "2025-06-10", "settings"),
        ];
        let s = ConsentState::fold(&tie, Timestamp::parse("2025-07-01").unwrap());
        assert_eq!(s.granted(true), Some(false));
    }

    #[test]
    fn gpc_is_kept_apart_and_superseded_by_later_explicit_choice() {
        let events = [
            ev(true, "2025-01-10", "settings"),
            ev(false, "2025-02-10", "gpc"),
        ];
        let s = ConsentState::fold(&events, Timestamp::parse("2025-03-01").unwrap());
        assert_eq!(s.granted(true), Some(false));
        assert_eq!(s.granted(false), Some(true));
        assert_eq!(s.deciding(true).unwrap().source, ConsentSource::Gpc);
        let later = [
            ev(false, "2025-02-10", "gpc"),
            ev(true, "2025-02-20", "settings"),
        ];
        let s = ConsentState::fold(&later, Timestamp::parse("2025-03-01").unwrap());
        assert_eq!(s.granted(true), Some(true));
        let noise = [ev(true, "2025-02-10", "gpc")];
        assert_eq!(
            ConsentState::fold(&noise, Timestamp::MAX).granted(true),
            None
        );
    }

    #[test]
    fn sources_round_trip() {
        for s in [
            "settings",
            "objection_form",
            "gpc",
            "api",
            "import",
            "partner_portal",
        ] {
            assert_eq!(ConsentSource::from(s).as_str(), s);
        }
    }
}
