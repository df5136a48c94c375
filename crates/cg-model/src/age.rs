//! Ages: how old a member is at an instant, and the national ages of digital consent
//! (GDPR Art 8 and equivalents, DOMAIN.md §6).
//!
//! A member reaches an age at 00:00 UTC on that birthday; a 29 February birthday counts as
//! 1 March in other years. Birth dates are dates without a time zone.

use time::{Date, Month};

use crate::instant::Timestamp;
use crate::jurisdiction::Jurisdiction;

/// The platform's default minimum age (DOMAIN.md A2).
pub const PLATFORM_MINIMUM_AGE: u8 = 18;

/// The GDPR default age of digital consent, also used where no national age is known.
pub const DEFAULT_CONSENT_AGE: u8 = 16;

/// Whole years of age at `at` for someone born on `birth` (negative before birth).
pub fn age_at(birth: Date, at: Timestamp) -> i32 {
    let today = at.date();
    let years = today.year() - birth.year();
    if today < birthday_in(birth, today.year()) {
        years - 1
    } else {
        years
    }
}

/// The day the birthday falls on in `year` (29 Feb → 1 Mar in common years).
fn birthday_in(birth: Date, year: i32) -> Date {
    Date::from_calendar_date(year, birth.month(), birth.day())
        .or_else(|_| Date::from_calendar_date(year, Month::March, 1))
        .unwrap_or(Date::MAX)
}

/// National ages of digital consent: `(age, countries)`.
pub static CONSENT_AGES: &[(u8, &[&str])] = &[
    (
        13,
        &[
            "BE", "DK", "EE", "FI", "LV", "MT", "PT", "SE", "GB", "NO", "IS",
        ],
    ),
    (14, &["AT", "BG", "CY", "ES", "IT", "LT"]),
    (15, &["CZ", "FR", "GR", "SI"]),
    (
        16,
        &["DE", "HR", "HU", "IE", "LU", "NL", "PL", "RO", "SK", "LI"],
    ),
];

/// The national age of digital consent known for `country` (ISO alpha-2), if the table has it.
pub fn national_consent_age(country: &str) -> Option<u8> {
    CONSENT_AGES
        .iter()
        .find(|(_, cs)| cs.contains(&country))
        .map(|(age, _)| *age)
}

/// The age of digital consent that applies to a jurisdiction: the national age from the table;
/// 16 for California (CCPA opt-in for under-16s); otherwise the GDPR default of 16, the
/// conservative choice where no age is known (e.g. CH, whose age is unverified).
pub fn consent_age(j: &Jurisdiction) -> u8 {
    if j.country().as_str() == "US" && j.subdivision() == Some("CA") {
        return 16;
    }
    national_consent_age(j.country().as_str()).unwrap_or(DEFAULT_CONSENT_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn birthday_starts_at_midnight_utc() {
        let b = date!(2007 - 12 - 01);
        assert_eq!(age_at(b, at("2025-11-30T23:59:59Z")), 17);
        assert_eq!(age_at(b, at("2025-12-01T00:00:00Z")), 18);
        assert_eq!(age_at(b, at("2006-01-01")), -2);
    }

    #[test]
    fn leap_day_birthdays_count_as_first_of_march() {
        let b = date!(2008 - 02 - 29);
        assert_eq!(age_at(b, at("2026-02-28")), 17);
        assert_eq!(age_at(b, at("2026-03-01")), 18);
        assert_eq!(age_at(b, at("2028-02-28")), 19);
        assert_eq!(age_at(b, at("2028-02-29")), 20);
    }

    /// Every row of DOMAIN.md §6.
    #[test]
    fn age_table_rows() {
        for c in [
            "BE", "DK", "EE", "FI", "LV", "MT", "PT", "SE", "GB", "NO", "IS",
        ] {
            assert_eq!(national_consent_age(c), Some(13), "{c}");
        }
        for c in ["AT", "BG", "CY", "ES", "IT", "LT"] {
            assert_eq!(national_consent_age(c), Some(14), "{c}");
        }
        for c in ["CZ", "FR", "GR", "SI"] {
            assert_eq!(national_consent_age(c), Some(15), "{c}");
        }
        for c in ["DE", "HR", "HU", "IE", "LU", "NL", "PL", "RO", "SK", "LI"] {
            assert_eq!(national_consent_age(c), Some(16), "{c}");
        }
        // All EU-27 are covered.
        for c in crate::jurisdiction::EU_27 {
            assert!(national_consent_age(c).is_some(), "{c}");
        }
        assert_eq!(national_consent_age("CH"), None);
    }

    #[test]
    fn consent_age_follows_normalisation() {
        let j = |c| Jurisdiction::normalize(Some(c)).unwrap();
        assert_eq!(consent_age(&j("RE")), 15); // Réunion → FR
        assert_eq!(consent_age(&j("EL")), 15); // EL → GR
        assert_eq!(consent_age(&j("UK")), 13);
        assert_eq!(consent_age(&j("US-CA")), 16);
        assert_eq!(consent_age(&j("CH")), 16);
        assert_eq!(consent_age(&j("US")), 16);
    }
}
