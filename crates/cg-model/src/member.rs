//! [`MemberFacts`]: everything the gate knows about one member for one purpose as of a cut-off —
//! the single model every path that decides is fed from (file builds, ledger builds, the
//! service's check and pages, impact reports).
//!
//! Two loaders fill it (input files in `cg-build`, the ledger in `cg-ledger`); both fold
//! consent events through the same [`ConsentFold`], so an event stream means the same state
//! wherever it was read. Facts from two sources are combined with [`MemberFacts::merge`], which
//! keeps the most protective reading of every field (an erasure in either source wins).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::consent::{ConsentEvent, ConsentSource, ConsentState};
use crate::instant::Timestamp;
use crate::purpose::Purpose;

/// What the gate knows about one member, for one purpose, as of one cut-off. Serialisable:
/// a distributed build ships members' facts to its executors as data, never the inputs or the
/// ledger they came from. Its JSON leaves out what is absent (a `None`, an empty history, no
/// consent, `false`) and reads it back as absent: most members have few facts, and a build
/// writes a million of them to shared storage (and a ledger's to the client's disk).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemberFacts {
    /// Country of the members row, raw (as the input carries it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Residence history `(valid_from, raw country)`, sorted by time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub residences: Vec<(Timestamp, Option<String>)>,
    /// Birth date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<Date>,
    /// Account closure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    /// Earliest erasure request (GDPR Art 17).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure_requested_at: Option<Timestamp>,
    /// Earliest notice delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_at: Option<Timestamp>,
    /// As-of consent state for the purpose (GPC kept apart from explicit choices).
    #[serde(skip_serializing_if = "ConsentState::is_empty")]
    pub consent: ConsentState,
    /// No explicit choice for the purpose, but a grant for another purpose.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub other_purpose_grant: bool,
    /// Display name (to scrub mentions of an excluded member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Handle (to scrub mentions of an excluded member).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

impl MemberFacts {
    /// The raw country at `at`: the latest residence at or before `at`, else the members row's.
    pub fn country_at(&self, at: Timestamp) -> Option<&str> {
        match self.residences.partition_point(|(from, _)| *from <= at) {
            0 => self.country.as_deref(),
            i => self.residences[i - 1].1.as_deref(),
        }
    }

    /// The earliest of closure and erasure request: from then on the member is `erased`.
    pub fn erased_at(&self) -> Option<Timestamp> {
        min_opt(self.closed_at, self.erasure_requested_at)
    }

    /// Sorts the residence history (loaders push in any order).
    pub fn sort_residences(&mut self) {
        self.residences
            .sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        self.residences.dedup();
    }

    /// Combines the facts of one member from two sources, keeping the most protective reading
    /// of each field: the earliest closure and erasure request, the latest notice delivery,
    /// the later birth date (the younger reading), and for consent the state that denies (an
    /// objection or withdrawal in either source wins over a grant in the other). Countries that
    /// disagree become unknown (`jurisdiction_unknown` excludes); residence histories are
    /// united. Names and handles are united too (both are scrubbed), `self` first.
    pub fn merge(&mut self, other: MemberFacts) {
        self.country = match (self.country.take(), other.country) {
            (Some(a), Some(b)) if !a.eq_ignore_ascii_case(&b) => None,
            (a, b) => a.or(b),
        };
        self.residences.extend(other.residences);
        self.sort_residences();
        self.birth_date = match (self.birth_date, other.birth_date) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.closed_at = min_opt(self.closed_at, other.closed_at);
        self.erasure_requested_at = min_opt(self.erasure_requested_at, other.erasure_requested_at);
        self.notice_at = match (self.notice_at, other.notice_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.consent = most_protective_state(std::mem::take(&mut self.consent), other.consent);
        self.other_purpose_grant = self.consent.explicit.is_none()
            && (self.other_purpose_grant || other.other_purpose_grant);
        if self.display_name.is_none() {
            self.display_name = other.display_name;
        }
        if self.handle.is_none() {
            self.handle = other.handle;
        }
    }
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Of two consent states for one member, the one that protects more: a denial (withdrawal,
/// objection) beats a grant, a grant beats nothing only when nothing else is known; GPC signals
/// are kept from either.
fn most_protective_state(a: ConsentState, b: ConsentState) -> ConsentState {
    let explicit = match (a.explicit, b.explicit) {
        (Some(x), Some(y)) => Some(match (x.granted, y.granted) {
            (false, true) => x,
            (true, false) => y,
            // Same direction: the later one (it is what the member said last).
            _ if y.at > x.at => y,
            _ => x,
        }),
        (x, y) => x.or(y),
    };
    let gpc = match (a.gpc_signal, b.gpc_signal) {
        (Some(x), Some(y)) => Some(if y.at < x.at { y } else { x }),
        (x, y) => x.or(y),
    };
    ConsentState {
        explicit,
        gpc_signal: gpc,
    }
}

/// Folds one member's consent events (every purpose) for one purpose as of a cut-off: the
/// state for the purpose, whether another purpose was granted, and which other purposes were
/// seen. Events at the same time apply in the order they are pushed (ledger order, or file
/// order), so a loader pushes in `seq` or row order.
#[derive(Debug)]
pub struct ConsentFold<'p> {
    purpose: &'p Purpose,
    as_of: Timestamp,
    events: Vec<(Timestamp, usize, ConsentEvent)>,
    other_grant: bool,
}

impl<'p> ConsentFold<'p> {
    /// An empty fold for `purpose` as of `as_of`.
    pub fn new(purpose: &'p Purpose, as_of: Timestamp) -> ConsentFold<'p> {
        ConsentFold {
            purpose,
            as_of,
            events: Vec::new(),
            other_grant: false,
        }
    }

    /// Adds one event (events after the cut-off are ignored: nothing is retroactive).
    pub fn push(&mut self, event: ConsentEvent) {
        if event.ts > self.as_of {
            return;
        }
        if &event.purpose == self.purpose {
            let n = self.events.len();
            self.events.push((event.ts, n, event));
        } else if event.granted && event.source != ConsentSource::Gpc {
            self.other_grant = true;
        }
    }

    /// The state for the purpose and the other-purpose flag, folded by time (ties: push order).
    pub fn finish(mut self) -> (ConsentState, bool) {
        self.events.sort_by_key(|(ts, n, _)| (*ts, *n));
        let mut state = ConsentState::default();
        for (_, _, e) in &self.events {
            state.apply(e);
        }
        let other = self.other_grant && state.explicit.is_none();
        (state, other)
    }

    /// Folds into `facts` (consent and other-purpose flag).
    pub fn finish_into(self, facts: &mut MemberFacts) {
        let (state, other) = self.finish();
        facts.consent = state;
        facts.other_purpose_grant = other;
    }
}

/// Events of purposes a build does not decide, counted by name (the manifest's
/// `ignored_purposes`).
pub type IgnoredPurposes = BTreeMap<String, u64>;

/// The edit distance between two short names (Levenshtein, on bytes).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// A purpose name as a person might have meant it: lower case, with spaces, dashes and dots
/// as underscores (for spotting misspellings).
pub fn normalise_purpose_name(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether `name` looks like a misspelling of `purpose` (within edit distance 2 after
/// normalisation, but not equal).
pub fn looks_like(name: &str, purpose: &Purpose) -> bool {
    let n = normalise_purpose_name(name);
    n != name && n == purpose.as_str()
        || name != purpose.as_str() && edit_distance(&n, purpose.as_str()) <= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::ConsentChoice;
    use crate::ids::MemberId;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn ev(purpose: &str, granted: bool, at: &str, source: &str) -> ConsentEvent {
        ConsentEvent {
            event_id: None,
            member_id: MemberId(1),
            purpose: Purpose::new(purpose).unwrap(),
            granted,
            ts: t(at),
            source: ConsentSource::from(source),
            notice_version: None,
        }
    }

    #[test]
    fn facts_travel_as_json_unchanged() {
        let choice = |granted, at: &str, source: &str| ConsentChoice {
            granted,
            at: t(at),
            source: ConsentSource::from(source),
            notice_version: Some("v3".into()),
            event_id: None,
        };
        let facts = MemberFacts {
            country: Some("fr".into()),
            residences: vec![(t("2024-01-01T10:11:12.000123Z"), None)],
            birth_date: Some(time::macros::date!(2009 - 02 - 28)),
            closed_at: Some(t("2025-01-01")),
            erasure_requested_at: None,
            notice_at: Some(t("2024-09-18")),
            consent: ConsentState {
                explicit: Some(Box::new(choice(true, "2024-10-01T00:00:00.5Z", "settings"))),
                gpc_signal: Some(Box::new(choice(false, "2024-11-01", "gpc"))),
            },
            other_purpose_grant: true,
            display_name: Some("Anna \"A\" Müller".into()),
            handle: None,
        };
        let json = serde_json::to_string(&facts).unwrap();
        assert_eq!(serde_json::from_str::<MemberFacts>(&json).unwrap(), facts);
        let empty = MemberFacts::default();
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(json, "{}", "nothing absent is written");
        assert_eq!(serde_json::from_str::<MemberFacts>(&json).unwrap(), empty);
        // Each field alone comes back alone.
        let one_each = [
            MemberFacts {
                consent: ConsentState {
                    explicit: None,
                    gpc_signal: facts.consent.gpc_signal.clone(),
                },
                ..MemberFacts::default()
            },
            MemberFacts {
                other_purpose_grant: true,
                ..MemberFacts::default()
            },
            MemberFacts {
                erasure_requested_at: Some(t("2025-02-03")),
                ..MemberFacts::default()
            },
            MemberFacts {
                residences: vec![(t("2024-01-01"), Some("DE".into()))],
                ..MemberFacts::default()
            },
        ];
        for one in one_each {
            let json = serde_json::to_string(&one).unwrap();
            assert_eq!(
                serde_json::from_str::<MemberFacts>(&json).unwrap(),
                one,
                "{json}"
            );
        }
    }

    #[test]
    fn country_at_uses_history_then_row() {
        let m = MemberFacts {
            country: Some("US".into()),
            residences: vec![
                (t("2024-01-01"), Some("FR".into())),
                (t("2025-01-01"), Some("DE".into())),
            ],
            ..MemberFacts::default()
        };
        assert_eq!(m.country_at(t("2023-06-01")), Some("US"));
        assert_eq!(m.country_at(t("2024-01-01")), Some("FR"));
        assert_eq!(m.country_at(t("2026-01-01")), Some("DE"));
    }

    #[test]
    fn fold_ignores_other_purposes_and_future_events() {
        let p = Purpose::genai_training();
        let mut f = ConsentFold::new(&p, t("2025-06-01"));
        f.push(ev("ads_personalization", true, "2025-01-01", "settings"));
        f.push(ev("genai_training", false, "2025-07-01", "settings"));
        let (state, other) = f.finish();
        assert!(state.explicit.is_none());
        assert!(other);
        let mut f = ConsentFold::new(&p, t("2025-06-01"));
        f.push(ev("genai_training", true, "2025-02-01", "settings"));
        f.push(ev("genai_training", false, "2025-02-01", "objection_form"));
        f.push(ev("research", true, "2025-01-01", "settings"));
        let (state, other) = f.finish();
        assert_eq!(
            state.granted(true),
            Some(false),
            "ties: the later push wins"
        );
        assert!(
            !other,
            "an explicit choice for the purpose clears the other-purpose flag"
        );
    }

    #[test]
    fn merge_keeps_the_most_protective_reading() {
        let choice = |granted, at: &str| ConsentChoice {
            granted,
            at: t(at),
            source: ConsentSource::Settings,
            notice_version: None,
            event_id: None,
        };
        let mut a = MemberFacts {
            country: Some("FR".into()),
            birth_date: Some(time::macros::date!(1990 - 01 - 01)),
            consent: ConsentState {
                explicit: Some(Box::new(choice(true, "2025-05-01"))),
                gpc_signal: None,
            },
            ..MemberFacts::default()
        };
        let b = MemberFacts {
            country: Some("DE".into()),
            birth_date: Some(time::macros::date!(2008 - 01 - 01)),
            erasure_requested_at: Some(t("2025-03-01")),
            consent: ConsentState {
                explicit: Some(Box::new(choice(false, "2025-01-01"))),
                gpc_signal: None,
            },
            ..MemberFacts::default()
        };
        a.merge(b);
        assert_eq!(a.country, None, "conflicting countries are unknown");
        assert_eq!(a.birth_date, Some(time::macros::date!(2008 - 01 - 01)));
        assert_eq!(a.erased_at(), Some(t("2025-03-01")));
        assert_eq!(a.consent.granted(true), Some(false));
    }

    #[test]
    fn misspellings_are_spotted() {
        let p = Purpose::genai_training();
        for near in [
            "genai_trainng",
            "genai-training",
            "GenAI Training",
            "genai_trainin",
            "gen_ai_training",
        ] {
            assert!(looks_like(near, &p), "{near}");
        }
        for far in [
            "genai_training",
            "ads_personalization",
            "research",
            "marketing_email",
        ] {
            assert!(!looks_like(far, &p), "{far}");
        }
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
