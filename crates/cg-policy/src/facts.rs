//! What the gate knows about one content item, and the attribute tuple it is decided on.
//!
//! [`ItemFacts`] are raw facts (codes as the input carries them, birth date, the as-of consent
//! state, erasure and notice times). [`Tuple`] is their discrete summary for one residence: the
//! regime, jurisdiction class, capped ages, kind, consent class, GPC, erasure and notice state.
//! A tuple packs into a `u64` key, so a memoised decision costs one hash lookup.

use cg_model::age::{age_at, consent_age};
use cg_model::{ConsentState, CountryCode, Jurisdiction, RegionSet, Timestamp};
use time::Date;

use crate::config::PolicyConfig;

/// One member's facts as one item sees them: the raw countries at the item's creation and at
/// the cut-off, and the rest of [`cg_model::MemberFacts`]. What `explain` and the reference
/// evaluator take; made from the model by [`MemberView::of`].
#[derive(Clone, Debug, Default)]
pub struct MemberView<'a> {
    /// Raw country code at the content's creation.
    pub country_at_creation: Option<&'a str>,
    /// Raw country code at the cut-off.
    pub country_at_cutoff: Option<&'a str>,
    /// Birth date, if known.
    pub birth_date: Option<Date>,
    /// Consent state for the purpose, as of the cut-off.
    pub consent: ConsentState,
    /// Whether the member granted another purpose (and nothing for this one), as of the cut-off.
    pub other_purpose_grant: bool,
    /// The earliest erasure request or account closure, if any.
    pub erased_at: Option<Timestamp>,
    /// When the notice was delivered, if ever.
    pub notice_delivered_at: Option<Timestamp>,
}

impl<'a> MemberView<'a> {
    /// The view of `m` for an item created at `created_at`, decided as of `as_of`.
    pub fn of(
        m: &'a cg_model::MemberFacts,
        created_at: Timestamp,
        as_of: Timestamp,
    ) -> MemberView<'a> {
        MemberView {
            country_at_creation: m.country_at(created_at),
            country_at_cutoff: m.country_at(as_of),
            birth_date: m.birth_date,
            consent: m.consent.clone(),
            other_purpose_grant: m.other_purpose_grant,
            erased_at: m.erased_at(),
            notice_delivered_at: m.notice_at,
        }
    }
}

/// The raw facts about one content item.
#[derive(Clone, Debug)]
pub struct ItemFacts<'a> {
    /// The content kind.
    pub kind: &'a str,
    /// When it was created.
    pub created_at: Timestamp,
    /// The author, or `None` when the author is not in the members input.
    pub member: Option<MemberView<'a>>,
}

/// Consent classes as the policy schema names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentClass {
    /// No event for this purpose.
    None = 0,
    /// A grant under an accepted notice version.
    Granted = 1,
    /// A grant under a notice version the config does not accept.
    GrantedOtherNotice = 2,
    /// No event for this purpose, but a grant for another.
    OtherPurpose = 3,
    /// Withdrawn, opted out or objected.
    Denied = 4,
}

impl ConsentClass {
    /// The schema's string.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentClass::None => "none",
            ConsentClass::Granted => "granted",
            ConsentClass::GrantedOtherNotice => "granted_other_notice",
            ConsentClass::OtherPurpose => "other_purpose",
            ConsentClass::Denied => "denied",
        }
    }

    /// Classifies an as-of state under `config`.
    pub fn of(
        state: &ConsentState,
        other_purpose_grant: bool,
        config: &PolicyConfig,
    ) -> ConsentClass {
        match &state.explicit {
            None if other_purpose_grant => ConsentClass::OtherPurpose,
            None => ConsentClass::None,
            Some(c) if !c.granted => ConsentClass::Denied,
            Some(c) if config.accepts_notice(c.notice_version.as_deref()) => ConsentClass::Granted,
            Some(_) => ConsentClass::GrantedOtherNotice,
        }
    }

    fn from_bits(b: u64) -> ConsentClass {
        match b {
            1 => ConsentClass::Granted,
            2 => ConsentClass::GrantedOtherNotice,
            3 => ConsentClass::OtherPurpose,
            4 => ConsentClass::Denied,
            _ => ConsentClass::None,
        }
    }
}

/// Notice state at the cut-off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeState {
    /// Never delivered (or delivered after the cut-off).
    None = 0,
    /// Delivered, but the window has not elapsed.
    InWindow = 1,
    /// Delivered and the window has elapsed.
    Elapsed = 2,
}

impl NoticeState {
    /// The schema's string.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeState::None => "none",
            NoticeState::InWindow => "in_window",
            NoticeState::Elapsed => "elapsed",
        }
    }

    /// The state at `as_of` for a notice delivered at `delivered`, with a window of `days`.
    pub fn of(delivered: Option<Timestamp>, as_of: Timestamp, days: u32) -> NoticeState {
        match delivered {
            Some(d) if d <= as_of => {
                if d.plus_days(i64::from(days)) <= as_of {
                    NoticeState::Elapsed
                } else {
                    NoticeState::InWindow
                }
            }
            _ => NoticeState::None,
        }
    }

    fn from_bits(b: u64) -> NoticeState {
        match b {
            1 => NoticeState::InWindow,
            2 => NoticeState::Elapsed,
            _ => NoticeState::None,
        }
    }
}

/// The discrete attributes one decision depends on (one residence of one item).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Index of the regime in the policy's regime list.
    pub regime: u8,
    /// A pinned regime used before its first day.
    pub not_yet_effective: bool,
    /// Normalised country, `None` if unknown.
    pub country: Option<CountryCode>,
    /// Regions of the jurisdiction.
    pub regions: RegionSet,
    /// National age of digital consent for the jurisdiction.
    pub consent_age: u8,
    /// Whether the birth date is known.
    pub age_known: bool,
    /// Age at creation, in `-1..=cap` (-1: created before the birth date, bad data).
    pub age_at_creation: i8,
    /// Age at the cut-off, in `-1..=cap`.
    pub age_now: i8,
    /// Interned content kind.
    pub kind: u8,
    /// Consent class.
    pub consent: ConsentClass,
    /// A GPC signal after the last explicit choice.
    pub gpc_signal: bool,
    /// Erased or closed on or before the cut-off.
    pub erased: bool,
    /// Notice state.
    pub notice: NoticeState,
}

impl Tuple {
    /// Packs the tuple into 64 bits (injective for every field's range).
    pub fn key(&self) -> u64 {
        member_bits(
            self.regime,
            self.not_yet_effective,
            self.age_known,
            self.age_now,
            self.consent,
            self.gpc_signal,
            self.erased,
            self.notice,
        ) | jurisdiction_bits(self.country, self.regions, self.consent_age)
            | item_bits(self.age_at_creation, self.kind)
    }

    /// Unpacks a key made by [`Tuple::key`].
    pub fn from_key(key: u64) -> Tuple {
        let country = ((key >> 14) & 0x1ff) as u16;
        let regions = cg_model::Region::ALL
            .into_iter()
            .filter(|r| (key >> 7) & (1 << *r as u64) != 0)
            .fold(RegionSet::EMPTY, RegionSet::with);
        Tuple {
            regime: (key & 0x3f) as u8,
            not_yet_effective: (key >> 6) & 1 == 1,
            regions,
            country: country.checked_sub(1).and_then(CountryCode::from_index),
            age_known: (key >> 23) & 1 == 1,
            age_at_creation: ((key >> 24) & 0x1f) as i8 - 1,
            age_now: ((key >> 29) & 0x1f) as i8 - 1,
            kind: ((key >> 34) & 0xff) as u8,
            consent: ConsentClass::from_bits((key >> 42) & 0x7),
            gpc_signal: (key >> 45) & 1 == 1,
            erased: (key >> 46) & 1 == 1,
            notice: NoticeState::from_bits((key >> 47) & 0x3),
            consent_age: ((key >> 49) & 0x1f) as u8,
        }
    }
}

/// The member's part of a tuple key: the same for every item of the member at one cut-off.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per tuple field, packed in one place"
)]
pub(crate) fn member_bits(
    regime: u8,
    not_yet_effective: bool,
    age_known: bool,
    age_now: i8,
    consent: ConsentClass,
    gpc_signal: bool,
    erased: bool,
    notice: NoticeState,
) -> u64 {
    u64::from(regime & 0x3f)
        | u64::from(not_yet_effective) << 6
        | u64::from(age_known) << 23
        | pack_age(age_now) << 29
        | (consent as u64) << 42
        | u64::from(gpc_signal) << 45
        | u64::from(erased) << 46
        | (notice as u64) << 47
}

/// The jurisdiction's part of a tuple key.
pub(crate) fn jurisdiction_bits(
    country: Option<CountryCode>,
    regions: RegionSet,
    consent_age: u8,
) -> u64 {
    let country = country.map_or(0, |c| u64::from(c.index()) + 1);
    let regions = regions.iter().fold(0u64, |acc, r| acc | 1 << r as u64);
    regions << 7 | (country & 0x1ff) << 14 | u64::from(consent_age & 0x1f) << 49
}

/// The item's part of a tuple key: age at creation and kind.
#[inline]
pub(crate) fn item_bits(age_at_creation: i8, kind: u8) -> u64 {
    pack_age(age_at_creation) << 24 | u64::from(kind) << 34
}

/// The jurisdiction-dependent part of a tuple.
pub(crate) struct JurisdictionClass {
    pub country: Option<CountryCode>,
    pub regions: RegionSet,
    pub consent_age: u8,
}

pub(crate) fn classify(
    raw: Option<&str>,
    config: &PolicyConfig,
) -> (JurisdictionClass, Option<Jurisdiction>) {
    match Jurisdiction::normalize(raw) {
        Ok(j) => (
            JurisdictionClass {
                country: Some(j.country()),
                regions: j.regions(config.region_flags()),
                consent_age: consent_age(&j),
            },
            Some(j),
        ),
        Err(_) => (
            JurisdictionClass {
                country: None,
                regions: RegionSet::EMPTY,
                consent_age: cg_model::age::DEFAULT_CONSENT_AGE,
            },
            None,
        ),
    }
}

/// Age at `at`, clamped to `-1..=cap`: every negative age (an item dated before the birth date)
/// stays negative, so it fails every minimum-age test as the exact age would.
pub(crate) fn capped_age(birth: Date, at: Timestamp, cap: u8) -> i8 {
    age_at(birth, at).clamp(-1, i32::from(cap)) as i8
}

/// Ages are packed as `age + 1` in 5 bits (`-1..=30`).
#[inline]
fn pack_age(age: i8) -> u64 {
    (i64::from(age) + 1).clamp(0, 31) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn notice_states() {
        let t = |s| Timestamp::parse(s).unwrap();
        assert_eq!(NoticeState::of(None, t("2025-11-10"), 0), NoticeState::None);
        assert_eq!(
            NoticeState::of(Some(t("2025-12-01")), t("2025-11-10"), 0),
            NoticeState::None
        );
        assert_eq!(
            NoticeState::of(Some(t("2025-11-01")), t("2025-11-10"), 0),
            NoticeState::Elapsed
        );
        assert_eq!(
            NoticeState::of(Some(t("2025-11-01")), t("2025-11-10"), 30),
            NoticeState::InWindow
        );
    }

    fn arb_tuple() -> impl Strategy<Value = Tuple> {
        (
            (
                0u8..64,
                any::<bool>(),
                proptest::option::of(0u16..249),
                0u8..128,
                13u8..=16,
            ),
            (
                any::<bool>(),
                -1i8..31,
                -1i8..31,
                any::<u8>(),
                0u8..5,
                any::<bool>(),
                any::<bool>(),
                0u8..3,
            ),
        )
            .prop_map(
                |(
                    (regime, nye, country, regions, consent_age),
                    (known, a, b, kind, consent, gpc, erased, notice),
                )| {
                    let regions = cg_model::Region::ALL
                        .into_iter()
                        .filter(|r| regions & (1 << *r as u8) != 0)
                        .fold(RegionSet::EMPTY, RegionSet::with);
                    Tuple {
                        regime,
                        not_yet_effective: nye,
                        country: country.and_then(CountryCode::from_index),
                        regions,
                        consent_age,
                        age_known: known,
                        age_at_creation: a,
                        age_now: b,
                        kind,
                        consent: ConsentClass::from_bits(u64::from(consent)),
                        gpc_signal: gpc,
                        erased,
                        notice: NoticeState::from_bits(u64::from(notice)),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn keys_round_trip(t in arb_tuple()) {
            prop_assert_eq!(Tuple::from_key(t.key()), t);
        }
    }
}
