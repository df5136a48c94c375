//! Points in time: UTC timestamps with microsecond precision (Arrow's `Timestamp(µs, "UTC")`)
//! and calendar dates without a time zone (birth dates).
//!
//! Everywhere a person types a time, RFC 3339 (`2025-03-01T00:00:00Z`) and a bare date
//! (`2025-03-01`, meaning midnight UTC) are accepted.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// A UTC instant, microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// A time that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a time: expected RFC 3339 (`2025-03-01T00:00:00Z`) or a date (`2025-03-01`)"
)]
pub struct TimeParseError {
    input: String,
}

impl Timestamp {
    /// The earliest representable instant (used as "since forever").
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant (used as "until forever").
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Midnight UTC at the start of `date`.
    pub fn at_midnight(date: Date) -> Timestamp {
        let odt = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc();
        Timestamp::from_offset_date_time(odt)
    }

    /// From a `time` value (converted to UTC, truncated to microseconds).
    pub fn from_offset_date_time(odt: OffsetDateTime) -> Timestamp {
        let nanos = odt.unix_timestamp_nanos();
        Timestamp(
            i64::try_from(nanos.div_euclid(1000)).unwrap_or(if nanos < 0 {
                i64::MIN
            } else {
                i64::MAX
            }),
        )
    }

    /// As a `time` value in UTC, or `None` outside `time`'s range.
    pub fn to_offset_date_time(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000).ok()
    }

    /// The UTC calendar date of this instant (saturating at `time`'s range).
    pub fn date(self) -> Date {
        match self.to_offset_date_time() {
            Some(odt) => odt.date(),
            None if self.0 < 0 => Date::MIN,
            None => Date::MAX,
        }
    }

    /// Parses RFC 3339 or a bare `YYYY-MM-DD` date (midnight UTC).
    pub fn parse(input: &str) -> Result<Timestamp, TimeParseError> {
        let s = input.trim();
        let err = || TimeParseError {
            input: input.to_owned(),
        };
        // An instant outside the calendar range `Display` writes as RFC 3339.
        if let Some(micros) = s.strip_prefix('@').and_then(|m| m.strip_suffix("µs")) {
            return micros.parse().map(Timestamp).map_err(|_| err());
        }
        if let Ok(odt) = OffsetDateTime::parse(s, &Rfc3339) {
            return Ok(Timestamp::from_offset_date_time(
                odt.to_offset(UtcOffset::UTC),
            ));
        }
        parse_date(s).map(Timestamp::at_midnight).map_err(|_| err())
    }

    /// Adds whole days (saturating).
    #[must_use]
    pub fn plus_days(self, days: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(days.saturating_mul(86_400_000_000)))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with a `Z`, e.g. `2025-03-01T00:00:00Z` (fractional seconds only when
    /// set); an instant RFC 3339 cannot write (before year 0 or after 9999) as `@<micros>µs`,
    /// which [`Timestamp::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self
            .to_offset_date_time()
            .filter(|odt| (0..=9999).contains(&odt.year()))
        {
            Some(odt) => {
                let (date, t) = (odt.date(), odt.time());
                write!(
                    f,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    date.year(),
                    u8::from(date.month()),
                    date.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )?;
                if t.microsecond() != 0 {
                    write!(f, ".{:06}", t.microsecond())?;
                }
                f.write_str("Z")
            }
            None => write!(f, "@{}µs", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimeParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(input: &str) -> Result<Date, TimeParseError> {
    let err = || TimeParseError {
        input: input.to_owned(),
    };
    let s = input.trim();
    let mut parts = s.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(err());
    }
    let year: i32 = y.parse().map_err(|_| err())?;
    let month: u8 = m.parse().map_err(|_| err())?;
    let day: u8 = d.parse().map_err(|_| err())?;
    let month = time::Month::try_from(month).map_err(|_| err())?;
    Date::from_calendar_date(year, month, day).map_err(|_| err())
}

/// Days since 1970-01-01 (Arrow `Date32`).
pub fn date_to_days(date: Date) -> i32 {
    date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY
}

/// The date `days` after 1970-01-01 (Arrow `Date32`), if in range.
pub fn days_to_date(days: i32) -> Option<Date> {
    Date::from_julian_day(days.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()
}

const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parses_rfc3339_and_dates() {
        let a = Timestamp::parse("2025-03-01T00:00:00Z").unwrap();
        let b = Timestamp::parse("2025-03-01").unwrap();
        let c = Timestamp::parse("2025-03-01T01:00:00+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.to_string(), "2025-03-01T00:00:00Z");
        assert_eq!(
            Timestamp::parse("2025-03-01T00:00:00.5Z")
                .unwrap()
                .to_string(),
            "2025-03-01T00:00:00.500000Z"
        );
        assert_eq!(
            Timestamp::from_micros(i64::MIN).to_string(),
            format!("@{}µs", i64::MIN)
        );
        assert_eq!(
            Timestamp::parse(&Timestamp::from_micros(-1 << 60).to_string()).unwrap(),
            Timestamp::from_micros(-1 << 60)
        );
        for bad in [
            "",
            "yesterday",
            "@µs",
            "@12",
            "@1.5µs",
            "2025-13-01",
            "2025-02-30",
            "25-03-01",
            "2025-3-1",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_round_trip_through_days() {
        assert_eq!(date_to_days(date!(1970 - 01 - 01)), 0);
        assert_eq!(date_to_days(date!(2024 - 02 - 29)), 19_782);
        assert_eq!(days_to_date(19_782), Some(date!(2024 - 02 - 29)));
        assert_eq!(
            Timestamp::at_midnight(date!(1970 - 01 - 02)).micros(),
            86_400_000_000
        );
        assert_eq!(
            Timestamp::parse("1969-12-31T23:59:59Z").unwrap().date(),
            date!(1969 - 12 - 31)
        );
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(micros in -2_000_000_000_000_000i64..4_000_000_000_000_000i64) {
            let t = Timestamp::from_micros(micros);
            proptest::prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }

        /// Any instant, in or far outside the calendar (a Parquet timestamp can hold any
        /// `i64`), survives serde: member facts travel to a distributed build's executors so.
        #[test]
        fn every_instant_round_trips_through_serde(micros in proptest::num::i64::ANY) {
            let t = Timestamp::from_micros(micros);
            let json = serde_json::to_string(&t).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }
    }
}
