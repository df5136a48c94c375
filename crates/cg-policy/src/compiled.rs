//! The compiled decision engine: the one way every path decides (`build`, `rebuild`,
//! `policy impact`, `impact`, `/v1/check`, the privacy page).
//!
//! Deciding an item splits into three layers, each computed once at its own scope:
//!
//! 1. [`DecisionMemo`] — one per policy and purpose: Cedar decides each distinct attribute
//!    [`Tuple`] once; the verdict is kept as its self-describing `u32` code. Shared by every
//!    cut-off (a tuple already carries everything the cut-off changes: regime, ages, erasure,
//!    notice state).
//! 2. [`Engine`] — one per cut-off: the regime in force and the constants of the tuple.
//!    [`Engine::compile`] turns a member's [`MemberFacts`] into a [`CompiledMember`]: the
//!    member's part of the tuple key (consent class, GPC, erasure, notice, age now), the
//!    jurisdiction class at each residence change and at the cut-off, and the instant from which
//!    the member's age is capped. Countries are normalised once per member, not per item.
//! 3. [`Decider`] — one per thread or batch: a private cache of tuple key → verdict code in
//!    front of the shared memo. Deciding an item is a residence lookup, an age from a
//!    precomputed instant, an OR of bits and a hash lookup; no lock is taken once the decider
//!    has seen the tuple.
//!
//! The reference is [`Policy::evaluate_direct`] (Cedar on raw facts, exact ages): tests compare
//! the engine with it.

use std::sync::{Arc, Mutex};

use cg_model::{Decision, MemberFacts, Purpose, ReasonCode, Timestamp, Verdict};
use rustc_hash::FxHashMap;
use time::{Date, Month};

use crate::engine::{EvalContext, Policy};
use crate::facts::{
    ConsentClass, ItemFacts, MemberView, NoticeState, Tuple, capped_age, classify, item_bits,
    jurisdiction_bits, member_bits,
};

/// Verdict codes of one policy and purpose, per tuple key; shared by every cut-off.
#[derive(Debug)]
pub struct DecisionMemo {
    policy: Arc<Policy>,
    purpose: Purpose,
    codes: Mutex<FxHashMap<u64, u32>>,
    /// This memo's identity for [`DeciderCache`]s: from a process-wide counter, never reused
    /// (an address could be, once the memo is dropped and another allocated in its place).
    id: u64,
    /// [`packed_jurisdiction`] of every two-upper-case-letter string, by [`clean_code_slot`]:
    /// what nearly every member's country is, answered without normalising it again.
    clean_codes: Box<[u32; CLEAN_CODES]>,
}

/// Strings of two ASCII upper-case letters.
const CLEAN_CODES: usize = 26 * 26;

/// The slot of a raw country that is two ASCII upper-case letters (`None` for anything else,
/// which is normalised each time).
#[inline]
fn clean_code_slot(raw: &str) -> Option<usize> {
    match raw.as_bytes() {
        [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
            Some(usize::from(a - b'A') * 26 + usize::from(b - b'A'))
        }
        _ => None,
    }
}

/// The packed jurisdiction bits of a raw country under a policy: normalised, then its regions
/// and age of digital consent. A policy that does not read the country itself
/// ([`Policy::reads_country`]) sees every known country as the first of ISO 3166's table with
/// the regions and age of the real one, so countries that imply the same are one tuple for
/// Cedar instead of one each (whether the country is known is never changed).
fn packed_jurisdiction(raw: Option<&str>, policy: &Policy) -> u32 {
    let (j, _) = classify(raw, policy.config());
    let country = if policy.reads_country() {
        j.country
    } else {
        j.country
            .map(|c| cg_model::CountryCode::from_index(0).unwrap_or(c))
    };
    pack_jurisdiction(jurisdiction_bits(country, j.regions, j.consent_age))
}

impl DecisionMemo {
    /// An empty memo for `policy` and `purpose`.
    pub fn new(policy: Arc<Policy>, purpose: Purpose) -> Arc<DecisionMemo> {
        let mut clean_codes = Box::new([0; CLEAN_CODES]);
        for (slot, packed) in clean_codes.iter_mut().enumerate() {
            let code = [b'A' + (slot / 26) as u8, b'A' + (slot % 26) as u8];
            let raw = std::str::from_utf8(&code).ok();
            *packed = packed_jurisdiction(raw, &policy);
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Arc::new(DecisionMemo {
            policy,
            purpose,
            codes: Mutex::new(FxHashMap::default()),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            clean_codes,
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The purpose.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// The engine for a cut-off.
    pub fn at(self: &Arc<Self>, as_of: Timestamp) -> Engine {
        let regime = self.policy.regime_at(as_of);
        let cap = self.policy.config().age_cap();
        Engine {
            memo: Arc::clone(self),
            as_of,
            regime: regime.map(|(i, nye)| (i as u8, nye)),
            cap,
            post_kind: self.policy.kind_index("post"),
        }
    }

    /// Distinct tuples Cedar has decided so far.
    pub fn len(&self) -> usize {
        self.codes.lock().map_or(0, |m| m.len())
    }

    /// Whether Cedar has decided nothing yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verdict code of a tuple key: from the memo, or decided by Cedar and remembered. A
    /// poisoned memo is not trusted: the tuple is decided again (never guessed).
    fn code(&self, key: u64) -> u32 {
        if let Some(code) = self.codes.lock().ok().and_then(|m| m.get(&key).copied()) {
            return code;
        }
        let code = self
            .policy
            .evaluate_tuple(&Tuple::from_key(key), &self.purpose)
            .verdict
            .code();
        if let Ok(mut m) = self.codes.lock() {
            m.insert(key, code);
        }
        code
    }
}

/// The engine for one policy, purpose and cut-off.
#[derive(Clone, Debug)]
pub struct Engine {
    memo: Arc<DecisionMemo>,
    as_of: Timestamp,
    regime: Option<(u8, bool)>,
    cap: u8,
    post_kind: u8,
}

/// What the engine precomputed about one member: 32 bytes, so a build's members stay dense in
/// cache (deciding in random member order is bound by loading this line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledMember {
    /// The member's part of every tuple key (regime, consent, GPC, erasure, notice, age now);
    /// bit 63 (never part of a key) says an erasure request is on record.
    member: u64,
    /// Jurisdiction bits of the members row's country (before the first residence entry),
    /// packed ([`pack_jurisdiction`]).
    base: u32,
    /// Packed jurisdiction bits at the cut-off.
    cutoff: u32,
    /// Residence changes `(valid_from µs, packed jurisdiction bits)`, sorted; `None` for the
    /// many members who never moved.
    changes: Option<Box<Changes>>,
    /// Birth date, packed ([`Birth::pack`]); [`NO_BIRTH`] when unknown.
    birth: i32,
    /// From this day (since the epoch) on the member's age is at least the cap.
    capped_from_day: i32,
}

/// A member's residence changes `(valid_from µs, packed jurisdiction bits)`, behind one thin
/// pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Changes(Vec<(i64, u32)>);

/// Bit 63 of [`CompiledMember::member`]: an erasure request on or before the cut-off.
const ERASURE_REQUESTED: u64 = 1 << 63;
/// [`CompiledMember::birth`] when the birth date is unknown.
const NO_BIRTH: i32 = i32::MIN;

/// Jurisdiction bits (regions 7–13, country 14–22, consent age 49–53 of a key) in 32 bits.
fn pack_jurisdiction(bits: u64) -> u32 {
    (((bits >> 7) & 0xFFFF) | ((bits >> 49) & 0x1F) << 16) as u32
}

/// The key bits of [`pack_jurisdiction`].
#[inline]
fn unpack_jurisdiction(packed: u32) -> u64 {
    let p = u64::from(packed);
    (p & 0xFFFF) << 7 | (p >> 16) << 49
}

impl CompiledMember {
    /// Packed jurisdiction bits at an instant.
    #[inline]
    fn jurisdiction_at(&self, at: i64) -> u32 {
        let Some(changes) = &self.changes else {
            return self.base;
        };
        match changes.0.partition_point(|(from, _)| *from <= at) {
            0 => self.base,
            i => changes.0[i - 1].1,
        }
    }

    /// Whether the member asked for erasure on or before the cut-off (their rows are then not
    /// even recorded by id).
    pub fn erasure_requested(&self) -> bool {
        self.member & ERASURE_REQUESTED != 0
    }
}

impl Engine {
    /// An engine with a fresh memo (one build, one report).
    pub fn new(policy: Arc<Policy>, purpose: Purpose, as_of: Timestamp) -> Engine {
        DecisionMemo::new(policy, purpose).at(as_of)
    }

    /// The cut-off.
    pub fn as_of(&self) -> Timestamp {
        self.as_of
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.memo.policy
    }

    /// The purpose.
    pub fn purpose(&self) -> &Purpose {
        &self.memo.purpose
    }

    /// The memo (to share with engines at other cut-offs).
    pub fn memo(&self) -> &Arc<DecisionMemo> {
        &self.memo
    }

    /// The kind's index in tuples (unknown kinds share one index, which no policy includes).
    pub fn kind(&self, kind: &str) -> u8 {
        self.memo.policy.kind_index(kind)
    }

    /// Precomputes what can be about a member.
    pub fn compile(&self, m: &MemberFacts) -> CompiledMember {
        let policy = &self.memo.policy;
        let config = policy.config();
        let jbits = |raw: Option<&str>| match raw.and_then(clean_code_slot) {
            Some(slot) => self.memo.clean_codes[slot],
            None => packed_jurisdiction(raw, policy),
        };
        let (age_known, age_now, capped_from_day) = match m.birth_date {
            Some(b) => (
                true,
                capped_age(b, self.as_of, self.cap),
                cg_model::instant::date_to_days(turns(b, self.cap).date()),
            ),
            None => (false, 0, i32::MIN),
        };
        let (regime, nye) = self.regime.unwrap_or((0, false));
        let erased_at = m.erased_at();
        let mut member = member_bits(
            regime,
            nye,
            age_known,
            age_now,
            ConsentClass::of(&m.consent, m.other_purpose_grant, config),
            m.consent.gpc_signal.is_some(),
            erased_at.is_some_and(|t| t <= self.as_of),
            NoticeState::of(m.notice_at, self.as_of, config.notice_window_days),
        );
        if m.erasure_requested_at.is_some_and(|t| t <= self.as_of) {
            member |= ERASURE_REQUESTED;
        }
        let changes = (!m.residences.is_empty()).then(|| {
            Box::new(Changes(
                m.residences
                    .iter()
                    .map(|(from, c)| (from.micros(), jbits(c.as_deref())))
                    .collect(),
            ))
        });
        CompiledMember {
            member,
            base: jbits(m.country.as_deref()),
            cutoff: jbits(m.country_at(self.as_of)),
            changes,
            birth: m.birth_date.map_or(NO_BIRTH, |d| Birth::of(d).pack()),
            capped_from_day,
        }
    }

    /// A decider with its own cache (one per thread or batch).
    pub fn decider(&self) -> Decider<'_> {
        self.decider_with(DeciderCache::default())
    }

    /// A decider starting from the cache an earlier decider of this engine's memo left
    /// ([`Decider::into_cache`]): a caller deciding batch after batch keeps what each batch
    /// learnt instead of asking the shared memo (and its lock) again.
    /// A cache from a decider of another memo (another policy or purpose) is not used.
    pub fn decider_with(&self, cache: DeciderCache) -> Decider<'_> {
        let local = if cache.memo == self.memo_id() {
            cache.codes
        } else {
            FxHashMap::default()
        };
        Decider {
            engine: self,
            local,
        }
    }

    /// Which memo this engine decides with ([`DecisionMemo::id`]: engines of one memo share it).
    fn memo_id(&self) -> u64 {
        self.memo.id
    }

    /// The full evaluation context (for explanations).
    pub fn context(&self) -> EvalContext {
        EvalContext {
            purpose: self.memo.purpose.clone(),
            as_of: self.as_of,
        }
    }

    /// The item view of a member's facts the reference evaluator and `explain` take.
    pub fn item<'a>(
        &self,
        member: Option<&'a MemberFacts>,
        kind: &'a str,
        created_at: Timestamp,
    ) -> ItemFacts<'a> {
        ItemFacts {
            kind,
            created_at,
            member: member.map(|m| MemberView::of(m, created_at, self.as_of)),
        }
    }
}

/// A birth date as whole-year age arithmetic needs it: the year, and the birthday's month and
/// day (29 February counts as 1 March in common years, as [`cg_model::age::age_at`] says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Birth {
    year: i32,
    month: u8,
    day: u8,
}

impl Birth {
    fn of(d: Date) -> Birth {
        Birth {
            year: d.year(),
            month: d.month() as u8,
            day: d.day(),
        }
    }

    /// `year << 9 | month << 5 | day`.
    fn pack(self) -> i32 {
        self.year << 9 | i32::from(self.month) << 5 | i32::from(self.day)
    }

    fn unpack(p: i32) -> Birth {
        Birth {
            year: p >> 9,
            month: ((p >> 5) & 0xF) as u8,
            day: (p & 0x1F) as u8,
        }
    }

    /// Whole years of age on day `day` (since the epoch, UTC): the calendar date from the day
    /// count (Hinnant's `civil_from_days`), then one comparison with the birthday that year.
    #[inline]
    fn age_at_day(self, day: i64) -> i32 {
        let (year, month, day) = civil_from_days(day);
        let (bm, bd) = if self.month == 2 && self.day == 29 && !is_leap(year) {
            (3, 1)
        } else {
            (self.month, self.day)
        };
        let years = year - self.year;
        if (month, day) < (bm, bd) {
            years - 1
        } else {
            years
        }
    }
}

fn is_leap(y: i32) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// The proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01.
#[inline]
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// The day a person born on `birth` turns `age` (29 February counts as 1 March), at 00:00 UTC.
fn turns(birth: Date, age: u8) -> Timestamp {
    let year = birth.year() + i32::from(age);
    let day = Date::from_calendar_date(year, birth.month(), birth.day())
        .or_else(|_| Date::from_calendar_date(year, Month::March, 1))
        .unwrap_or(Date::MAX);
    Timestamp::at_midnight(day)
}

/// Decides items; owns a cache of the tuples it has seen.
#[derive(Debug)]
pub struct Decider<'e> {
    engine: &'e Engine,
    local: FxHashMap<u64, u32>,
}

/// A [`Decider`]'s cache of tuple key → verdict code, kept from one decider to the next
/// ([`Engine::decider_with`]). It says which [`DecisionMemo`] its codes came from: a tuple's
/// code does not depend on the cut-off but does on the policy and purpose, so an engine of
/// another memo starts afresh instead of using it.
#[derive(Debug, Default)]
pub struct DeciderCache {
    /// [`Engine::memo_id`] of the decider that filled it (0: none; memos count from 1).
    memo: u64,
    codes: FxHashMap<u64, u32>,
}

impl Decider<'_> {
    /// The tuples this decider has learnt, for the next one ([`Engine::decider_with`]).
    pub fn into_cache(self) -> DeciderCache {
        DeciderCache {
            memo: self.engine.memo_id(),
            codes: self.local,
        }
    }

    /// The verdict code of an item by `member` (`None`: not in the members input), of kind
    /// index `kind` (see [`Engine::kind`]), created at `created_at`.
    #[inline]
    pub fn decide(
        &mut self,
        member: Option<&CompiledMember>,
        kind: u8,
        created_at: Timestamp,
    ) -> u32 {
        let e = self.engine;
        if created_at > e.as_of {
            return code_of(ReasonCode::AfterCutoff);
        }
        let Some(m) = member else {
            return code_of(ReasonCode::MemberUnknown);
        };
        if e.regime.is_none() {
            return code_of(ReasonCode::PolicyError);
        }
        let at = created_at.micros();
        let age = if m.birth == NO_BIRTH {
            0
        } else {
            let day = at.div_euclid(86_400_000_000);
            if day >= i64::from(m.capped_from_day) {
                e.cap as i8
            } else {
                Birth::unpack(m.birth)
                    .age_at_day(day)
                    .clamp(-1, i32::from(e.cap)) as i8
            }
        };
        let key = (m.member & !ERASURE_REQUESTED) | item_bits(age, kind);
        let j = m.jurisdiction_at(at);
        let first = self.lookup(key | unpack_jurisdiction(j));
        if j == m.cutoff {
            return first;
        }
        most_protective_code(first, self.lookup(key | unpack_jurisdiction(m.cutoff)))
    }

    /// [`Decider::decide`] as a [`Verdict`].
    pub fn verdict(
        &mut self,
        member: Option<&CompiledMember>,
        kind: u8,
        created_at: Timestamp,
    ) -> Verdict {
        verdict_of(self.decide(member, kind, created_at))
    }

    /// Whether a member is excluded for the purpose at the cut-off: a post of theirs made now
    /// would be. Unknown members are excluded (their consent cannot be shown).
    pub fn member_excluded(&mut self, member: Option<&CompiledMember>) -> bool {
        let (kind, at) = (self.engine.post_kind, self.engine.as_of);
        decision_of(self.decide(member, kind, at)) == Decision::Exclude
    }

    #[inline]
    fn lookup(&mut self, key: u64) -> u32 {
        if let Some(code) = self.local.get(&key) {
            return *code;
        }
        let code = self.engine.memo.code(key);
        self.local.insert(key, code);
        code
    }
}

/// The code of a one-reason exclusion.
fn code_of(reason: ReasonCode) -> u32 {
    Verdict::exclude(reason).code()
}

/// The decision a verdict code carries (codes come from [`Verdict::code`]; anything else reads
/// as exclude).
pub fn decision_of(code: u32) -> Decision {
    Verdict::decision_of_code(code).unwrap_or(Decision::Exclude)
}

/// The verdict of a code; a code no verdict has is a `policy_error` exclusion (fail closed).
pub fn verdict_of(code: u32) -> Verdict {
    Verdict::from_code(code).unwrap_or_else(|| Verdict::exclude(ReasonCode::PolicyError))
}

/// The most protective of two verdict codes, as [`crate::most_protective`] decides between two
/// outcomes: the more restrictive decision; between two exclusions the union of their reasons;
/// between equally kept outcomes the first.
pub fn most_protective_code(a: u32, b: u32) -> u32 {
    let (da, db) = (decision_of(a), decision_of(b));
    match da.cmp(&db) {
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Greater => a,
        std::cmp::Ordering::Equal if da == Decision::Exclude => a | b,
        std::cmp::Ordering::Equal => a,
    }
}

/// A kept verdict with `mention_redacted` added (the text names an excluded member).
pub fn with_mention_redacted(code: u32) -> u32 {
    let v = verdict_of(code);
    if !v.decision().is_kept() {
        return code;
    }
    let mut reasons = v.reasons().to_vec();
    reasons.push(ReasonCode::MentionRedacted);
    Verdict::from_reasons(reasons).code()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cg_model::age::age_at;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_age_agrees_with_age_at(days in -30_000i32..20_000, at in -2_000_000_000i64..4_000_000_000) {
            let birth = cg_model::instant::days_to_date(days).unwrap();
            let at = Timestamp::from_micros(at * 1_000_000);
            let day = at.micros().div_euclid(86_400_000_000);
            prop_assert_eq!(Birth::unpack(Birth::of(birth).pack()), Birth::of(birth));
            prop_assert_eq!(Birth::of(birth).age_at_day(day), age_at(birth, at));
        }

        #[test]
        fn leap_day_birthdays(year in 1904i32..2096, offset in -2i64..3) {
            let leap = (year / 4) * 4;
            let birth = Date::from_calendar_date(leap, Month::February, 29).unwrap();
            for y in [leap + 1, leap + 4, leap + 17] {
                let at = Timestamp::at_midnight(Date::from_calendar_date(y, Month::March, 1).unwrap());
                let at = Timestamp::from_micros(at.micros() + offset * 86_400_000_000 - 1);
                let day = at.micros().div_euclid(86_400_000_000);
                prop_assert_eq!(Birth::of(birth).age_at_day(day), age_at(birth, at));
            }
        }

        #[test]
        fn turns_agrees_with_age_at(days in -30_000i32..20_000, age in 0u8..30) {
            let birth = cg_model::instant::days_to_date(days).unwrap();
            let t = turns(birth, age);
            prop_assert_eq!(age_at(birth, t), i32::from(age));
            prop_assert_eq!(age_at(birth, Timestamp::from_micros(t.micros() - 1)), i32::from(age) - 1);
        }
    }

    proptest! {
        #[test]
        fn jurisdiction_bits_pack_losslessly(bits in any::<u64>()) {
            let j = bits & (0xFFFF << 7 | 0x1F << 49);
            prop_assert_eq!(unpack_jurisdiction(pack_jurisdiction(j)), j);
        }
    }

    /// The table of clean codes holds, for every string of two upper-case letters (countries,
    /// aliases such as `UK` and `EL`, codes that are not countries such as `EU`, unassigned
    /// ones), what normalising it gives; other strings are not in it.
    #[test]
    fn clean_codes_are_classified_as_normalising_them_would() {
        for (name, config) in [
            ("li-2024-09", crate::PolicyConfig::default()),
            ("strict-optin", crate::PolicyConfig::default()),
        ] {
            let policy = Arc::new(Policy::bundled(name, config).unwrap());
            let memo = DecisionMemo::new(policy.clone(), Purpose::genai_training());
            for a in b'A'..=b'Z' {
                for b in b'A'..=b'Z' {
                    let raw = String::from_utf8(vec![a, b]).unwrap();
                    let slot = clean_code_slot(&raw).unwrap();
                    assert_eq!(
                        memo.clean_codes[slot],
                        packed_jurisdiction(Some(&raw), &policy),
                        "{raw}"
                    );
                }
            }
            let gb = packed_jurisdiction(Some("GB"), &policy);
            assert_eq!(memo.clean_codes[clean_code_slot("UK").unwrap()], gb);
            assert_ne!(gb, packed_jurisdiction(None, &policy));
            assert_eq!(
                memo.clean_codes[clean_code_slot("EU").unwrap()],
                packed_jurisdiction(None, &policy),
                "EU is not a country"
            );
        }
        for not_clean in ["", "G", "gb", "Gb", "GBR", " GB", "GB-SCT", "\u{c9}U", "G1"] {
            assert_eq!(clean_code_slot(not_clean), None, "{not_clean:?}");
        }
    }

    /// A memo's identity is never reused: a cache outliving its memo is not taken by a memo
    /// of another policy made afterwards, even one the allocator puts at the same address.
    /// (With ids taken from the memo's address this passed too in the runs tried: whether the
    /// allocator reuses the address is not up to the test. The identities are checked below.)
    #[test]
    fn a_cache_from_a_dropped_memo_is_never_taken_by_a_later_one() {
        let as_of = Timestamp::parse("2025-12-01").unwrap();
        let member = MemberFacts {
            country: Some("US".into()),
            ..MemberFacts::default()
        };
        for _ in 0..20 {
            let learnt = {
                let policy = Arc::new(
                    Policy::bundled("li-2024-09", crate::PolicyConfig::default()).unwrap(),
                );
                let engine = DecisionMemo::new(policy, Purpose::genai_training()).at(as_of);
                let compiled = engine.compile(&member);
                let mut d = engine.decider();
                d.decide(Some(&compiled), engine.kind("post"), as_of);
                d.into_cache()
            };
            assert!(!learnt.codes.is_empty());
            let policy =
                Arc::new(Policy::bundled("strict-optin", crate::PolicyConfig::default()).unwrap());
            let engine = DecisionMemo::new(policy, Purpose::genai_training()).at(as_of);
            assert!(engine.decider_with(learnt).local.is_empty());
        }
        let ids: Vec<u64> = (0..3)
            .map(|_| {
                let policy = Arc::new(
                    Policy::bundled("li-2024-09", crate::PolicyConfig::default()).unwrap(),
                );
                DecisionMemo::new(policy, Purpose::genai_training()).id
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(ids[0] > 0, "0 is no memo's");
    }

    #[test]
    fn a_decider_cache_is_kept_for_its_own_memo_only() {
        let memo = |name: &str| {
            let policy = Arc::new(Policy::bundled(name, crate::PolicyConfig::default()).unwrap());
            DecisionMemo::new(policy, Purpose::genai_training())
        };
        let as_of = Timestamp::parse("2025-12-01").unwrap();
        let (open, strict) = (memo("li-2024-09"), memo("strict-optin"));
        let (open_now, open_later) = (open.at(as_of), open.at(as_of.plus_days(30)));
        let member = open_now.compile(&MemberFacts {
            country: Some("US".into()),
            ..MemberFacts::default()
        });
        let mut d = open_now.decider();
        d.decide(Some(&member), open_now.kind("post"), as_of);
        let learnt = d.into_cache();
        assert!(!learnt.codes.is_empty());
        // Another cut-off of the same memo keeps what was learnt ...
        let kept = open_later.decider_with(learnt);
        assert!(!kept.local.is_empty());
        // ... another policy's engine does not.
        let strict_now = strict.at(as_of);
        let crossed = strict_now.decider_with(kept.into_cache());
        assert!(crossed.local.is_empty());
    }

    #[test]
    fn a_compiled_member_is_32_bytes() {
        assert_eq!(std::mem::size_of::<CompiledMember>(), 32);
    }

    #[test]
    fn codes_combine_most_protectively() {
        let inc = Verdict::from_reasons(vec![ReasonCode::LegitimateInterest]).code();
        let a = code_of(ReasonCode::RegionSuspended);
        let b = code_of(ReasonCode::Minor);
        assert_eq!(most_protective_code(inc, a), a);
        assert_eq!(most_protective_code(a, inc), a);
        let both = verdict_of(most_protective_code(a, b));
        assert_eq!(both.reasons().len(), 2);
        assert_eq!(
            decision_of(with_mention_redacted(inc)),
            Decision::IncludeRedacted
        );
        assert_eq!(with_mention_redacted(a), a);
        assert_eq!(decision_of(0), Decision::Exclude, "garbage is exclude");
    }

    /// An adult member of `country` with no consent record, and a post of theirs.
    fn adult_of(engine: &Engine, country: &str) -> CompiledMember {
        engine.compile(&MemberFacts {
            country: Some(country.into()),
            birth_date: Some(Date::from_calendar_date(1980, Month::May, 4).unwrap()),
            ..MemberFacts::default()
        })
    }

    /// Two distinct countries whose jurisdiction bits are equal under `memo`'s policy
    /// (the same regions and age of digital consent): the first such pair after `US`.
    fn twin_of_us(memo: &DecisionMemo) -> String {
        let us = clean_code_slot("US").unwrap();
        let twin = (0..CLEAN_CODES)
            .find(|&slot| {
                let raw =
                    String::from_utf8(vec![b'A' + (slot / 26) as u8, b'A' + (slot % 26) as u8])
                        .unwrap();
                slot != us
                    && memo.clean_codes[slot] == memo.clean_codes[us]
                    && cg_model::Jurisdiction::normalize(Some(&raw))
                        .is_ok_and(|j| j.country().as_str() != "US")
            })
            .expect("another country of the United States' class");
        String::from_utf8(vec![b'A' + (twin / 26) as u8, b'A' + (twin % 26) as u8]).unwrap()
    }

    /// No bundled policy names the country: countries of one class are one tuple for Cedar.
    /// A policy that does name it, even spelt with an escape, is decided per country: two
    /// countries of one class are told apart (with one tuple for both, whichever was decided
    /// first would decide the other).
    #[test]
    fn a_policy_that_reads_the_country_tells_countries_of_one_class_apart() {
        for name in crate::BUNDLED_NAMES {
            let policy = Policy::bundled(name, crate::PolicyConfig::default()).unwrap();
            assert!(!policy.reads_country(), "{name}");
        }
        let as_of = Timestamp::parse("2025-12-01").unwrap();
        let bundled =
            Arc::new(Policy::bundled("li-2024-09", crate::PolicyConfig::default()).unwrap());
        let blind = DecisionMemo::new(bundled, Purpose::genai_training());
        let twin = twin_of_us(&blind);
        let engine = blind.at(as_of);
        let (us, other) = (adult_of(&engine, "US"), adult_of(&engine, &twin));
        let mut d = engine.decider();
        let post = engine.kind("post");
        assert!(decision_of(d.decide(Some(&us), post, as_of)).is_kept());
        assert!(decision_of(d.decide(Some(&other), post, as_of)).is_kept());
        assert_eq!(blind.len(), 1, "one tuple for two countries of one class");

        for condition in [
            r#"principal.country == "US""#,
            r#"principal["\u{63}ountry"] == "US""#,
            r#"principal has country && principal.country like "U*""#,
        ] {
            let text = format!(
                "@id(\"no-us\") @reason(\"region_suspended\")\nforbid (principal, action, resource) when {{ {condition} }};\n"
            );
            let policy = Policy::with_files(
                vec![crate::SourceFile {
                    name: "no-us.cedar".into(),
                    text,
                }],
                crate::PolicyConfig::default(),
            )
            .unwrap();
            assert!(policy.reads_country(), "{condition}");
            let memo = DecisionMemo::new(Arc::new(policy), Purpose::genai_training());
            let engine = memo.at(as_of);
            let (us, other) = (adult_of(&engine, "US"), adult_of(&engine, &twin));
            let mut d = engine.decider();
            let post = engine.kind("post");
            // The twin first: its verdict must not be taken for the United States'.
            assert!(
                decision_of(d.decide(Some(&other), post, as_of)).is_kept(),
                "{condition}"
            );
            let excluded = verdict_of(d.decide(Some(&us), post, as_of));
            assert_eq!(excluded.decision(), Decision::Exclude, "{condition}");
            assert!(excluded.reasons().contains(&ReasonCode::RegionSuspended));
        }
    }
}
