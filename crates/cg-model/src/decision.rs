//! Decisions and reason codes (DOMAIN.md A1): the stable vocabulary of every file, API and
//! report the gate produces.
//!
//! Exclusion is a value, not an error: [`Verdict`] always carries a [`Decision`] and at least
//! one [`ReasonCode`]. Reason names are snake_case and never change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What may be done with a content item for a purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// May be used (text redacted by the PII engine as always).
    Include,
    /// May be used only after removing a third party's data.
    IncludeRedacted,
    /// Must not be used.
    Exclude,
}

impl Decision {
    /// All decisions, least to most restrictive.
    pub const ALL: [Decision; 3] = [
        Decision::Include,
        Decision::IncludeRedacted,
        Decision::Exclude,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Include => "include",
            Decision::IncludeRedacted => "include_redacted",
            Decision::Exclude => "exclude",
        }
    }

    /// The position in [`Decision::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the item's text may appear in a dataset.
    pub fn is_kept(self) -> bool {
        self != Decision::Exclude
    }

    /// The more restrictive of two decisions (`exclude` > `include_redacted` > `include`).
    #[must_use]
    pub fn most_protective(self, other: Decision) -> Decision {
        self.max(other)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "decision",
                name: s.to_owned(),
            })
    }
}

/// A name that is not in a closed vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{name}`")]
pub struct UnknownName {
    kind: &'static str,
    name: String,
}

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal => $decision:ident, )*) => {
        /// Why a decision was taken. Listed in precedence order (DOMAIN.md §8): when several
        /// exclusions apply all are recorded, and the first is the headline.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ReasonCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ReasonCode {
            /// Every reason code, in precedence order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant,)*];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(ReasonCode::$variant => $name,)* }
            }

            /// The decision this reason leads to.
            pub fn decision(self) -> Decision {
                match self { $(ReasonCode::$variant => Decision::$decision,)* }
            }
        }
    };
}

reasons! {
    /// A malformed input row, in quarantine mode.
    InvalidRecord = "invalid_record" => Exclude,
    /// Content created after the build's cut-off.
    AfterCutoff = "after_cutoff" => Exclude,
    /// Content whose author is not in the members input.
    MemberUnknown = "member_unknown" => Exclude,
    /// The policy could not be evaluated for this item.
    PolicyError = "policy_error" => Exclude,
    /// Private messages, salary, credentials, payment data, job applications (configurable).
    ContentKindExcluded = "content_kind_excluded" => Exclude,
    /// An erasure request or a closed account on or before the cut-off.
    Erased = "erased" => Exclude,
    /// The author was under the platform minimum age at creation, or is now.
    Minor = "minor" => Exclude,
    /// No birth date, and the regime has a minimum age.
    AgeUnknown = "age_unknown" => Exclude,
    /// Opt-in regime, author below the national age of digital consent.
    BelowConsentAge = "below_consent_age" => Exclude,
    /// No country, or a code that is not a country after normalisation.
    JurisdictionUnknown = "jurisdiction_unknown" => Exclude,
    /// The author's regime suspends training at that time.
    RegionSuspended = "region_suspended" => Exclude,
    /// Before the regime's start date, or inside the member's notice window.
    NotYetEffective = "not_yet_effective" => Exclude,
    /// Opt-in regime and no demonstrable grant.
    NoConsent = "no_consent" => Exclude,
    /// The grant was for another purpose or a notice version the regime does not accept.
    ConsentScopeMismatch = "consent_scope_mismatch" => Exclude,
    /// The member switched the setting off, objected, or sent GPC counted as objection.
    OptedOut = "opted_out" => Exclude,
    /// The text names an excluded member, whose identifiers were removed.
    MentionRedacted = "mention_redacted" => IncludeRedacted,
    /// Opt-in regime with a demonstrable grant.
    Consent = "consent" => Include,
    /// Opt-out regime, no objection on record.
    LegitimateInterest = "legitimate_interest" => Include,
}

impl ReasonCode {
    /// Maps the alias names used in DOMAIN.md Part B to the stable codes.
    pub fn from_alias(name: &str) -> Option<ReasonCode> {
        let canonical = match name {
            "objection_recorded"
            | "member_opted_out"
            | "gpc_opt_out_signal"
            | "prior_opt_out_persists"
            | "consent_withdrawn" => "opted_out",
            "content_created_as_minor" | "minor_under_18" => "minor",
            "erasure_requested" => "erased",
            "regime_not_yet_effective" => "not_yet_effective",
            "consent_missing" | "consent_not_demonstrable" => "no_consent",
            "default_on_opt_out_available" | "lawful_basis_legitimate_interest" => {
                "legitimate_interest"
            }
            "consent_valid" => "consent",
            "third_party_objection_redacted" => "mention_redacted",
            "content_type_excluded" => "content_kind_excluded",
            "below_digital_consent_age" => "below_consent_age",
            other => other,
        };
        canonical.parse().ok()
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReasonCode {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReasonCode::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "reason code",
                name: s.to_owned(),
            })
    }
}

/// A decision with its reasons (never empty) — the value the gate returns for every item.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Verdict {
    decision: Decision,
    reasons: Vec<ReasonCode>,
}

impl Verdict {
    /// Builds a verdict from reasons: the decision is the most restrictive any reason implies;
    /// reasons are sorted in precedence order and de-duplicated. No reasons at all is a policy
    /// error (fail closed).
    pub fn from_reasons(mut reasons: Vec<ReasonCode>) -> Verdict {
        reasons.sort();
        reasons.dedup();
        if reasons.is_empty() {
            return Verdict::exclude(ReasonCode::PolicyError);
        }
        let decision = reasons
            .iter()
            .map(|r| r.decision())
            .fold(Decision::Include, Decision::most_protective);
        // An exclusion lists only the reasons that exclude.
        if decision == Decision::Exclude {
            reasons.retain(|r| r.decision() == Decision::Exclude);
        }
        Verdict { decision, reasons }
    }

    /// An exclusion for one reason.
    pub fn exclude(reason: ReasonCode) -> Verdict {
        Verdict {
            decision: Decision::Exclude,
            reasons: vec![reason],
        }
    }

    /// The decision.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// The reasons, headline first.
    pub fn reasons(&self) -> &[ReasonCode] {
        &self.reasons
    }

    /// A self-describing `u32` for the verdict: bit `i` is `ReasonCode::ALL[i]`, bits 24–25 the
    /// decision's index in [`Decision::ALL`]. The same in every process of the same version, so
    /// a verdict can cross a plan boundary (a distributed build's executors and its client) as
    /// one integer column.
    pub fn code(&self) -> u32 {
        let mut code = (self.decision as u32) << DECISION_SHIFT;
        for r in &self.reasons {
            code |= 1 << (*r as u32);
        }
        code
    }

    /// The verdict of a [`Verdict::code`], or `None` for a value no verdict has (unknown bits,
    /// no reason, unknown decision). Fail closed: the decision is never less protective than its
    /// reasons imply.
    pub fn from_code(code: u32) -> Option<Verdict> {
        let decision = Verdict::decision_of_code(code)?;
        let reasons: Vec<ReasonCode> = ReasonCode::ALL
            .iter()
            .copied()
            .filter(|r| code & (1 << (*r as u32)) != 0)
            .collect();
        Some(Verdict { decision, reasons })
    }

    /// Whether a [`Verdict::code`] holds `reason` — `Verdict::from_code(code)` and a search of
    /// its reasons, without building the verdict. Only meaningful for a code
    /// [`Verdict::decision_of_code`] accepts (an invalid code may hold any bit).
    pub fn code_has_reason(code: u32, reason: ReasonCode) -> bool {
        code & (1 << (reason as u32)) != 0
    }

    /// The decision of a [`Verdict::code`] — `Verdict::from_code(code).map(|v| v.decision())`
    /// without building the verdict, so without allocating: the gate asks this of every row.
    /// `None` for a value no verdict has, as [`Verdict::from_code`].
    pub fn decision_of_code(code: u32) -> Option<Decision> {
        let decision = *Decision::ALL.get((code >> DECISION_SHIFT) as usize)?;
        let reason_bits = code & ((1 << DECISION_SHIFT) - 1);
        if reason_bits == 0 || reason_bits >> ReasonCode::ALL.len() != 0 {
            return None;
        }
        Some(
            ReasonCode::ALL
                .iter()
                .filter(|r| reason_bits & (1 << (**r as u32)) != 0)
                .map(|r| r.decision())
                .fold(decision, Decision::most_protective),
        )
    }
}

/// Where the decision sits in a [`Verdict::code`].
const DECISION_SHIFT: u32 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code a verdict can have (each decision, every set of reasons) and the values just
    /// outside. The reference is written out here, not taken from `from_code` (which uses
    /// `decision_of_code`): a code's decision is the most protective of the decision it states
    /// and of every reason's, `None` exactly where there is no verdict. Every verdict made from
    /// reasons decodes to its own decision.
    #[test]
    fn the_decision_of_a_code_is_the_most_protective_it_states_for_every_code() {
        // `Decision::ALL` runs from least to most protective.
        assert_eq!(
            Decision::ALL,
            [
                Decision::Include,
                Decision::IncludeRedacted,
                Decision::Exclude
            ]
        );
        let rank = |d: Decision| Decision::ALL.iter().position(|x| *x == d).unwrap();
        let reasons = ReasonCode::ALL.len() as u32;
        for decision in 0..=Decision::ALL.len() as u32 {
            for bits in (0..1u32 << reasons).chain([1 << reasons, (1 << DECISION_SHIFT) - 1]) {
                let code = (decision << DECISION_SHIFT) | bits;
                let valid =
                    (decision as usize) < Decision::ALL.len() && bits != 0 && bits >> reasons == 0;
                let expected = valid.then(|| {
                    let most = ReasonCode::ALL
                        .iter()
                        .filter(|r| bits & (1 << (**r as u32)) != 0)
                        .map(|r| rank(r.decision()))
                        .fold(decision as usize, usize::max);
                    Decision::ALL[most]
                });
                assert_eq!(Verdict::decision_of_code(code), expected, "{code:#x}");
                assert_eq!(
                    Verdict::from_code(code).map(|v| v.decision()),
                    expected,
                    "{code:#x}"
                );
            }
        }
        assert_eq!(Verdict::decision_of_code(u32::MAX), None);
        for r in ReasonCode::ALL {
            let v = Verdict::from_reasons(vec![*r, ReasonCode::ALL[0]]);
            assert_eq!(Verdict::decision_of_code(v.code()), Some(v.decision()));
        }
    }

    #[test]
    fn names_are_stable_and_round_trip() {
        assert_eq!(ReasonCode::ALL.len(), 18);
        for r in ReasonCode::ALL {
            assert_eq!(r.as_str().parse::<ReasonCode>().unwrap(), *r);
            assert_eq!(
                serde_json::to_string(r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>().unwrap(), d);
        }
        assert!("include_maybe".parse::<Decision>().is_err());
    }

    #[test]
    fn every_part_b_alias_maps() {
        let table = [
            ("objection_recorded", "opted_out"),
            ("member_opted_out", "opted_out"),
            ("gpc_opt_out_signal", "opted_out"),
            ("prior_opt_out_persists", "opted_out"),
            ("content_created_as_minor", "minor"),
            ("minor_under_18", "minor"),
            ("erasure_requested", "erased"),
            ("regime_not_yet_effective", "not_yet_effective"),
            ("consent_missing", "no_consent"),
            ("consent_not_demonstrable", "no_consent"),
            ("consent_withdrawn", "opted_out"),
            ("default_on_opt_out_available", "legitimate_interest"),
            ("lawful_basis_legitimate_interest", "legitimate_interest"),
            ("consent_valid", "consent"),
            ("third_party_objection_redacted", "mention_redacted"),
            ("region_suspended", "region_suspended"),
        ];
        for (alias, code) in table {
            assert_eq!(
                ReasonCode::from_alias(alias).unwrap().as_str(),
                code,
                "{alias}"
            );
        }
        assert_eq!(ReasonCode::from_alias("territory_mapped_uk_like"), None);
    }

    #[test]
    fn verdict_codes_round_trip_and_reject_garbage() {
        let mut seen = std::collections::HashSet::new();
        for a in ReasonCode::ALL {
            for b in ReasonCode::ALL {
                for v in [Verdict::from_reasons(vec![*a, *b]), Verdict::exclude(*a)] {
                    let code = v.code();
                    assert_eq!(Verdict::from_code(code).as_ref(), Some(&v), "{v:?}");
                    for r in ReasonCode::ALL {
                        assert_eq!(
                            Verdict::code_has_reason(code, *r),
                            v.reasons().contains(r),
                            "{v:?} {r:?}"
                        );
                    }
                    seen.insert(code);
                }
            }
        }
        assert!(seen.len() > ReasonCode::ALL.len());
        assert_eq!(Verdict::from_code(0), None, "no reason");
        assert_eq!(Verdict::from_code(1 << 20), None, "unknown reason bit");
        assert_eq!(Verdict::from_code((3 << 24) | 1), None, "unknown decision");
        // A code claiming `include` for an excluding reason decodes as an exclusion.
        let forged = Verdict::from_code(1 << (ReasonCode::OptedOut as u32)).unwrap();
        assert_eq!(forged.decision(), Decision::Exclude);
    }

    #[test]
    fn verdicts_fail_closed() {
        assert_eq!(
            Verdict::from_reasons(vec![]),
            Verdict::exclude(ReasonCode::PolicyError)
        );
        let v = Verdict::from_reasons(vec![
            ReasonCode::LegitimateInterest,
            ReasonCode::OptedOut,
            ReasonCode::Minor,
            ReasonCode::Minor,
        ]);
        assert_eq!(v.decision(), Decision::Exclude);
        assert_eq!(v.reasons(), [ReasonCode::Minor, ReasonCode::OptedOut]);
        let v = Verdict::from_reasons(vec![ReasonCode::MentionRedacted, ReasonCode::Consent]);
        assert_eq!(v.decision(), Decision::IncludeRedacted);
        assert_eq!(
            v.reasons(),
            [ReasonCode::MentionRedacted, ReasonCode::Consent]
        );
    }
}
