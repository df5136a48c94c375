//! Regimes as effective-dated data (DOMAIN.md A2 and §2.4).
//!
//! A regime says, for a span of time, which regions have training suspended and which lawful
//! basis applies elsewhere. The default policy is the [`Timeline`]: the regime in force at an
//! item's evaluation time. Every regime is also available alone, by id, for replays and what-ifs.
//!
//! ```
//! use cg_model::{regime::Timeline, Timestamp};
//! let t = Timeline::default();
//! assert_eq!(t.regime_at(Timestamp::parse("2025-03-01").unwrap()).id, "li-2024-09");
//! ```

use serde::Serialize;
use time::Date;
use time::macros::date;

use crate::instant::Timestamp;
use crate::jurisdiction::{Region, RegionSet};

/// The lawful basis a regime relies on outside its suspended regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    /// Art 6(1)(f): on by default, the member may opt out or object (reason `legitimate_interest`).
    LegitimateInterest,
    /// Art 6(1)(a): only with a demonstrable grant (reason `consent`); national consent ages apply.
    Consent,
}

/// One regime: who is suspended, and on what basis everyone else is trained on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Regime {
    /// Stable id (`li-2024-09`).
    pub id: &'static str,
    /// A human title.
    pub title: &'static str,
    /// First day in force (inclusive, UTC); `None` = since forever.
    pub effective_from: Option<Date>,
    /// Last day in force (inclusive, UTC); `None` = until further notice.
    pub effective_until: Option<Date>,
    /// Regions where training is suspended.
    pub suspended: RegionSet,
    /// Basis everywhere else.
    pub basis: LawfulBasis,
    /// Whether the regime belongs to the default timeline.
    pub in_timeline: bool,
}

impl Regime {
    /// Whether the regime is in force at `at`.
    pub fn in_force(&self, at: Timestamp) -> bool {
        let day = at.date();
        self.effective_from.is_none_or(|from| day >= from)
            && self.effective_until.is_none_or(|until| day <= until)
    }

    /// Whether `at` is before the regime's first day (a pinned regime used too early).
    pub fn not_yet_effective(&self, at: Timestamp) -> bool {
        self.effective_from.is_some_and(|from| at.date() < from)
    }

    /// Looks a bundled regime up by id.
    pub fn by_id(id: &str) -> Option<&'static Regime> {
        REGIMES.iter().find(|r| r.id == id)
    }
}

/// The bundled regimes, in time order; `strict-optin` last (not in the timeline).
pub static REGIMES: std::sync::LazyLock<[Regime; 4]> = std::sync::LazyLock::new(|| {
    let eu_eea_ch = RegionSet::of(&[Region::Eu, Region::Eea, Region::Ch]);
    let suspension_2024 = RegionSet::of(&[
        Region::Eu,
        Region::Eea,
        Region::Ch,
        Region::Uk,
        Region::Ca,
        Region::Hk,
    ]);
    [
        Regime {
            id: "li-2024-pre",
            title: "Before 18 Sep 2024: EU, EEA and CH suspended; rest of world opt-out",
            effective_from: None,
            effective_until: Some(date!(2024 - 09 - 17)),
            suspended: eu_eea_ch,
            basis: LawfulBasis::LegitimateInterest,
            in_timeline: true,
        },
        Regime {
            id: "li-2024-09",
            title: "18 Sep 2024 – 2 Nov 2025: EU, EEA, CH, UK, CA, HK suspended; rest of world opt-out",
            effective_from: Some(date!(2024 - 09 - 18)),
            effective_until: Some(date!(2025 - 11 - 02)),
            suspended: suspension_2024,
            basis: LawfulBasis::LegitimateInterest,
            in_timeline: true,
        },
        Regime {
            id: "li-2025-11",
            title: "From 3 Nov 2025: everyone opt-out under legitimate interest",
            effective_from: Some(date!(2025 - 11 - 03)),
            effective_until: None,
            suspended: RegionSet::EMPTY,
            basis: LawfulBasis::LegitimateInterest,
            in_timeline: true,
        },
        Regime {
            id: "strict-optin",
            title: "Synthetic: everyone needs an explicit grant; national consent ages apply",
            effective_from: None,
            effective_until: None,
            suspended: RegionSet::EMPTY,
            basis: LawfulBasis::Consent,
            in_timeline: false,
        },
    ]
});

/// The default policy's regimes over time.
#[derive(Clone, Debug)]
pub struct Timeline {
    regimes: Vec<&'static Regime>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            regimes: REGIMES.iter().filter(|r| r.in_timeline).collect(),
        }
    }
}

impl Timeline {
    /// The regime in force at `at`. The bundled timeline covers all time; a gap would be a
    /// configuration error, reported as `None` (and decided as `policy_error`).
    pub fn regime_at(&self, at: Timestamp) -> &'static Regime {
        self.try_regime_at(at).unwrap_or(&REGIMES[0])
    }

    /// Like [`Timeline::regime_at`] without the fallback.
    pub fn try_regime_at(&self, at: Timestamp) -> Option<&'static Regime> {
        self.regimes.iter().copied().find(|r| r.in_force(at))
    }

    /// The regimes in time order.
    pub fn regimes(&self) -> &[&'static Regime] {
        &self.regimes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn timeline_boundaries_are_inclusive_days() {
        let t = Timeline::default();
        assert_eq!(t.regime_at(at("2010-01-01")).id, "li-2024-pre");
        assert_eq!(t.regime_at(at("2024-09-17T23:59:59Z")).id, "li-2024-pre");
        assert_eq!(t.regime_at(at("2024-09-18")).id, "li-2024-09");
        assert_eq!(t.regime_at(at("2025-11-02T23:59:59Z")).id, "li-2024-09");
        assert_eq!(t.regime_at(at("2025-11-03")).id, "li-2025-11");
        assert_eq!(t.regime_at(at("2030-01-01")).id, "li-2025-11");
    }

    #[test]
    fn timeline_covers_all_time_without_overlap() {
        let t = Timeline::default();
        for day in [
            "1970-01-01",
            "2024-09-17",
            "2024-09-18",
            "2025-11-02",
            "2025-11-03",
            "2099-12-31",
        ] {
            let n = t.regimes().iter().filter(|r| r.in_force(at(day))).count();
            assert_eq!(n, 1, "{day}");
        }
    }

    #[test]
    fn regional_suspensions() {
        let pre = Regime::by_id("li-2024-pre").unwrap();
        assert!(pre.suspended.contains(Region::Eu) && !pre.suspended.contains(Region::Uk));
        let sep = Regime::by_id("li-2024-09").unwrap();
        for r in [
            Region::Eu,
            Region::Eea,
            Region::Ch,
            Region::Uk,
            Region::Ca,
            Region::Hk,
        ] {
            assert!(sep.suspended.contains(r), "{r}");
        }
        assert!(!sep.suspended.contains(Region::UsCa));
        assert!(Regime::by_id("li-2025-11").unwrap().suspended.is_empty());
        let strict = Regime::by_id("strict-optin").unwrap();
        assert_eq!(strict.basis, LawfulBasis::Consent);
        assert!(!strict.in_timeline);
        assert!(
            Regime::by_id("li-2025-11")
                .unwrap()
                .not_yet_effective(at("2025-10-20"))
        );
    }
}
