//! Value parsers shared by commands: times, dates, purposes, `CC@time` residences.

use cg_model::{Purpose, Timestamp};

/// `--as-of` and friends: RFC 3339 or a date (midnight UTC).
pub fn timestamp(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse(s).map_err(|e| e.to_string())
}

/// A calendar date (`2008-06-01`); an RFC 3339 time is accepted and its UTC date taken;
/// `unknown` (or `none`) says the date is not known.
pub fn date(s: &str) -> Result<MaybeDate, String> {
    if matches!(s, "unknown" | "none") {
        return Ok(MaybeDate(None));
    }
    cg_model::instant::parse_date(s)
        .or_else(|_| Timestamp::parse(s).map(Timestamp::date))
        .map(|d| MaybeDate(Some(d)))
        .map_err(|e| e.to_string())
}

/// A date that may be stated as unknown.
#[derive(Clone, Copy, Debug)]
pub struct MaybeDate(pub Option<time::Date>);

/// A purpose from the default catalogue.
pub fn purpose(s: &str) -> Result<Purpose, String> {
    Purpose::known(s).map_err(|e| e.to_string())
}

/// A purpose spelled correctly (any name, for events about other purposes).
pub fn any_purpose(s: &str) -> Result<Purpose, String> {
    Purpose::new(s).map_err(|e| e.to_string())
}

/// `CC@time`.
pub fn residence(s: &str) -> Result<(String, Timestamp), String> {
    let (country, at) = s.split_once('@').ok_or_else(|| {
        format!("`{s}` is not a residence: expected `CC@TIME`, e.g. `DE@2019-01-01`")
    })?;
    Ok((country.to_owned(), timestamp(at)?))
}
