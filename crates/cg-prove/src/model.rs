//! The proof's world: which attributes the two policies share, which each side derives with its
//! own config and regime selection, and the assumptions that tie the derived attributes to raw
//! facts the way the gate computes them.
//!
//! Cedar's symbolic compiler quantifies over every request the schema allows, including
//! impossible ones (a member in the EU and in no country, a regime set that no date has). The
//! proof therefore runs on a *proof schema*: the raw facts (country, exact ages, consent as
//! recorded, days since the notice, the evaluation day) are shared by both sides, and every
//! attribute the gate derives with a policy's config or timeline (regions, capped ages, consent
//! class, notice state, interned kind, regime, config parameters) exists once per side
//! (`regions__old`, `regions__new`, ...). Each side's policies are rewritten to read their own
//! copies ([`crate::rewrite`]); the assumptions below, written in Cedar and added to both sides
//! as `forbid … unless`, define the copies from the raw facts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cg_model::age::{DEFAULT_CONSENT_AGE, consent_age};
use cg_model::instant::date_to_days;
use cg_model::jurisdiction::{Region, RegionFlags};
use cg_model::{CountryCode, Jurisdiction, Timestamp};
use cg_policy::Policy;
use serde::Serialize;
use time::Date;
use time::macros::date;

/// Which of the two compared policies an attribute copy belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The policy in force.
    Old,
    /// The proposed policy.
    New,
}

impl Side {
    /// The suffix of this side's attribute copies.
    pub fn suffix(self) -> &'static str {
        match self {
            Side::Old => "__old",
            Side::New => "__new",
        }
    }
}

/// The schema's variables whose attributes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Var {
    Principal,
    Resource,
    Context,
}

impl Var {
    pub(crate) fn from_est(name: &str) -> Option<Var> {
        match name {
            "principal" => Some(Var::Principal),
            "resource" => Some(Var::Resource),
            "context" => Some(Var::Context),
            _ => None,
        }
    }
}

/// Attributes of the policy schema whose value depends on a policy's config or timeline: each
/// side reads its own copy. `(variable, name, Cedar type)`.
pub(crate) const PER_SIDE: &[(Var, &str, &str)] = &[
    (Var::Principal, "regions", "Set<String>"),
    (Var::Principal, "age_at_creation", "Long"),
    (Var::Principal, "age_now", "Long"),
    (Var::Principal, "consent", "String"),
    (Var::Principal, "notice", "String"),
    (Var::Resource, "kind", "String"),
    (Var::Context, "regime", "String"),
    (Var::Context, "regimes", "Set<String>"),
    (Var::Context, "regime_not_yet_effective", "Bool"),
    (Var::Context, "minimum_age", "Long"),
    (Var::Context, "age_cap", "Long"),
    (Var::Context, "included_kinds", "Set<String>"),
    (Var::Context, "excluded_kinds", "Set<String>"),
    (Var::Context, "gpc_as_objection", "Bool"),
    (Var::Context, "notice_window_days", "Long"),
];

/// Attributes of the policy schema that mean the same under every config: both sides read the
/// shared value.
pub(crate) const SHARED: &[(Var, &str, &str)] = &[
    (Var::Principal, "jurisdiction_known", "Bool"),
    (Var::Principal, "country", "String"),
    (Var::Principal, "consent_age", "Long"),
    (Var::Principal, "age_known", "Bool"),
    (Var::Principal, "gpc_signal", "Bool"),
    (Var::Principal, "erased", "Bool"),
    (Var::Context, "purpose", "String"),
];

/// Raw facts only the assumptions read (no policy does): the per-side copies are functions of
/// them. A raw fact may share a policy attribute's name (`age_now` is the exact age; the
/// policies' `age_now` is the capped copy of each side).
pub(crate) const RAW: &[(Var, &str, &str)] = &[
    (Var::Principal, "us_ca", "Bool"),
    (Var::Principal, "age_at_creation", "Long"),
    (Var::Principal, "age_now", "Long"),
    (Var::Principal, "consent", "String"),
    (Var::Principal, "grant_notice", "String"),
    (Var::Principal, "notice_delivered", "Bool"),
    (Var::Principal, "notice_age_days", "Long"),
    (Var::Resource, "kind", "String"),
    (Var::Context, "day", "Long"),
];

/// Whether a policy's read of `var.attr` goes to a per-side copy.
pub(crate) fn is_per_side(var: Var, attr: &str) -> bool {
    PER_SIDE.iter().any(|(v, a, _)| *v == var && *a == attr)
}

/// The first and last evaluation day the proof considers (inclusive).
pub const FIRST_DAY: Date = date!(1970 - 01 - 01);
/// See [`FIRST_DAY`].
pub const LAST_DAY: Date = date!(2199 - 12 - 31);
/// The oldest exact age considered (older members behave as this age under every config).
pub const MAX_AGE: i64 = 150;
/// The longest time since a notice was delivered that is considered, in days.
pub const MAX_NOTICE_DAYS: i64 = 100_000;

/// The raw consent states a member's record can fold to (the per-side consent class is derived
/// from them and the side's accepted notice versions).
pub(crate) const RAW_CONSENT: &[&str] = &["none", "granted", "other_purpose", "denied"];

/// The proof schema, in Cedar's schema syntax.
pub(crate) fn proof_schema() -> String {
    let mut attrs: BTreeMap<(u8, String), &str> = BTreeMap::new();
    let var_index = |v: Var| match v {
        Var::Principal => 0u8,
        Var::Resource => 1,
        Var::Context => 2,
    };
    for (v, a, t) in SHARED.iter().chain(RAW) {
        attrs.insert((var_index(*v), (*a).to_owned()), t);
    }
    for (v, a, t) in PER_SIDE {
        for side in [Side::Old, Side::New] {
            attrs.insert((var_index(*v), format!("{a}{}", side.suffix())), t);
        }
    }
    let block = |index: u8| {
        attrs
            .iter()
            .filter(|((v, _), _)| *v == index)
            .map(|((_, a), t)| format!("  \"{a}\": {t},\n"))
            .collect::<String>()
    };
    format!(
        "entity Member = {{\n{}}};\nentity Content = {{\n{}}};\naction \"train\" appliesTo {{\n  principal: [Member],\n  resource: [Content],\n  context: {{\n{}  }}\n}};\n",
        block(0),
        block(1),
        block(2)
    )
}

/// One assumption: a name, what it says in words, and its Cedar condition.
#[derive(Clone, Debug, Serialize)]
pub struct Assumption {
    /// A short name (`assume/jurisdiction_table`).
    pub name: String,
    /// What it says.
    pub says: String,
    /// The Cedar condition every request of the proof satisfies.
    #[serde(skip)]
    pub(crate) condition: String,
}

impl Assumption {
    fn new(name: &str, says: impl Into<String>, condition: String) -> Assumption {
        Assumption {
            name: format!("assume/{name}"),
            says: says.into(),
            condition,
        }
    }

    /// The assumption as a Cedar policy: forbid every request that violates it.
    pub(crate) fn as_forbid(&self) -> String {
        format!(
            "@id({})\nforbid (principal, action, resource) unless {{ {} }};\n",
            cedar_string(&self.name),
            self.condition
        )
    }
}

/// The evaluation window of regimes: the regime (index into the policy's regimes) and whether
/// a pinned regime is used before its first day, for each day range `[from, until)` (days since
/// 1970-01-01); `None` where no regime is in force (the gate excludes: `policy_error`).
pub(crate) type Segments = Vec<(i64, i64, Option<(usize, bool)>)>;

/// The regime a policy applies on each day of the proof's window, as constant runs.
pub(crate) fn segments(policy: &Policy) -> Segments {
    let first = i64::from(date_to_days(FIRST_DAY));
    let end = i64::from(date_to_days(LAST_DAY)) + 1;
    let mut cuts = vec![first, end];
    for r in policy.regimes() {
        if let Some(from) = r.from {
            cuts.push(i64::from(date_to_days(from)));
        }
        if let Some(until) = r.until {
            cuts.push(i64::from(date_to_days(until)) + 1);
        }
    }
    cuts.retain(|d| (first..=end).contains(d));
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Segments = Vec::new();
    for pair in cuts.windows(2) {
        let [from, until] = [pair[0], pair[1]];
        let at = day_timestamp(from);
        let regime = at.and_then(|at| policy.regime_at(at));
        match out.last_mut() {
            Some(last) if last.2 == regime && last.1 == from => last.1 = until,
            _ => out.push((from, until, regime)),
        }
    }
    out
}

/// The evaluation days a comparison covers (days since 1970-01-01, inclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) first: i64,
    pub(crate) last: i64,
    /// The pinned regime(s) whose first day moved `first`, for the report.
    pub(crate) pinned: Option<String>,
}

impl Window {
    /// [`FIRST_DAY`]..=[`LAST_DAY`], starting no earlier than the first day of a regime either
    /// policy pins: a pinned regime means that regime at every instant.
    pub(crate) fn of(policies: &[&Policy]) -> Window {
        let mut window = Window {
            first: i64::from(date_to_days(FIRST_DAY)),
            last: i64::from(date_to_days(LAST_DAY)),
            pinned: None,
        };
        for policy in policies {
            for (_, until, regime) in segments(policy) {
                if let Some((i, true)) = regime
                    && until > window.first
                {
                    window.first = until;
                    window.pinned = policy.regimes().get(i).map(|r| r.id.clone());
                }
            }
        }
        window
    }
}

/// The periods of the window in which both policies apply one regime each:
/// `(from, until exclusive, old regime, new regime)`, regimes by id (`none`: no regime).
pub(crate) fn joint_periods(
    old: &Policy,
    new: &Policy,
    window: &Window,
) -> Vec<(i64, i64, String, String)> {
    let (a, b) = (segments(old), segments(new));
    let mut cuts: Vec<i64> = a
        .iter()
        .chain(&b)
        .flat_map(|(from, until, _)| [*from, *until])
        .chain([window.first, window.last + 1])
        .filter(|d| (window.first..=window.last + 1).contains(d))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let regime_on = |policy: &Policy, segs: &Segments, day: i64| {
        segs.iter()
            .find(|(from, until, _)| (*from..*until).contains(&day))
            .and_then(|(_, _, r)| *r)
            .and_then(|(i, _)| policy.regimes().get(i))
            .map_or_else(|| "none".to_owned(), |r| r.id.clone())
    };
    cuts.windows(2)
        .map(|w| {
            (
                w[0],
                w[1],
                regime_on(old, &a, w[0]),
                regime_on(new, &b, w[0]),
            )
        })
        .collect()
}

/// The restriction to cut-offs in `[from, until)`.
pub(crate) fn period(from: i64, until: i64) -> Assumption {
    Assumption::new(
        "period",
        format!("cut-offs {}–{}", day_label(from), day_label(until - 1)),
        format!("context.day >= {from} && context.day < {until}"),
    )
}

/// Today, as a day number (the displayed example prefers the period holding it).
pub(crate) fn today() -> i64 {
    i64::from(date_to_days(time::OffsetDateTime::now_utc().date()))
}

/// The date of a day number.
pub(crate) fn day_date(day: i64) -> Option<Date> {
    day_timestamp(day).map(Timestamp::date)
}

/// Midnight UTC of a day number.
pub(crate) fn day_timestamp(day: i64) -> Option<Timestamp> {
    let day = i32::try_from(day).ok()?;
    cg_model::instant::days_to_date(day).map(Timestamp::at_midnight)
}

/// Everything one side derives from the raw facts, one assumption per derived attribute.
pub(crate) fn side_assumptions(policy: &Policy, side: Side) -> Vec<Assumption> {
    let on = SideOf::new(policy, side);
    vec![
        regions(&on),
        ages(&on),
        consent(&on),
        notice(&on),
        kind(&on),
        parameters(&on),
        regimes(&on),
    ]
}

/// One side: its policy, config, attribute suffix and label.
struct SideOf<'a> {
    policy: &'a Policy,
    config: &'a cg_policy::PolicyConfig,
    /// `__old` or `__new`.
    s: &'static str,
    /// `old` or `new`.
    label: &'static str,
}

impl<'a> SideOf<'a> {
    fn new(policy: &'a Policy, side: Side) -> SideOf<'a> {
        SideOf {
            policy,
            config: policy.config(),
            s: side.suffix(),
            label: match side {
                Side::Old => "old",
                Side::New => "new",
            },
        }
    }
}

/// Regions, from the country table and this side's territory flags.
fn regions(on: &SideOf<'_>) -> Assumption {
    let (s, config, label) = (on.s, on.config, on.label);
    let flags = config.region_flags();
    let regions_of = region_table(flags);
    let us_ca = Jurisdiction::normalize(Some("US-CA"))
        .map(|j| j.regions(flags))
        .unwrap_or_default();
    let mut clauses = vec![format!(
        "{}.containsAll(principal.regions{s})",
        cedar_set(Region::ALL.iter().map(|r| r.as_str()))
    )];
    for region in Region::ALL {
        let countries: Vec<&str> = regions_of
            .iter()
            .filter(|(_, set)| set.contains(region))
            .map(|(c, _)| c.as_str())
            .collect();
        let by_country = if countries.is_empty() {
            "false".to_owned()
        } else {
            format!(
                "(!principal.us_ca && {}.contains(principal.country))",
                cedar_set(countries.iter().copied())
            )
        };
        let by_subdivision = if us_ca.contains(region) {
            "principal.us_ca"
        } else {
            "false"
        };
        clauses.push(format!(
            "principal.regions{s}.contains({}) == (principal.jurisdiction_known && ({by_country} || {by_subdivision}))",
            cedar_string(region.as_str())
        ));
    }
    Assumption::new(
        &format!("regions_{label}"),
        format!(
            "the {label} policy's regions follow the country table (Gibraltar as UK: {}, Crown Dependencies as UK: {})",
            flags.gibraltar_as_uk, flags.crown_dependencies_as_uk
        ),
        clauses.join(" && "),
    )
}

/// Ages, capped the way the gate caps them.
fn ages(on: &SideOf<'_>) -> Assumption {
    let (s, config, label) = (on.s, on.config, on.label);
    let cap = i64::from(config.age_cap());
    Assumption::new(
        &format!("ages_{label}"),
        format!("the {label} policy sees ages capped at {cap}"),
        format!(
            "principal.age_at_creation{s} == (if principal.age_at_creation > {cap} then {cap} else principal.age_at_creation) && \
             principal.age_now{s} == (if principal.age_now > {cap} then {cap} else principal.age_now)"
        ),
    )
}

/// The consent class: a grant under a notice version the side does not accept is
/// `granted_other_notice`.
fn consent(on: &SideOf<'_>) -> Assumption {
    let (s, config, label) = (on.s, on.config, on.label);
    let accepts = if config.accepted_notice_versions.is_empty() {
        "true".to_owned()
    } else {
        format!(
            "{}.contains(principal.grant_notice)",
            cedar_set(config.accepted_notice_versions.iter().map(String::as_str))
        )
    };
    Assumption::new(
        &format!("consent_{label}"),
        if config.accepted_notice_versions.is_empty() {
            format!("the {label} policy accepts a grant under any notice version")
        } else {
            format!(
                "the {label} policy accepts grants under notice versions {}",
                config.accepted_notice_versions.join(", ")
            )
        },
        format!(
            "principal.consent{s} == (if principal.consent == \"granted\" && !({accepts}) then \"granted_other_notice\" else principal.consent)"
        ),
    )
}

/// The notice state, from the days since delivery and this side's window.
fn notice(on: &SideOf<'_>) -> Assumption {
    let (s, config, label) = (on.s, on.config, on.label);
    let window = i64::from(config.notice_window_days);
    Assumption::new(
        &format!("notice_{label}"),
        format!("the {label} policy's notice window is {window} day(s)"),
        format!(
            "principal.notice{s} == (if !principal.notice_delivered then \"none\" else if principal.notice_age_days >= {window} then \"elapsed\" else \"in_window\")"
        ),
    )
}

/// The kind: the gate passes a kind the config does not list as `""`.
fn kind(on: &SideOf<'_>) -> Assumption {
    let (s, config, label) = (on.s, on.config, on.label);
    let mut kinds: Vec<&str> = config
        .included_kinds
        .iter()
        .chain(&config.excluded_kinds)
        .map(String::as_str)
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let kind = if kinds.is_empty() {
        format!("resource.kind{s} == \"\"")
    } else {
        format!(
            "resource.kind{s} == (if {}.contains(resource.kind) then resource.kind else \"\")",
            cedar_set(kinds.iter().copied())
        )
    };
    Assumption::new(
        &format!("kind_{label}"),
        format!("the {label} policy sees a kind its config does not list as \"\""),
        kind,
    )
}

/// The config's parameters, as the context carries them.
fn parameters(on: &SideOf<'_>) -> Assumption {
    let (s, config, label) = (on.s, on.config, on.label);
    let cap = i64::from(config.age_cap());
    let window = i64::from(config.notice_window_days);
    let set_eq = |name: &str, values: &[String]| {
        if values.is_empty() {
            format!("context.{name}{s}.isEmpty()")
        } else {
            format!(
                "context.{name}{s} == {}",
                cedar_set(values.iter().map(String::as_str))
            )
        }
    };
    Assumption::new(
        &format!("config_{label}"),
        format!(
            "the {label} policy's parameters: minimum_age {}, gpc_as_objection {}, included_kinds [{}], excluded_kinds [{}]",
            config.minimum_age,
            config.gpc_as_objection,
            config.included_kinds.join(", "),
            config.excluded_kinds.join(", ")
        ),
        format!(
            "context.minimum_age{s} == {} && context.age_cap{s} == {cap} && context.gpc_as_objection{s} == {} && context.notice_window_days{s} == {window} && {} && {}",
            config.minimum_age,
            config.gpc_as_objection,
            set_eq("included_kinds", &config.included_kinds),
            set_eq("excluded_kinds", &config.excluded_kinds)
        ),
    )
}

/// The regime, its applicable set and `not_yet_effective`, day by day.
fn regimes(on: &SideOf<'_>) -> Assumption {
    let (s, policy, label) = (on.s, on.policy, on.label);
    let regimes = policy.regimes();
    let mut clauses = Vec::new();
    let mut said = Vec::new();
    for (from, until, regime) in segments(policy) {
        let Some((i, not_yet_effective)) = regime else {
            continue;
        };
        let Some(r) = regimes.get(i) else { continue };
        clauses.push(format!(
            "(!(context.day >= {from} && context.day < {until}) || (context.regime{s} == {} && context.regimes{s} == {} && context.regime_not_yet_effective{s} == {not_yet_effective}))",
            cedar_string(&r.id),
            cedar_set(r.applies.iter().map(String::as_str))
        ));
        said.push(format!(
            "{}{} {}–{}",
            r.id,
            if not_yet_effective {
                " (not yet effective)"
            } else {
                ""
            },
            day_label(from),
            day_label(until - 1)
        ));
    }
    if clauses.is_empty() {
        clauses.push("true".to_owned());
    }
    Assumption::new(
        &format!("regimes_{label}"),
        format!("the {label} policy applies {}", said.join(", ")),
        clauses.join(" && "),
    )
}

/// The side's pre-Cedar exclusion: days without a regime in force exclude (`policy_error`).
/// `None` when every day of the window has a regime.
pub(crate) fn no_regime_forbid(policy: &Policy, side: Side) -> Option<String> {
    let days: Vec<String> = segments(policy)
        .into_iter()
        .filter(|(_, _, r)| r.is_none())
        .map(|(from, until, _)| format!("(context.day >= {from} && context.day < {until})"))
        .collect();
    (!days.is_empty()).then(|| {
        format!(
            "@id(\"proof/no_regime{}\")\nforbid (principal, action, resource) when {{ {} }};\n",
            side.suffix(),
            days.join(" || ")
        )
    })
}

/// Facts every member, item and time satisfies, whatever the policy.
pub(crate) fn shared_assumptions(purposes: &[&str], window: &Window) -> Vec<Assumption> {
    let countries = member_countries();
    let mut by_age: BTreeMap<u8, Vec<&str>> = BTreeMap::new();
    for c in &countries {
        let age = consent_age(&Jurisdiction::country_only(*c));
        if age != DEFAULT_CONSENT_AGE {
            by_age.entry(age).or_default().push(c.as_str());
        }
    }
    let us_ca_age = Jurisdiction::normalize(Some("US-CA"))
        .map(|j| consent_age(&j))
        .unwrap_or(DEFAULT_CONSENT_AGE);
    let mut age_expr = format!("{DEFAULT_CONSENT_AGE}");
    for (age, cs) in by_age.iter().rev() {
        age_expr = format!(
            "if {}.contains(principal.country) then {age} else ({age_expr})",
            cedar_set(cs.iter().copied())
        );
    }
    let age_expr = format!(
        "principal.consent_age == (if !principal.jurisdiction_known then {DEFAULT_CONSENT_AGE} else if principal.us_ca then {us_ca_age} else ({age_expr}))"
    );
    let (first, last) = (window.first, window.last);
    vec![
        Assumption::new(
            "jurisdiction_table",
            format!(
                "a member's country is one of the {} ISO 3166-1 codes a jurisdiction normalises to (California: US with a flag), or unknown",
                countries.len()
            ),
            format!(
                "(principal.jurisdiction_known && {}.contains(principal.country) || !principal.jurisdiction_known && principal.country == \"\" && !principal.us_ca) && (!principal.us_ca || principal.country == \"US\")",
                cedar_set(countries.iter().map(CountryCode::as_str))
            ),
        ),
        Assumption::new(
            "consent_ages",
            "the national age of digital consent follows the country table (16 where unknown)",
            age_expr,
        ),
        Assumption::new(
            "ages",
            format!(
                "exact ages: unknown birth date gives 0; otherwise -1 (before birth) ≤ age at creation ≤ age now ≤ {MAX_AGE}"
            ),
            format!(
                "if principal.age_known then (-1 <= principal.age_at_creation && principal.age_at_creation <= principal.age_now && principal.age_now <= {MAX_AGE}) else (principal.age_at_creation == 0 && principal.age_now == 0)"
            ),
        ),
        Assumption::new(
            "consent_record",
            "the member's record for the purpose folds to none, granted (under some notice version), another purpose's grant, or denied",
            format!(
                "{}.contains(principal.consent)",
                cedar_set(RAW_CONSENT.iter().copied())
            ),
        ),
        Assumption::new(
            "notice_delivery",
            format!(
                "a notice was delivered 0 to {MAX_NOTICE_DAYS} days before the evaluation, or never"
            ),
            format!(
                "principal.notice_age_days >= 0 && principal.notice_age_days <= {MAX_NOTICE_DAYS} && (principal.notice_delivered || principal.notice_age_days == 0)"
            ),
        ),
        Assumption::new(
            "evaluation_day",
            match &window.pinned {
                None => format!(
                    "the evaluation (cut-off) day lies in {}..={}",
                    day_label(first),
                    day_label(last)
                ),
                Some(pinned) => format!(
                    "the evaluation (cut-off) day lies in {}..={}: a pinned regime means that regime at every instant, so cut-offs before {pinned} is in force are left out (a build pinned to it excludes everything then: not_yet_effective)",
                    day_label(first),
                    day_label(last)
                ),
            },
            format!("context.day >= {first} && context.day <= {last}"),
        ),
        Assumption::new(
            "purpose",
            format!("the purpose is one of: {}", purposes.join(", ")),
            format!(
                "{}.contains(context.purpose)",
                cedar_set(purposes.iter().copied())
            ),
        ),
    ]
}

/// The countries a member's normalised jurisdiction can name: every ISO code that normalises
/// to itself (territory and alias codes such as `RE` become their sovereign's).
pub(crate) fn member_countries() -> Vec<CountryCode> {
    CountryCode::all()
        .filter(|c| Jurisdiction::normalize(Some(c.as_str())).is_ok_and(|j| j.country() == *c))
        .collect()
}

/// Soft facts a *displayed* counterexample should also satisfy, when one does: an age up to 80,
/// recent content, a notice in the last ten years, the main purpose, a kind one of the configs
/// names. Never part of a proof (a case outside them is still a counterexample).
pub(crate) fn preferences(purposes: &[&str], policies: &[&Policy]) -> Vec<Assumption> {
    let mut kinds: Vec<&str> = policies
        .iter()
        .flat_map(|p| {
            let c = p.config();
            c.included_kinds.iter().chain(&c.excluded_kinds)
        })
        .map(String::as_str)
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut out = vec![
        Assumption::new(
            "plausible",
            "an age up to 80, content from the last five years, a notice in the last ten",
            "principal.age_now <= 80 && principal.age_at_creation >= 0 && principal.age_at_creation + 5 >= principal.age_now && principal.notice_age_days <= 3650 && (principal.grant_notice == \"\" || principal.grant_notice == \"2025-09\" || principal.grant_notice == \"2024-06\")".to_owned(),
        ),
    ];
    if purposes.contains(&"genai_training") {
        out.push(Assumption::new(
            "main_purpose",
            "the purpose genai_training",
            "context.purpose == \"genai_training\"".to_owned(),
        ));
    }
    if !kinds.is_empty() {
        out.push(Assumption::new(
            "listed_kind",
            "a kind a config lists",
            format!(
                "{}.contains(resource.kind)",
                cedar_set(kinds.iter().copied())
            ),
        ));
    }
    for a in &mut out {
        a.name = a.name.replacen("assume/", "prefer/", 1);
    }
    out
}

fn region_table(flags: RegionFlags) -> Vec<(CountryCode, cg_model::RegionSet)> {
    member_countries()
        .into_iter()
        .map(|c| (c, Jurisdiction::country_only(c).regions(flags)))
        .collect()
}

fn day_label(day: i64) -> String {
    day_timestamp(day).map_or_else(|| day.to_string(), |t| t.date().to_string())
}

/// A Cedar string literal.
pub(crate) fn cedar_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Cedar set literal of strings (callers never pass an empty list: Cedar's strict
/// validation rejects `[]`).
pub(crate) fn cedar_set<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let parts: Vec<String> = items.map(cedar_string).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cg_policy::PolicyConfig;

    fn attribute_names(entity_or_context: &serde_json::Value) -> Vec<String> {
        let mut names: Vec<String> = entity_or_context
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn every_policy_attribute_is_shared_or_per_side() {
        let (fragment, _) =
            cedar_policy::SchemaFragment::from_cedarschema_str(cg_policy::SCHEMA).unwrap();
        let json = fragment.to_json_value().unwrap();
        let ns = &json[""];
        let member = attribute_names(&ns["entityTypes"]["Member"]["shape"]["attributes"]);
        let content = attribute_names(&ns["entityTypes"]["Content"]["shape"]["attributes"]);
        let context =
            attribute_names(&ns["actions"]["train"]["appliesTo"]["context"]["attributes"]);
        let classified = |var: Var| {
            let mut names: Vec<String> = PER_SIDE
                .iter()
                .chain(SHARED)
                .filter(|(v, _, _)| *v == var)
                .map(|(_, a, _)| (*a).to_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(member, classified(Var::Principal));
        assert_eq!(content, classified(Var::Resource));
        assert_eq!(context, classified(Var::Context));
    }

    #[test]
    fn proof_schema_parses() {
        let (_schema, _warnings) =
            cedar_policy::Schema::from_cedarschema_str(&proof_schema()).unwrap();
    }

    #[test]
    fn timeline_segments_follow_the_regime_dates() {
        let p = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
        let segs = segments(&p);
        let ids: Vec<Option<&str>> = segs
            .iter()
            .map(|(_, _, r)| r.map(|(i, _)| p.regimes()[i].id.as_str()))
            .collect();
        assert_eq!(
            ids,
            [Some("li-2024-pre"), Some("li-2024-09"), Some("li-2025-11")]
        );
        let start_09 = i64::from(date_to_days(date!(2024 - 09 - 18)));
        assert_eq!(segs[1].0, start_09);
        assert!(no_regime_forbid(&p, Side::Old).is_none());
    }

    #[test]
    fn pinned_regime_is_not_yet_effective_before_its_first_day() {
        let p = Policy::bundled("li-2025-11", PolicyConfig::default()).unwrap();
        let segs = segments(&p);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].2.map(|(_, nye)| nye), Some(true));
        assert_eq!(segs[1].2.map(|(_, nye)| nye), Some(false));
        assert_eq!(segs[1].0, i64::from(date_to_days(date!(2025 - 11 - 03))));
    }

    /// Every assumption, evaluated by Cedar on a request that breaks only the regime of one
    /// day, forbids it (each clause binds as written: a precedence slip once let the solver
    /// pick any regime).
    #[test]
    fn a_wrong_regime_on_any_day_breaks_the_regime_assumption() {
        let p = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
        let a = side_assumptions(&p, Side::Old)
            .into_iter()
            .find(|a| a.name == "assume/regimes_old")
            .unwrap();
        let set: cedar_policy::PolicySet =
            format!("permit (principal, action, resource);\n{}", a.as_forbid())
                .parse()
                .unwrap();
        for (day, regime, expect_allowed) in [
            (20394, "li-2024-09", true),
            (20394, "li-2025-11", false),
            (20395, "li-2025-11", true),
            (100, "li-2024-09", false),
        ] {
            let context = cedar_policy::Context::from_json_value(
                serde_json::json!({"day": day, "regime__old": regime, "regimes__old": [regime], "regime_not_yet_effective__old": false}),
                None,
            )
            .unwrap();
            let request = cedar_policy::Request::new(
                r#"Member::"m""#.parse().unwrap(),
                r#"Action::"train""#.parse().unwrap(),
                r#"Content::"c""#.parse().unwrap(),
                context,
                None,
            )
            .unwrap();
            let r = cedar_policy::Authorizer::new().is_authorized(
                &request,
                &set,
                &cedar_policy::Entities::empty(),
            );
            assert_eq!(
                r.decision() == cedar_policy::Decision::Allow,
                expect_allowed,
                "day {day}, {regime}"
            );
        }
    }

    #[test]
    fn the_window_starts_when_every_pinned_regime_is_in_force() {
        let timeline = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
        let sept = Policy::bundled("li-2024-09", PolicyConfig::default()).unwrap();
        let nov = Policy::bundled("li-2025-11", PolicyConfig::default()).unwrap();
        let first = |w: Window| day_label(w.first);
        assert_eq!(first(Window::of(&[&timeline, &timeline])), "1970-01-01");
        assert_eq!(first(Window::of(&[&timeline, &sept])), "2024-09-18");
        assert_eq!(first(Window::of(&[&nov, &sept])), "2025-11-03");
        assert_eq!(
            Window::of(&[&sept, &nov]).pinned.as_deref(),
            Some("li-2025-11")
        );
    }

    #[test]
    fn strings_are_escaped_for_cedar() {
        assert_eq!(cedar_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u{a}\"");
    }
}
