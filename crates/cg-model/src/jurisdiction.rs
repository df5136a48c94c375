//! Jurisdictions: ISO 3166-1 country codes, normalisation of the codes real data carries,
//! and the region sets that regimes are written against.
//!
//! Normalisation runs first (DOMAIN.md §5.2): `EL`→`GR`, `UK`/`XI`→`GB`, `IC`/`EA`→`ES`,
//! `AX`→`FI`, the French outermost regions →`FR`, `SJ`→`NO`; `EU` and anything that is not a
//! country is [`UnknownJurisdiction`]. Region membership is then judged on the normalised,
//! sovereign code: Réunion is EU, Saint-Barthélemy, the Faroes and Greenland are not.
//! Gibraltar and the Crown Dependencies are their own ISO countries, counted as UK by
//! [`RegionFlags`] (both on by default).
//!
//! ```
//! use cg_model::jurisdiction::{Jurisdiction, Region, RegionFlags};
//! let j = Jurisdiction::normalize(Some("re")).unwrap();
//! assert_eq!(j.country().as_str(), "FR");
//! assert_eq!(j.note().unwrap().to_string(), "territory_normalized(RE→FR)");
//! assert!(j.regions(RegionFlags::default()).contains(Region::Eu));
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::countries::ISO_3166_1;

/// An officially assigned ISO 3166-1 alpha-2 country code (always upper case).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Looks `code` up in the ISO table; exact, upper-case match only (see [`Jurisdiction::normalize`]
    /// for the forgiving entry point).
    pub fn new(code: &str) -> Option<CountryCode> {
        let bytes: [u8; 2] = code.as_bytes().try_into().ok()?;
        iso_position(bytes).map(|_| CountryCode(bytes))
    }

    /// The two-letter code.
    pub fn as_str(&self) -> &str {
        // The bytes come from the ASCII table, so this cannot fail; fall back defensively.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    /// The short English name from the ISO table.
    pub fn name(&self) -> &'static str {
        iso_position(self.0).map_or("", |i| ISO_3166_1[i].1)
    }

    /// The position of the code in the ISO table (0..249), for dense packing.
    pub fn index(&self) -> u16 {
        iso_position(self.0).map_or(u16::MAX, |i| i as u16)
    }

    /// The code at `index` in the ISO table.
    pub fn from_index(index: u16) -> Option<CountryCode> {
        ISO_3166_1
            .get(usize::from(index))
            .and_then(|(c, _)| CountryCode::new(c))
    }

    /// Every officially assigned code, in code order.
    pub fn all() -> impl Iterator<Item = CountryCode> {
        ISO_3166_1.iter().filter_map(|(c, _)| CountryCode::new(c))
    }
}

/// A two-letter code as a big-endian integer: ordered as the codes' bytes are, compared in one
/// instruction (`u16::MAX` for a string that is not two bytes long).
fn code_key(code: &str) -> u16 {
    match code.as_bytes() {
        [a, b] => u16::from_be_bytes([*a, *b]),
        _ => u16::MAX,
    }
}

/// Where a code sits in the ISO table: a binary search on [`code_key`]s. Every member's
/// countries are looked up here when a build compiles them; comparing integers instead of
/// byte slices (a `memcmp` call per step) took it out of the compile stage's profile.
fn iso_position(code: [u8; 2]) -> Option<usize> {
    ISO_3166_1
        .binary_search_by_key(&u16::from_be_bytes(code), |(c, _)| code_key(c))
        .ok()
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CountryCode::new(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an ISO 3166-1 code")))
    }
}

/// Why a raw code could not be turned into a country: the decision is `jurisdiction_unknown`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnknownJurisdiction {
    /// No code at all (null or blank).
    #[error("no country given")]
    Missing,
    /// A code that names a group or organisation, not a country (`EU`, `EZ`, `UN`).
    #[error("`{0}` is not a country")]
    NotACountry(String),
    /// Anything else that is not an assigned code or a known alias.
    #[error("`{0}` is not an ISO 3166-1 country code")]
    Invalid(String),
}

/// What normalisation did to the raw code, kept for explanations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Normalization {
    /// A non-ISO spelling of the same country (`EL`→`GR`, `UK`→`GB`, `XI`→`GB`).
    Alias {
        /// The code as given.
        from: String,
        /// The ISO country.
        to: CountryCode,
    },
    /// A territory that is an integral part of a country for data-protection purposes
    /// (`RE`→`FR`, `IC`→`ES`, `AX`→`FI`, `SJ`→`NO`).
    Territory {
        /// The code as given.
        from: String,
        /// The sovereign ISO country.
        to: CountryCode,
    },
}

impl fmt::Display for Normalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Normalization::Alias { from, to } | Normalization::Territory { from, to } => {
                write!(f, "territory_normalized({from}→{to})")
            }
        }
    }
}

/// Codes that are not (or not only) ISO countries, mapped to the country whose law applies.
/// `true` marks a territory, `false` a mere alias spelling.
static ALIASES: &[(&str, &str, bool)] = &[
    ("AX", "FI", true),
    ("EA", "ES", true),
    ("EL", "GR", false),
    ("GF", "FR", true),
    ("GP", "FR", true),
    ("IC", "ES", true),
    ("MF", "FR", true),
    ("MQ", "FR", true),
    ("RE", "FR", true),
    ("SJ", "NO", true),
    ("UK", "GB", false),
    ("XI", "GB", true),
    ("YT", "FR", true),
];

/// Codes for groups of countries or organisations: never a member's country.
static NOT_COUNTRIES: &[&str] = &["EU", "EZ", "UN", "XK"];

/// A normalised jurisdiction: a country, optionally a first-level subdivision (`US-CA`),
/// and what normalisation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jurisdiction {
    country: CountryCode,
    subdivision: Option<String>,
    note: Option<Normalization>,
}

impl Jurisdiction {
    /// A plain country.
    pub fn country_only(country: CountryCode) -> Jurisdiction {
        Jurisdiction {
            country,
            subdivision: None,
            note: None,
        }
    }

    /// Normalises a raw code: trims, upper-cases, accepts `CC` and `CC-SUB` (ISO 3166-2 style),
    /// maps aliases and territories, and refuses groups (`EU`) and garbage.
    pub fn normalize(raw: Option<&str>) -> Result<Jurisdiction, UnknownJurisdiction> {
        // Fast path for the common case, a clean upper-case ISO code: no allocation.
        if let Some(code) =
            raw.filter(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
            && !ALIASES
                .iter()
                .any(|(from, _, _)| code_key(from) == code_key(code))
            && !NOT_COUNTRIES.iter().any(|n| code_key(n) == code_key(code))
            && let Some(country) = CountryCode::new(code)
        {
            return Ok(Jurisdiction {
                country,
                subdivision: None,
                note: None,
            });
        }
        let raw = raw.map(str::trim).unwrap_or("");
        if raw.is_empty() {
            return Err(UnknownJurisdiction::Missing);
        }
        let upper = raw.to_ascii_uppercase();
        let (head, subdivision) = match upper.split_once('-') {
            Some((head, sub)) => {
                let valid_sub = !sub.is_empty()
                    && sub.len() <= 3
                    && sub.bytes().all(|b| b.is_ascii_alphanumeric());
                if !valid_sub {
                    return Err(UnknownJurisdiction::Invalid(raw.to_owned()));
                }
                (head, Some(sub.to_owned()))
            }
            None => (upper.as_str(), None),
        };
        if NOT_COUNTRIES.contains(&head) {
            return Err(UnknownJurisdiction::NotACountry(raw.to_owned()));
        }
        if let Some(&(from, to, territory)) = ALIASES.iter().find(|(from, _, _)| *from == head) {
            let to =
                CountryCode::new(to).ok_or_else(|| UnknownJurisdiction::Invalid(raw.into()))?;
            let from = from.to_owned();
            let note = if territory {
                Normalization::Territory { from, to }
            } else {
                Normalization::Alias { from, to }
            };
            // A subdivision of a territory code (e.g. `RE-xx`) has no meaning for the sovereign.
            return Ok(Jurisdiction {
                country: to,
                subdivision: None,
                note: Some(note),
            });
        }
        match CountryCode::new(head) {
            Some(country) => Ok(Jurisdiction {
                country,
                subdivision,
                note: None,
            }),
            None => Err(UnknownJurisdiction::Invalid(raw.to_owned())),
        }
    }

    /// The normalised ISO country.
    pub fn country(&self) -> CountryCode {
        self.country
    }

    /// The subdivision, e.g. `CA` for `US-CA`.
    pub fn subdivision(&self) -> Option<&str> {
        self.subdivision.as_deref()
    }

    /// What normalisation changed, if anything.
    pub fn note(&self) -> Option<&Normalization> {
        self.note.as_ref()
    }

    /// The regions this jurisdiction belongs to under `flags`.
    pub fn regions(&self, flags: RegionFlags) -> RegionSet {
        let mut set = RegionSet::EMPTY;
        let code = self.country.as_str();
        if EU_27.contains(&code) {
            set = set.with(Region::Eu).with(Region::Eea);
        }
        if EEA_ONLY.contains(&code) {
            set = set.with(Region::Eea);
        }
        if code == "GB"
            || (flags.gibraltar_as_uk && code == "GI")
            || (flags.crown_dependencies_as_uk && CROWN_DEPENDENCIES.contains(&code))
        {
            set = set.with(Region::Uk);
        }
        match code {
            "CH" => set = set.with(Region::Ch),
            "CA" => set = set.with(Region::Ca),
            "HK" => set = set.with(Region::Hk),
            "US" if self.subdivision() == Some("CA") => set = set.with(Region::UsCa),
            _ => {}
        }
        set
    }

    /// Explanation when a territory outside the UK counts as UK (`territory_mapped_uk_like`).
    pub fn uk_like_mapping(&self, flags: RegionFlags) -> Option<&'static str> {
        let code = self.country.as_str();
        let mapped = (flags.gibraltar_as_uk && code == "GI")
            || (flags.crown_dependencies_as_uk && CROWN_DEPENDENCIES.contains(&code));
        mapped.then_some("territory_mapped_uk_like")
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subdivision {
            Some(sub) => write!(f, "{}-{sub}", self.country),
            None => write!(f, "{}", self.country),
        }
    }
}

/// The 27 member states of the European Union.
pub const EU_27: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];
/// EEA members outside the EU.
pub const EEA_ONLY: [&str; 3] = ["IS", "LI", "NO"];
/// Jersey, Guernsey and the Isle of Man.
pub const CROWN_DEPENDENCIES: [&str; 3] = ["GG", "IM", "JE"];

/// Flags that decide how territories outside a regime's named regions are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RegionFlags {
    /// Count Gibraltar (`GI`) as UK. Default on (conservative: Gibraltar GDPR mirrors UK GDPR).
    pub gibraltar_as_uk: bool,
    /// Count Jersey, Guernsey and the Isle of Man as UK. Default on.
    pub crown_dependencies_as_uk: bool,
}

impl Default for RegionFlags {
    fn default() -> Self {
        RegionFlags {
            gibraltar_as_uk: true,
            crown_dependencies_as_uk: true,
        }
    }
}

/// A region that regimes name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Region {
    /// European Union (27 member states).
    #[serde(rename = "EU")]
    Eu,
    /// European Economic Area (EU + IS, LI, NO).
    #[serde(rename = "EEA")]
    Eea,
    /// United Kingdom (GB; plus GI and the Crown Dependencies under the default flags).
    #[serde(rename = "UK")]
    Uk,
    /// Switzerland.
    #[serde(rename = "CH")]
    Ch,
    /// Canada.
    #[serde(rename = "CA")]
    Ca,
    /// Hong Kong.
    #[serde(rename = "HK")]
    Hk,
    /// California (`US-CA`).
    #[serde(rename = "US-CA")]
    UsCa,
}

impl Region {
    /// Every region, in a stable order.
    pub const ALL: [Region; 7] = [
        Region::Eu,
        Region::Eea,
        Region::Uk,
        Region::Ch,
        Region::Ca,
        Region::Hk,
        Region::UsCa,
    ];

    /// The stable name (`EU`, `EEA`, `UK`, `CH`, `CA`, `HK`, `US-CA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Eu => "EU",
            Region::Eea => "EEA",
            Region::Uk => "UK",
            Region::Ch => "CH",
            Region::Ca => "CA",
            Region::Hk => "HK",
            Region::UsCa => "US-CA",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Region::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("`{s}` is not a region (expected one of EU, EEA, UK, CH, CA, HK, US-CA)")
            })
    }
}

/// A small set of regions (a bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionSet(u8);

impl RegionSet {
    /// No region.
    pub const EMPTY: RegionSet = RegionSet(0);

    /// Builds a set from a list.
    pub fn of(regions: &[Region]) -> RegionSet {
        regions.iter().fold(RegionSet::EMPTY, |s, r| s.with(*r))
    }

    /// This set plus `region`.
    #[must_use]
    pub fn with(self, region: Region) -> RegionSet {
        RegionSet(self.0 | region.bit())
    }

    /// Whether `region` is in the set.
    pub fn contains(self, region: Region) -> bool {
        self.0 & region.bit() != 0
    }

    /// Whether the two sets share a region.
    pub fn intersects(self, other: RegionSet) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The regions in stable order.
    pub fn iter(self) -> impl Iterator<Item = Region> {
        Region::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The region names, in stable order.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Region::as_str).collect()
    }

    /// The regions a report label is chosen from, most specific first.
    pub const REPORT_ORDER: [Region; 7] = [
        Region::Uk,
        Region::Ch,
        Region::Ca,
        Region::Hk,
        Region::UsCa,
        Region::Eu,
        Region::Eea,
    ];

    /// The most specific region label for reports: the first of [`RegionSet::REPORT_ORDER`]
    /// (UK, CH, CA, HK, US-CA, EU, EEA) the set holds, or `"ROW"` (rest of world) when none.
    pub fn report_label(self) -> &'static str {
        Self::REPORT_ORDER
            .into_iter()
            .find(|r| self.contains(*r))
            .map(Region::as_str)
            .unwrap_or("ROW")
    }
}

impl Serialize for RegionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(code: &str) -> Result<Jurisdiction, UnknownJurisdiction> {
        Jurisdiction::normalize(Some(code))
    }

    fn regions(code: &str) -> Vec<&'static str> {
        norm(code)
            .unwrap()
            .regions(RegionFlags::default())
            .iter()
            .map(Region::as_str)
            .collect()
    }

    #[test]
    fn iso_table_is_complete_sorted_and_unique() {
        assert_eq!(ISO_3166_1.len(), 249);
        assert!(ISO_3166_1.windows(2).all(|w| w[0].0 < w[1].0));
        // `iso_position` searches the codes as two-byte integers.
        assert!(ISO_3166_1.iter().all(|(c, _)| c.len() == 2));
        assert!(
            ALIASES
                .iter()
                .all(|(from, to, _)| from.len() == 2 && to.len() == 2)
        );
        assert!(NOT_COUNTRIES.iter().all(|c| c.len() == 2));
        assert_eq!(CountryCode::all().count(), 249);
        assert_eq!(CountryCode::new("DE").unwrap().name(), "Germany");
        for c in CountryCode::all() {
            assert_eq!(CountryCode::from_index(c.index()), Some(c));
        }
        assert_eq!(CountryCode::from_index(249), None);
        // Codes that are not in the table, or not two upper-case bytes, are not countries.
        for not_iso in ["ZZ", "AA", "de", "D", "DEU", "", "\u{e9}"] {
            assert_eq!(CountryCode::new(not_iso), None, "{not_iso:?}");
        }
        assert_eq!(CountryCode::new("ZW").map(|c| c.index()), Some(248));
        assert_eq!(CountryCode::new("AD").map(|c| c.index()), Some(0));
    }

    #[test]
    fn every_eu_and_eea_code_is_iso() {
        for c in EU_27.iter().chain(&EEA_ONLY).chain(&CROWN_DEPENDENCIES) {
            assert!(CountryCode::new(c).is_some(), "{c}");
        }
    }

    /// Every row of DOMAIN.md §5.2, the edge-territory table.
    #[test]
    fn territory_table_rows() {
        // Outermost regions of France → FR, EU.
        for code in ["GF", "GP", "MQ", "RE", "YT", "MF"] {
            let j = norm(code).unwrap();
            assert_eq!(j.country().as_str(), "FR", "{code}");
            assert!(
                matches!(j.note(), Some(Normalization::Territory { .. })),
                "{code}"
            );
            assert_eq!(regions(code), ["EU", "EEA"], "{code}");
        }
        // Canary Islands and Ceuta & Melilla → ES.
        for code in ["IC", "EA"] {
            assert_eq!(norm(code).unwrap().country().as_str(), "ES");
            assert_eq!(regions(code), ["EU", "EEA"]);
        }
        // Åland → FI.
        assert_eq!(norm("AX").unwrap().country().as_str(), "FI");
        assert_eq!(regions("AX"), ["EU", "EEA"]);
        // Saint-Barthélemy: an OCT since 2012, not EU.
        assert_eq!(norm("BL").unwrap().country().as_str(), "BL");
        assert!(regions("BL").is_empty());
        // OCTs and Greenland: not EU.
        for code in ["PM", "NC", "PF", "WF", "TF", "AW", "CW", "SX", "BQ", "GL"] {
            assert!(regions(code).is_empty(), "{code}");
        }
        // Faroe Islands: third country, does not inherit DK.
        assert!(regions("FO").is_empty());
        // Gibraltar and the Crown Dependencies: UK-like under the default flags.
        for code in ["GI", "JE", "GG", "IM"] {
            assert_eq!(regions(code), ["UK"], "{code}");
            let j = norm(code).unwrap();
            assert_eq!(
                j.uk_like_mapping(RegionFlags::default()),
                Some("territory_mapped_uk_like")
            );
        }
        // ... and their own when the flags are off.
        let off = RegionFlags {
            gibraltar_as_uk: false,
            crown_dependencies_as_uk: false,
        };
        for code in ["GI", "JE", "GG", "IM"] {
            assert!(norm(code).unwrap().regions(off).is_empty(), "{code}");
            assert_eq!(norm(code).unwrap().uk_like_mapping(off), None);
        }
        let only_gi = RegionFlags {
            gibraltar_as_uk: true,
            crown_dependencies_as_uk: false,
        };
        assert!(norm("GI").unwrap().regions(only_gi).contains(Region::Uk));
        assert!(!norm("JE").unwrap().regions(only_gi).contains(Region::Uk));
        // Northern Ireland's XI → GB.
        assert_eq!(norm("XI").unwrap().country().as_str(), "GB");
        assert_eq!(regions("XI"), ["UK"]);
        // Svalbard & Jan Mayen → NO (conservative), EEA but not EU.
        assert_eq!(norm("SJ").unwrap().country().as_str(), "NO");
        assert_eq!(regions("SJ"), ["EEA"]);
        // EU-style and reserved codes.
        assert_eq!(norm("EL").unwrap().country().as_str(), "GR");
        assert!(matches!(
            norm("EL").unwrap().note(),
            Some(Normalization::Alias { .. })
        ));
        assert_eq!(norm("UK").unwrap().country().as_str(), "GB");
        assert_eq!(
            norm("EU"),
            Err(UnknownJurisdiction::NotACountry("EU".into()))
        );
    }

    #[test]
    fn explanations_name_the_mapping() {
        assert_eq!(
            norm("RE").unwrap().note().unwrap().to_string(),
            "territory_normalized(RE→FR)"
        );
        assert_eq!(
            norm("IC").unwrap().note().unwrap().to_string(),
            "territory_normalized(IC→ES)"
        );
        assert_eq!(
            norm("UK").unwrap().note().unwrap().to_string(),
            "territory_normalized(UK→GB)"
        );
        assert_eq!(norm("DE").unwrap().note(), None);
    }

    #[test]
    fn core_sets() {
        for c in EU_27 {
            assert_eq!(regions(c), ["EU", "EEA"], "{c}");
        }
        for c in EEA_ONLY {
            assert_eq!(regions(c), ["EEA"], "{c}");
        }
        assert_eq!(regions("GB"), ["UK"]);
        assert_eq!(regions("CH"), ["CH"]);
        assert_eq!(regions("CA"), ["CA"]);
        assert_eq!(regions("HK"), ["HK"]);
        assert!(regions("US").is_empty());
        assert_eq!(regions("US-CA"), ["US-CA"]);
        assert!(regions("US-NY").is_empty());
        assert!(regions("DK").contains(&"EU"));
    }

    #[test]
    fn forgiving_spelling_and_garbage() {
        assert_eq!(norm(" de ").unwrap().country().as_str(), "DE");
        assert_eq!(norm("us-ca").unwrap().to_string(), "US-CA");
        assert_eq!(
            Jurisdiction::normalize(None),
            Err(UnknownJurisdiction::Missing)
        );
        assert_eq!(norm("  "), Err(UnknownJurisdiction::Missing));
        for bad in [
            "XX",
            "ZZ",
            "D",
            "DEU",
            "12",
            "??",
            "Ü",
            "US-",
            "US-TOOLONG",
            "EU-DE",
        ] {
            assert!(norm(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            norm("EU-DE"),
            Err(UnknownJurisdiction::NotACountry(_))
        ));
    }

    #[test]
    fn region_names_round_trip() {
        for r in Region::ALL {
            assert_eq!(r.as_str().parse::<Region>().unwrap(), r);
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("Mars".parse::<Region>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn normalize_never_panics_and_yields_iso(s in ".{0,8}") {
            if let Ok(j) = Jurisdiction::normalize(Some(&s)) {
                proptest::prop_assert!(CountryCode::new(j.country().as_str()).is_some());
            }
        }
    }
}
