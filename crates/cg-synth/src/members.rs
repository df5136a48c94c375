//! Members as a pure function of `(seed, member id)`: country (weighted like a global
//! professional network, with territories, unknown and invalid codes), birth date (missing,
//! minors, members turning 18), sign-up and closure, moves, names, and consent history.

use std::sync::LazyLock;

use cg_model::{Jurisdiction, Region, RegionSet, Timestamp};
use time::Date;

use crate::pii::ascii_fold;
use crate::rng::{Rng, Stream, Weighted};
use crate::vocab::{FIRST_NAMES, LAST_NAMES};

/// First sign-up instant in the corpus.
pub const SIGNUP_START: &str = "2008-01-01";
/// Last sign-up instant.
pub const SIGNUP_END: &str = "2025-06-30";
/// First content instant.
pub const CONTENT_START: &str = "2020-01-01";
/// Last content instant.
pub const CONTENT_END: &str = "2026-06-30";
/// Last consent-event instant (events after typical cut-offs are deliberate).
pub const EVENTS_END: &str = "2026-12-31";

pub(crate) fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or(Timestamp::MIN)
}

/// Raw country codes and their weights (per 10 000 members). `None` is a missing country.
static COUNTRY_WEIGHTS: &[(Option<&str>, u64)] = &[
    (Some("US"), 1800),
    (Some("US-CA"), 250),
    (Some("IN"), 900),
    (Some("BR"), 500),
    (Some("GB"), 400),
    (Some("FR"), 300),
    (Some("CA"), 250),
    (Some("DE"), 250),
    (Some("ID"), 200),
    (Some("MX"), 200),
    (Some("IT"), 180),
    (Some("ES"), 180),
    (Some("AU"), 150),
    (Some("NL"), 120),
    (Some("TR"), 120),
    (Some("PH"), 120),
    (Some("ZA"), 100),
    (Some("NG"), 100),
    (Some("AR"), 100),
    (Some("CO"), 100),
    (Some("PK"), 100),
    (Some("CN"), 80),
    (Some("EG"), 80),
    (Some("BD"), 80),
    (Some("PL"), 80),
    (Some("SA"), 70),
    (Some("AE"), 70),
    (Some("JP"), 50),
    (Some("BE"), 50),
    (Some("SE"), 50),
    (Some("CH"), 50),
    (Some("PT"), 50),
    (Some("IE"), 40),
    (Some("AT"), 40),
    (Some("RO"), 40),
    (Some("HK"), 40),
    (Some("SG"), 40),
    (Some("MY"), 40),
    (Some("CL"), 40),
    (Some("DK"), 30),
    (Some("FI"), 30),
    (Some("NO"), 30),
    (Some("GR"), 30),
    (Some("CZ"), 30),
    (Some("NZ"), 30),
    (Some("IL"), 30),
    (Some("KE"), 30),
    (Some("KR"), 30),
    (Some("TH"), 30),
    (Some("VN"), 30),
    (Some("PE"), 30),
    (Some("UA"), 30),
    (Some("HU"), 20),
    (Some("BG"), 20),
    (Some("MA"), 20),
    (Some("GH"), 20),
    (Some("SK"), 10),
    (Some("SI"), 10),
    (Some("HR"), 10),
    (Some("LT"), 10),
    (Some("LV"), 10),
    (Some("EE"), 10),
    (Some("LU"), 10),
    (Some("MT"), 10),
    (Some("CY"), 10),
    (Some("IS"), 10),
    (Some("LI"), 5),
    // Territories and non-ISO spellings that normalise.
    (Some("RE"), 8),
    (Some("GP"), 5),
    (Some("MQ"), 5),
    (Some("GF"), 3),
    (Some("YT"), 3),
    (Some("MF"), 2),
    (Some("IC"), 5),
    (Some("EA"), 2),
    (Some("AX"), 2),
    (Some("XI"), 5),
    (Some("UK"), 15),
    (Some("EL"), 5),
    (Some("SJ"), 1),
    (Some("de"), 5),
    (Some(" fr "), 3),
    // Territories that keep their own code.
    (Some("GI"), 3),
    (Some("JE"), 3),
    (Some("GG"), 2),
    (Some("IM"), 2),
    (Some("FO"), 2),
    (Some("GL"), 1),
    (Some("BL"), 1),
    (Some("PM"), 1),
    (Some("NC"), 2),
    (Some("PF"), 1),
    (Some("CW"), 1),
    (Some("AW"), 1),
    // Unknown and invalid.
    (None, 100),
    (Some("EU"), 15),
    (Some("XX"), 5),
    (Some("ZZ"), 5),
    (Some(""), 5),
    (Some("N/A"), 5),
];

static COUNTRIES: LazyLock<Weighted<Option<&'static str>>> =
    LazyLock::new(|| Weighted::new(COUNTRY_WEIGHTS.iter().copied()));

/// Countries people move from or to (valid codes only).
static MOVE_COUNTRIES: &[&str] = &[
    "US", "GB", "DE", "FR", "IN", "CA", "NL", "ES", "IE", "CH", "AE", "SG", "AU", "BR", "PL",
];

/// One member's profile.
#[derive(Clone, Debug)]
pub struct Member {
    /// Id.
    pub id: i64,
    /// Current country as the raw input carries it (may be invalid or missing).
    pub country: Option<&'static str>,
    /// Birth date, if known.
    pub birth_date: Option<Date>,
    /// Sign-up time.
    pub created_at: Timestamp,
    /// Account closure, if closed.
    pub closed_at: Option<Timestamp>,
    /// Earlier country and the instant of the move to `country`, for members who moved.
    pub moved_from: Option<(&'static str, Timestamp)>,
}

impl Member {
    /// Member `id` of the corpus with `seed`.
    pub fn generate(seed: u64, id: i64) -> Member {
        let mut rng = Rng::for_entity(seed, Stream::Member, id as u64);
        let country = *COUNTRIES.pick(&mut rng);
        let birth_date = birth_date(&mut rng);
        let mut created = Timestamp::from_micros(
            rng.range_i64(ts(SIGNUP_START).micros(), ts(SIGNUP_END).micros()),
        );
        if let Some(b) = birth_date {
            // Nobody signs up before 16.
            let sixteen = Timestamp::at_midnight(b).plus_days(16 * 365 + 4);
            if created < sixteen {
                created = sixteen.min(ts(CONTENT_END).plus_days(-30));
            }
        }
        let closed_at = rng.chance(0.01).then(|| {
            Timestamp::from_micros(rng.range_i64(created.micros(), ts(CONTENT_END).micros()))
        });
        let moved_from = (rng.chance(0.03) && country.is_some_and(|c| c.len() == 2)).then(|| {
            let from = *rng.pick(MOVE_COUNTRIES);
            let at = rng.range_i64(created.micros(), ts(CONTENT_END).micros());
            (from, Timestamp::from_micros(at))
        });
        let moved_from = moved_from.filter(|(from, _)| Some(*from) != country);
        Member {
            id,
            country,
            birth_date,
            created_at: created,
            closed_at,
            moved_from,
        }
    }

    /// The member's regions (empty if the country does not normalise).
    pub fn regions(&self) -> RegionSet {
        Jurisdiction::normalize(self.country)
            .map(|j| j.regions(Default::default()))
            .unwrap_or(RegionSet::EMPTY)
    }

    /// Whether the member lives somewhere a 2024–2025 suspension or notice applies.
    pub fn in_noticed_region(&self) -> bool {
        self.regions().intersects(RegionSet::of(&[
            Region::Eu,
            Region::Eea,
            Region::Ch,
            Region::Uk,
            Region::Ca,
            Region::Hk,
        ]))
    }
}

fn birth_date(rng: &mut Rng) -> Option<Date> {
    let r = rng.unit();
    let (lo, hi) = if r < 0.03 {
        return None;
    } else if r < 0.05 {
        // Minors at the 2025 cut-offs.
        ("2008-01-01", "2010-12-31")
    } else if r < 0.06 {
        // Turning 18 during 2025–2026.
        ("2007-01-01", "2008-06-30")
    } else {
        ("1955-01-01", "2004-12-31")
    };
    let d = rng.range_i64(ts(lo).micros(), ts(hi).micros());
    Some(Timestamp::from_micros(d).date())
}

/// A member's display name and handle (unique: the handle carries the id).
pub fn names(seed: u64, id: i64) -> (String, String) {
    let mut rng = Rng::for_entity(seed, Stream::Names, id as u64);
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let handle = format!("{}{}{id}", ascii_fold(first), ascii_fold(last));
    (format!("{first} {last}"), handle)
}

/// The first and last name of a member.
pub fn name_parts(seed: u64, id: i64) -> (&'static str, &'static str) {
    let mut rng = Rng::for_entity(seed, Stream::Names, id as u64);
    (*rng.pick(FIRST_NAMES), *rng.pick(LAST_NAMES))
}

/// One consent event before an id is assigned.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Purpose.
    pub purpose: &'static str,
    /// Granted or not.
    pub granted: bool,
    /// When.
    pub ts: Timestamp,
    /// Source.
    pub source: &'static str,
    /// Notice version.
    pub notice_version: Option<&'static str>,
}

/// The member's consent history: opt-outs, objections, GPC signals, grants, withdrawals,
/// re-enables, other purposes, and events after typical cut-offs.
pub fn consent_events(seed: u64, member: &Member) -> Vec<Event> {
    let mut rng = Rng::for_entity(seed, Stream::Consent, member.id as u64);
    let start = member.created_at.micros().max(ts("2023-01-01").micros());
    let end = ts(EVENTS_END).micros();
    let at = |rng: &mut Rng, lo: i64| Timestamp::from_micros(rng.range_i64(lo.max(start), end));
    let ev = |purpose, granted, ts, source, notice_version| Event {
        purpose,
        granted,
        ts,
        source,
        notice_version,
    };
    let g = "genai_training";
    let r = rng.unit();
    let mut out = Vec::new();
    if r < 0.06 {
        out.push(ev(g, false, at(&mut rng, start), "settings", None));
    } else if r < 0.08 {
        let t = at(&mut rng, ts("2025-09-18").micros());
        out.push(ev(g, false, t, "objection_form", Some("2025-09")));
    } else if r < 0.09 {
        out.push(ev(g, false, at(&mut rng, start), "gpc", None));
    } else if r < 0.12 {
        let v = *rng.pick(&["2024-06", "2025-09"]);
        out.push(ev(g, true, at(&mut rng, start), "settings", Some(v)));
    } else if r < 0.13 {
        let t1 = at(&mut rng, start);
        let t2 = at(&mut rng, t1.micros());
        out.push(ev(g, true, t1, "settings", Some("2025-09")));
        out.push(ev(g, false, t2, "settings", None));
    } else if r < 0.14 {
        let t1 = at(&mut rng, start);
        let t2 = at(&mut rng, t1.micros());
        out.push(ev(g, false, t1, "settings", None));
        out.push(ev(g, true, t2, "settings", Some("2025-09")));
    } else if r < 0.15 {
        out.push(ev(
            "ranking_training",
            false,
            at(&mut rng, start),
            "objection_form",
            None,
        ));
    } else if r < 0.155 {
        out.push(ev(g, false, at(&mut rng, start), "api", None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_pure_functions_of_seed_and_id() {
        let a = Member::generate(7, 42);
        let b = Member::generate(7, 42);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(names(7, 42), names(7, 42));
        assert!(names(7, 42).1.ends_with("42"));
    }

    #[test]
    fn population_has_the_edge_cases() {
        let members: Vec<Member> = (1..=20_000).map(|i| Member::generate(1, i)).collect();
        let count = |f: &dyn Fn(&Member) -> bool| members.iter().filter(|m| f(m)).count();
        assert!(count(&|m| m.country.is_none()) > 50);
        assert!(count(&|m| m.country == Some("EU")) > 5);
        assert!(count(&|m| m.country == Some("RE")) > 3);
        assert!(count(&|m| m.birth_date.is_none()) > 300);
        assert!(count(&|m| m.moved_from.is_some()) > 300);
        assert!(count(&|m| m.closed_at.is_some()) > 100);
        let minors = count(&|m| {
            m.birth_date
                .is_some_and(|b| cg_model::age::age_at(b, ts("2025-11-10")) < 18)
        });
        assert!(minors > 200, "{minors}");
        let distinct: std::collections::BTreeSet<_> =
            members.iter().filter_map(|m| m.country).collect();
        assert!(distinct.len() > 60, "{}", distinct.len());
        let events: usize = members.iter().map(|m| consent_events(1, m).len()).sum();
        assert!(events > 2_000, "{events}");
    }
}
