//! [`Policy`]: a loaded, validated, hashed policy, and its Cedar evaluation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Effect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema,
    ValidationMode, Validator,
};
use cg_model::regime::REGIMES;
use cg_model::{Decision, Jurisdiction, Purpose, ReasonCode, RegionSet, Timestamp, Verdict};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::Date;

use crate::config::PolicyConfig;
use crate::error::{InvalidPolicy, PolicyError, Problem};
use crate::facts::{ConsentClass, ItemFacts, MemberView, NoticeState, Tuple, capped_age, classify};

/// The bundled schema.
pub const SCHEMA: &str = include_str!("../policies/schema.cedarschema");

/// The bundled policy files, `(file name, text)`.
pub const BUNDLED_FILES: &[(&str, &str)] = &[
    ("common.cedar", include_str!("../policies/common.cedar")),
    (
        "li-2024-pre.cedar",
        include_str!("../policies/li-2024-pre.cedar"),
    ),
    (
        "li-2024-09.cedar",
        include_str!("../policies/li-2024-09.cedar"),
    ),
    (
        "li-2025-11.cedar",
        include_str!("../policies/li-2025-11.cedar"),
    ),
    (
        "strict-optin.cedar",
        include_str!("../policies/strict-optin.cedar"),
    ),
];

/// Names of the bundled policies: the default `timeline` and each regime alone.
pub const BUNDLED_NAMES: &[&str] = &[
    "timeline",
    "li-2024-pre",
    "li-2024-09",
    "li-2025-11",
    "strict-optin",
];

/// One policy source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// Its name (file name or path), used in errors and hashing.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// A regime the policy knows: dates from data, rules in Cedar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegimeSpec {
    /// Id.
    pub id: String,
    /// First day in force.
    pub from: Option<Date>,
    /// Last day in force.
    pub until: Option<Date>,
    /// Regime ids whose policies also apply (transitive closure, including `id`).
    pub applies: Vec<String>,
    /// In the default timeline.
    pub in_timeline: bool,
}

impl RegimeSpec {
    fn in_force(&self, at: Timestamp) -> bool {
        let d = at.date();
        self.from.is_none_or(|f| d >= f) && self.until.is_none_or(|u| d <= u)
    }
}

/// How regimes are chosen over time.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Selection {
    /// The regime in force at the evaluation time (latest start wins on overlap).
    Timeline,
    /// Always this regime (index); before its first day: `not_yet_effective`.
    Pinned(usize),
}

/// The outcome of evaluating one tuple.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decided {
    /// Decision and reasons.
    pub verdict: Verdict,
    /// The policies that decided it (satisfied permits on include, satisfied forbids on
    /// exclude, erroring policies on `policy_error`).
    pub policies: Vec<String>,
}

/// The evaluation context shared by all items of one build or query.
#[derive(Clone, Debug)]
pub struct EvalContext {
    /// The purpose.
    pub purpose: Purpose,
    /// The cut-off: evaluation time.
    pub as_of: Timestamp,
}

/// How a policy was made: enough to make the same policy again in another process (a
/// distributed build's executors), which then checks the hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyRecipe {
    /// [`Policy::bundled`].
    Bundled {
        /// The bundled name or pinned regime id.
        name: String,
        /// The configuration.
        config: PolicyConfig,
    },
    /// [`Policy::with_files`].
    Files {
        /// The user's files.
        files: Vec<SourceFile>,
        /// The configuration.
        config: PolicyConfig,
    },
}

/// Whether any policy of `set` may read the attribute `attr` of an entity: whether the name
/// occurs anywhere in a policy's JSON form (Cedar's EST), as an attribute accessed (`.attr`,
/// `["attr"]`, `has attr`) or as any other string. The EST holds names decoded (`\u{..}`
/// escapes resolved), and Cedar has no way to name an attribute other than literally, so a
/// policy that reads it always says so; a policy that merely contains the string is counted
/// too, and one whose JSON form cannot be made counts as reading it (the conservative answers:
/// they only cost memoisation).
fn reads_attribute(set: &PolicySet, attr: &str) -> bool {
    fn names(v: &serde_json::Value, attr: &str) -> bool {
        match v {
            serde_json::Value::String(s) => s == attr,
            serde_json::Value::Array(items) => items.iter().any(|v| names(v, attr)),
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| k == attr || names(v, attr)),
            _ => false,
        }
    }
    set.policies()
        .any(|p| p.to_json().map_or(true, |est| names(&est, attr)))
        || set.templates().next().is_some()
}

/// A loaded, validated policy.
#[derive(Debug)]
pub struct Policy {
    recipe: PolicyRecipe,
    name: String,
    hash: String,
    config: PolicyConfig,
    set: PolicySet,
    schema: Schema,
    reasons: HashMap<PolicyId, ReasonCode>,
    regimes: Vec<RegimeSpec>,
    selection: Selection,
    kinds: Vec<String>,
    authorizer: Authorizer,
    /// Whether any policy reads the member's `country` attribute ([`reads_attribute`]).
    reads_country: bool,
}

impl Policy {
    /// A bundled policy by name (`timeline`, `li-2024-pre`, `li-2024-09`, `li-2025-11`,
    /// `strict-optin`), or a custom regime id from the config, pinned.
    pub fn bundled(name: &str, config: PolicyConfig) -> Result<Policy, PolicyError> {
        let files = bundled_sources();
        let regimes = regimes_of(&config);
        let selection = if name == "timeline" {
            Selection::Timeline
        } else {
            match regimes.iter().position(|r| r.id == name) {
                Some(i) => Selection::Pinned(i),
                None => {
                    return Err(PolicyError::UnknownPolicy {
                        name: name.to_owned(),
                        known: BUNDLED_NAMES.join(", "),
                    });
                }
            }
        };
        let recipe = PolicyRecipe::Bundled {
            name: name.to_owned(),
            config: config.clone(),
        };
        Policy::load(recipe, name, files, config, regimes, selection)
    }

    /// The bundled policies plus user-written `.cedar` files, on the default timeline (plus the
    /// config's custom regimes). A user file whose file name is a bundled one's (`common.cedar`,
    /// `li-2025-11.cedar`, ...) replaces that bundled file, so an edited copy of the bundle can
    /// be loaded (and compared). The policy's name is the first file's stem.
    pub fn with_files(user: Vec<SourceFile>, config: PolicyConfig) -> Result<Policy, PolicyError> {
        let name = user
            .first()
            .map(|f| {
                std::path::Path::new(&f.name)
                    .file_stem()
                    .map_or(f.name.clone(), |s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "timeline".to_owned());
        let recipe = PolicyRecipe::Files {
            files: user.clone(),
            config: config.clone(),
        };
        let files = with_overrides(bundled_sources(), user);
        let regimes = regimes_of(&config);
        Policy::load(recipe, &name, files, config, regimes, Selection::Timeline)
    }

    /// Makes the policy a [`PolicyRecipe`] describes (see [`Policy::recipe`]).
    pub fn from_recipe(recipe: &PolicyRecipe) -> Result<Policy, PolicyError> {
        match recipe {
            PolicyRecipe::Bundled { name, config } => Policy::bundled(name, config.clone()),
            PolicyRecipe::Files { files, config } => {
                Policy::with_files(files.clone(), config.clone())
            }
        }
    }

    /// How this policy was made.
    pub fn recipe(&self) -> &PolicyRecipe {
        &self.recipe
    }

    /// Resolves `--policy NAME|FILE|DIR`: a bundled name, a path to a `.cedar` file, or a
    /// directory whose `.cedar` files (in name order) are loaded as by [`Policy::with_files`].
    pub fn resolve(name_or_path: &str, config: PolicyConfig) -> Result<Policy, PolicyError> {
        let is_bundled = BUNDLED_NAMES.contains(&name_or_path)
            || config.regimes.iter().any(|r| r.id == name_or_path);
        if is_bundled {
            return Policy::bundled(name_or_path, config);
        }
        let path = std::path::Path::new(name_or_path);
        if path.is_dir() {
            let mut files = Vec::new();
            for path in cedar_files_in(path)? {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::Read {
                    path: name.clone(),
                    source,
                })?;
                files.push(SourceFile { name, text });
            }
            if files.is_empty() {
                return Err(PolicyError::config(
                    name_or_path,
                    "the directory holds no `.cedar` file",
                ));
            }
            return Policy::with_files(files, config);
        }
        if path.extension().is_some_and(|e| e == "cedar") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: name_or_path.to_owned(),
                source,
            })?;
            return Policy::with_files(
                vec![SourceFile {
                    name: name_or_path.to_owned(),
                    text,
                }],
                config,
            );
        }
        Err(PolicyError::UnknownPolicy {
            name: name_or_path.to_owned(),
            known: BUNDLED_NAMES.join(", "),
        })
    }

    fn load(
        recipe: PolicyRecipe,
        name: &str,
        files: Vec<SourceFile>,
        config: PolicyConfig,
        regimes: Vec<RegimeSpec>,
        selection: Selection,
    ) -> Result<Policy, PolicyError> {
        let mut problems = Vec::new();
        let schema = match Schema::from_cedarschema_str(SCHEMA) {
            Ok((schema, _warnings)) => Some(schema),
            Err(e) => {
                problems.push(Problem::from_cedar("schema.cedarschema", SCHEMA, &e, ""));
                None
            }
        };
        let mut set = PolicySet::new();
        let mut reasons = HashMap::new();
        let mut file_of: HashMap<PolicyId, usize> = HashMap::new();
        for (fi, file) in files.iter().enumerate() {
            let parsed = match PolicySet::from_str(&file.text) {
                Ok(p) => p,
                Err(errs) => {
                    for e in errs.iter() {
                        problems.push(Problem::from_cedar(
                            &file.name,
                            &file.text,
                            e,
                            "syntax error: ",
                        ));
                    }
                    continue;
                }
            };
            if parsed.templates().next().is_some() {
                problems.push(Problem::new(
                    &file.name,
                    &file.text,
                    "templates are not supported".into(),
                    None,
                    None,
                ));
            }
            for (n, policy) in parsed.policies().enumerate() {
                let id = match policy.annotation("id") {
                    Some(id) => id.to_owned(),
                    None => format!("{}#{n}", file.name),
                };
                let span = find_span(&file.text, &format!("@id(\"{id}\")"));
                let pid = PolicyId::new(&id);
                if file_of.contains_key(&pid) {
                    problems.push(Problem::new(
                        &file.name,
                        &file.text,
                        format!("duplicate policy id `{id}`"),
                        span,
                        None,
                    ));
                    continue;
                }
                match policy.annotation("reason").map(ReasonCode::from_str) {
                    None => problems.push(Problem::new(
                        &file.name,
                        &file.text,
                        format!("policy `{id}` has no `@reason` annotation"),
                        span,
                        Some("every policy names the reason code it stands for, e.g. `@reason(\"region_suspended\")`".into()),
                    )),
                    Some(Err(e)) => problems.push(Problem::new(
                        &file.name,
                        &file.text,
                        format!("policy `{id}`: {e}"),
                        policy.annotation("reason").and_then(|r| find_span(&file.text, &format!("@reason(\"{r}\")"))),
                        Some(format!("reason codes: {}", ReasonCode::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))),
                    )),
                    Some(Ok(reason)) => {
                        let permits = policy.effect() == Effect::Permit;
                        if permits == (reason.decision() == Decision::Exclude) {
                            problems.push(Problem::new(
                                &file.name,
                                &file.text,
                                format!(
                                    "policy `{id}` is a {} with reason `{reason}`, which {}",
                                    if permits { "permit" } else { "forbid" },
                                    if permits { "excludes" } else { "does not exclude" }
                                ),
                                span,
                                Some("permits carry an include reason (`legitimate_interest`, `consent`); forbids an exclude reason".into()),
                            ));
                        } else {
                            reasons.insert(pid.clone(), reason);
                        }
                    }
                }
                file_of.insert(pid.clone(), fi);
                if let Err(e) = set.add(policy.new_id(pid)) {
                    problems.push(Problem::from_cedar(&file.name, &file.text, &e, ""));
                }
            }
        }
        if let Some(schema) = &schema {
            let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
            for e in result.validation_errors() {
                let f = file_of.get(e.policy_id()).map_or(&files[0], |i| &files[*i]);
                problems.push(Problem::from_cedar(
                    &f.name,
                    &f.text,
                    e,
                    "validation error: ",
                ));
            }
            for w in result.validation_warnings() {
                let f = file_of.get(w.policy_id()).map_or(&files[0], |i| &files[*i]);
                problems.push(Problem::from_cedar(
                    &f.name,
                    &f.text,
                    w,
                    "validation warning (warnings fail): ",
                ));
            }
        }
        for (i, r) in regimes.iter().enumerate() {
            let in_force = r.in_timeline || selection == Selection::Pinned(i);
            let mentioned = r
                .applies
                .iter()
                .any(|id| files.iter().any(|f| f.text.contains(&format!("\"{id}\""))));
            if in_force && !mentioned {
                problems.push(Problem::new(
                    "config",
                    "",
                    format!("regime `{}` can be in force but no policy mentions it", r.id),
                    None,
                    Some(format!(
                        "guard its policies with `context.regimes.contains(\"{}\")`, or extend another regime",
                        r.id
                    )),
                ));
            }
        }
        if regimes.len() > 64 {
            problems.push(Problem::new(
                "config",
                "",
                "more than 64 regimes".into(),
                None,
                None,
            ));
        }
        let Some(schema) = schema else {
            return Err(InvalidPolicy::error(name, problems));
        };
        if !problems.is_empty() {
            return Err(InvalidPolicy::error(name, problems));
        }
        let hash = content_hash(name, &files, &config, &regimes, &selection);
        let mut kinds: Vec<String> = config
            .included_kinds
            .iter()
            .chain(&config.excluded_kinds)
            .cloned()
            .collect();
        kinds.sort();
        kinds.dedup();
        let reads_country = reads_attribute(&set, "country");
        Ok(Policy {
            recipe,
            name: name.to_owned(),
            hash,
            config,
            set,
            schema,
            reasons,
            regimes,
            selection,
            kinds,
            authorizer: Authorizer::new(),
            reads_country,
        })
    }

    /// The policy's name (`timeline`, a regime id, or the user file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 (hex) over the schema, every policy file, the config and the regime timeline.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The config.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The regimes the policy knows.
    pub fn regimes(&self) -> &[RegimeSpec] {
        &self.regimes
    }

    /// The Cedar policy set every decision evaluates (bundled and user policies, ids from
    /// `@id`). Policy proofs (`cg-prove`) read it; deciding goes through [`Policy::explain`]
    /// and the compiled [`crate::Engine`].
    pub fn cedar_policies(&self) -> &PolicySet {
        &self.set
    }

    /// Number of policies in the set.
    pub fn len(&self) -> usize {
        self.set.policies().count()
    }

    /// Whether the set is empty (never, for a loaded policy).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a decision can depend on the member's country itself, not only on what the
    /// country implies (`jurisdiction_known`, `regions`, `consent_age`): whether any policy
    /// names the attribute `country`. When none does, two members whose countries differ but
    /// imply the same are decided alike, and the compiled engine asks Cedar once for both
    /// ([`crate::Engine`]).
    pub fn reads_country(&self) -> bool {
        self.reads_country
    }

    /// The regime at `as_of` and whether a pinned regime is used before its first day.
    pub fn regime_at(&self, as_of: Timestamp) -> Option<(usize, bool)> {
        match self.selection {
            Selection::Pinned(i) => {
                let r = &self.regimes[i];
                Some((i, r.from.is_some_and(|f| as_of.date() < f)))
            }
            Selection::Timeline => self
                .regimes
                .iter()
                .enumerate()
                .filter(|(_, r)| r.in_timeline && r.in_force(as_of))
                .max_by_key(|(_, r)| r.from)
                .map(|(i, _)| (i, false)),
        }
    }

    /// The regime id at `as_of`.
    pub fn regime_id_at(&self, as_of: Timestamp) -> Option<&str> {
        self.regime_at(as_of)
            .map(|(i, _)| self.regimes[i].id.as_str())
    }

    /// Interns a kind into the 8-bit index the tuple carries (unknown kinds share 255).
    pub fn kind_index(&self, kind: &str) -> u8 {
        self.kinds
            .iter()
            .position(|k| k == kind)
            .map_or(u8::MAX, |i| i.min(254) as u8)
    }

    fn kind_name(&self, index: u8) -> &str {
        self.kinds
            .get(usize::from(index))
            .map_or("", String::as_str)
    }

    /// The tuples of an item: one per distinct residence (creation, cut-off). `Err` carries a
    /// verdict decided without Cedar (`after_cutoff`, `member_unknown`, no regime).
    pub fn tuples(&self, item: &ItemFacts<'_>, ctx: &EvalContext) -> Result<Vec<Tuple>, Verdict> {
        if item.created_at > ctx.as_of {
            return Err(Verdict::exclude(ReasonCode::AfterCutoff));
        }
        let Some(m) = &item.member else {
            return Err(Verdict::exclude(ReasonCode::MemberUnknown));
        };
        let Some((regime, not_yet_effective)) = self.regime_at(ctx.as_of) else {
            return Err(Verdict::exclude(ReasonCode::PolicyError));
        };
        let cap = self.config.age_cap();
        let (age_known, age_at_creation, age_now) = match m.birth_date {
            Some(b) => (
                true,
                capped_age(b, item.created_at, cap),
                capped_age(b, ctx.as_of, cap),
            ),
            None => (false, 0, 0),
        };
        let consent = ConsentClass::of(&m.consent, m.other_purpose_grant, &self.config);
        let erased = m.erased_at.is_some_and(|t| t <= ctx.as_of);
        let notice = NoticeState::of(
            m.notice_delivered_at,
            ctx.as_of,
            self.config.notice_window_days,
        );
        let kind = self.kind_index(item.kind);
        let mut out = Vec::with_capacity(2);
        for raw in [m.country_at_creation, m.country_at_cutoff] {
            let (j, _) = classify(raw, &self.config);
            let t = Tuple {
                regime: regime as u8,
                not_yet_effective,
                country: j.country,
                regions: j.regions,
                consent_age: j.consent_age,
                age_known,
                age_at_creation,
                age_now,
                kind,
                consent,
                gpc_signal: m.consent.gpc_signal.is_some(),
                erased,
                notice,
            };
            if !out.contains(&t) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Evaluates one tuple with Cedar.
    pub fn evaluate_tuple(&self, t: &Tuple, purpose: &Purpose) -> Decided {
        let attrs = Attrs {
            jurisdiction_known: t.country.is_some(),
            country: t.country.map_or(String::new(), |c| c.as_str().to_owned()),
            regions: t.regions,
            consent_age: i64::from(t.consent_age),
            age_known: t.age_known,
            age_at_creation: i64::from(t.age_at_creation),
            age_now: i64::from(t.age_now),
            consent: t.consent.as_str(),
            gpc_signal: t.gpc_signal,
            erased: t.erased,
            notice: t.notice.as_str(),
            kind: if t.kind == u8::MAX {
                ""
            } else {
                self.kind_name(t.kind)
            },
        };
        self.evaluate_attrs(&attrs, usize::from(t.regime), t.not_yet_effective, purpose)
    }

    /// Decides an item directly from its raw facts, without tuples or memoisation: exact ages,
    /// the raw kind. The reference the decision table is tested against.
    pub fn evaluate_direct(&self, item: &ItemFacts<'_>, ctx: &EvalContext) -> Decided {
        if item.created_at > ctx.as_of {
            return undecided(Verdict::exclude(ReasonCode::AfterCutoff));
        }
        let Some(m) = &item.member else {
            return undecided(Verdict::exclude(ReasonCode::MemberUnknown));
        };
        let Some((regime, nye)) = self.regime_at(ctx.as_of) else {
            return undecided(Verdict::exclude(ReasonCode::PolicyError));
        };
        let mut results = Vec::new();
        for raw in [m.country_at_creation, m.country_at_cutoff] {
            let attrs = direct_attrs(m, raw, item, ctx, &self.config);
            results.push(self.evaluate_attrs(&attrs, regime, nye, &ctx.purpose));
        }
        most_protective(results)
    }

    fn evaluate_attrs(
        &self,
        a: &Attrs<'_>,
        regime: usize,
        not_yet_effective: bool,
        purpose: &Purpose,
    ) -> Decided {
        match self.authorize(a, regime, not_yet_effective, purpose) {
            Ok(d) => d,
            Err(message) => Decided {
                verdict: Verdict::exclude(ReasonCode::PolicyError),
                policies: vec![message],
            },
        }
    }

    fn authorize(
        &self,
        a: &Attrs<'_>,
        regime: usize,
        nye: bool,
        purpose: &Purpose,
    ) -> Result<Decided, String> {
        let member_type = EntityTypeName::from_str("Member").map_err(|e| e.to_string())?;
        let content_type = EntityTypeName::from_str("Content").map_err(|e| e.to_string())?;
        let principal = EntityUid::from_type_name_and_id(member_type, EntityId::new("m"));
        let resource = EntityUid::from_type_name_and_id(content_type, EntityId::new("c"));
        let action = EntityUid::from_str(r#"Action::"train""#).map_err(|e| e.to_string())?;
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let set = |vs: &mut dyn Iterator<Item = &str>| {
            RestrictedExpression::new_set(vs.map(s).collect::<Vec<_>>())
        };
        let member = Entity::new(
            principal.clone(),
            HashMap::from([
                (
                    "jurisdiction_known".to_owned(),
                    RestrictedExpression::new_bool(a.jurisdiction_known),
                ),
                ("country".to_owned(), s(&a.country)),
                (
                    "regions".to_owned(),
                    set(&mut a.regions.iter().map(|r| r.as_str())),
                ),
                (
                    "consent_age".to_owned(),
                    RestrictedExpression::new_long(a.consent_age),
                ),
                (
                    "age_known".to_owned(),
                    RestrictedExpression::new_bool(a.age_known),
                ),
                (
                    "age_at_creation".to_owned(),
                    RestrictedExpression::new_long(a.age_at_creation),
                ),
                (
                    "age_now".to_owned(),
                    RestrictedExpression::new_long(a.age_now),
                ),
                ("consent".to_owned(), s(a.consent)),
                (
                    "gpc_signal".to_owned(),
                    RestrictedExpression::new_bool(a.gpc_signal),
                ),
                (
                    "erased".to_owned(),
                    RestrictedExpression::new_bool(a.erased),
                ),
                ("notice".to_owned(), s(a.notice)),
            ]),
            Default::default(),
        )
        .map_err(|e| e.to_string())?;
        let content = Entity::new(
            resource.clone(),
            HashMap::from([("kind".to_owned(), s(a.kind))]),
            Default::default(),
        )
        .map_err(|e| e.to_string())?;
        let entities = Entities::from_entities([member, content], Some(&self.schema))
            .map_err(|e| e.to_string())?;
        let r = &self.regimes[regime];
        let context = Context::from_pairs([
            ("purpose".to_owned(), s(purpose.as_str())),
            ("regime".to_owned(), s(&r.id)),
            (
                "regimes".to_owned(),
                set(&mut r.applies.iter().map(String::as_str)),
            ),
            (
                "regime_not_yet_effective".to_owned(),
                RestrictedExpression::new_bool(nye),
            ),
            (
                "minimum_age".to_owned(),
                RestrictedExpression::new_long(i64::from(self.config.minimum_age)),
            ),
            (
                "age_cap".to_owned(),
                RestrictedExpression::new_long(i64::from(self.config.age_cap())),
            ),
            (
                "included_kinds".to_owned(),
                set(&mut self.config.included_kinds.iter().map(String::as_str)),
            ),
            (
                "excluded_kinds".to_owned(),
                set(&mut self.config.excluded_kinds.iter().map(String::as_str)),
            ),
            (
                "gpc_as_objection".to_owned(),
                RestrictedExpression::new_bool(self.config.gpc_as_objection),
            ),
            (
                "notice_window_days".to_owned(),
                RestrictedExpression::new_long(i64::from(self.config.notice_window_days)),
            ),
        ])
        .map_err(|e| e.to_string())?;
        let request = Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        if !errors.is_empty() {
            // Cedar skips erroring policies; the gate never does.
            return Ok(Decided {
                verdict: Verdict::exclude(ReasonCode::PolicyError),
                policies: errors,
            });
        }
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|p| p.to_string())
            .collect();
        policies.sort();
        let reasons: Vec<ReasonCode> = response
            .diagnostics()
            .reason()
            .filter_map(|p| self.reasons.get(p).copied())
            .collect();
        let verdict = match response.decision() {
            CedarDecision::Allow => Verdict::from_reasons(reasons),
            CedarDecision::Deny if reasons.is_empty() => {
                policies = vec!["no policy permits this use".to_owned()];
                Verdict::exclude(ReasonCode::PolicyError)
            }
            CedarDecision::Deny => {
                let v = Verdict::from_reasons(reasons);
                if v.decision() == Decision::Exclude {
                    v
                } else {
                    Verdict::exclude(ReasonCode::PolicyError)
                }
            }
        };
        Ok(Decided { verdict, policies })
    }

    /// Explains an item: the decision, all reasons, the regime, the normalised jurisdiction at
    /// the cut-off, the deciding policies and notes on normalisation and conflicts.
    pub fn explain(&self, item: &ItemFacts<'_>, ctx: &EvalContext) -> Explanation {
        let mut notes = Vec::new();
        let decided = match self.tuples(item, ctx) {
            Err(v) => undecided(v),
            Ok(tuples) => {
                let results: Vec<Decided> = tuples
                    .iter()
                    .map(|t| self.evaluate_tuple(t, &ctx.purpose))
                    .collect();
                if results.len() > 1 && results[0].verdict != results[1].verdict {
                    notes.push("jurisdiction_conflict_most_protective".to_owned());
                }
                most_protective(results)
            }
        };
        let mut jurisdiction = None;
        if let Some(m) = &item.member {
            for raw in [m.country_at_creation, m.country_at_cutoff] {
                if let Ok(j) = Jurisdiction::normalize(raw) {
                    if let Some(n) = j.note() {
                        notes.push(n.to_string());
                    }
                    if let Some(u) = j.uk_like_mapping(self.config.region_flags()) {
                        notes.push(u.to_owned());
                    }
                }
            }
            jurisdiction = Jurisdiction::normalize(m.country_at_cutoff)
                .ok()
                .map(|j| j.to_string());
        }
        notes.dedup();
        let regime = self.regime_id_at(ctx.as_of).map(str::to_owned);
        Explanation {
            decision: decided.verdict.decision(),
            reasons: decided.verdict.reasons().to_vec(),
            regime,
            jurisdiction,
            policies: decided.policies,
            notes,
            policy: self.name.clone(),
            policy_hash: self.hash.clone(),
            as_of: ctx.as_of,
        }
    }
}

/// Everything `policy explain` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The decision.
    pub decision: Decision,
    /// All reason codes, headline first.
    pub reasons: Vec<ReasonCode>,
    /// The regime in force (or pinned).
    pub regime: Option<String>,
    /// The normalised jurisdiction at the cut-off, if known.
    pub jurisdiction: Option<String>,
    /// The deciding policies.
    pub policies: Vec<String>,
    /// Explanations attached to the decision (`territory_normalized(RE→FR)`, ...).
    pub notes: Vec<String>,
    /// The policy's name.
    pub policy: String,
    /// The policy's content hash.
    pub policy_hash: String,
    /// The evaluation time.
    pub as_of: Timestamp,
}

fn undecided(verdict: Verdict) -> Decided {
    Decided {
        verdict,
        policies: Vec::new(),
    }
}

/// The most protective of several outcomes: the most restrictive decision; when several
/// exclude, the union of their reasons and policies.
pub fn most_protective(results: Vec<Decided>) -> Decided {
    let Some(worst) = results.iter().map(|d| d.verdict.decision()).max() else {
        return undecided(Verdict::exclude(ReasonCode::PolicyError));
    };
    let chosen: Vec<&Decided> = results
        .iter()
        .filter(|d| d.verdict.decision() == worst)
        .collect();
    if chosen.len() == 1 || worst != Decision::Exclude {
        return chosen[0].clone();
    }
    let reasons: Vec<ReasonCode> = chosen
        .iter()
        .flat_map(|d| d.verdict.reasons().iter().copied())
        .collect();
    let policies: BTreeSet<String> = chosen
        .iter()
        .flat_map(|d| d.policies.iter().cloned())
        .collect();
    Decided {
        verdict: Verdict::from_reasons(reasons),
        policies: policies.into_iter().collect(),
    }
}

struct Attrs<'a> {
    jurisdiction_known: bool,
    country: String,
    regions: RegionSet,
    consent_age: i64,
    age_known: bool,
    age_at_creation: i64,
    age_now: i64,
    consent: &'a str,
    gpc_signal: bool,
    erased: bool,
    notice: &'a str,
    kind: &'a str,
}

fn direct_attrs<'a>(
    m: &'a MemberView<'a>,
    raw: Option<&str>,
    item: &'a ItemFacts<'a>,
    ctx: &EvalContext,
    config: &PolicyConfig,
) -> Attrs<'a> {
    let j = Jurisdiction::normalize(raw).ok();
    let (age_at_creation, age_now) = m.birth_date.map_or((0, 0), |b| {
        (
            i64::from(cg_model::age::age_at(b, item.created_at)),
            i64::from(cg_model::age::age_at(b, ctx.as_of)),
        )
    });
    Attrs {
        jurisdiction_known: j.is_some(),
        country: j
            .as_ref()
            .map_or(String::new(), |j| j.country().as_str().to_owned()),
        regions: j
            .as_ref()
            .map_or(RegionSet::EMPTY, |j| j.regions(config.region_flags())),
        consent_age: j
            .as_ref()
            .map_or(i64::from(cg_model::age::DEFAULT_CONSENT_AGE), |j| {
                i64::from(cg_model::age::consent_age(j))
            }),
        age_known: m.birth_date.is_some(),
        age_at_creation,
        age_now,
        consent: ConsentClass::of(&m.consent, m.other_purpose_grant, config).as_str(),
        gpc_signal: m.consent.gpc_signal.is_some(),
        erased: m.erased_at.is_some_and(|t| t <= ctx.as_of),
        notice: NoticeState::of(m.notice_delivered_at, ctx.as_of, config.notice_window_days)
            .as_str(),
        kind: item.kind,
    }
}

/// The `.cedar` files directly inside `dir`, sorted by path.
fn cedar_files_in(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, PolicyError> {
    let read = |source| PolicyError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "cedar") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// `bundled` with each user file either replacing the bundled file of the same file name or
/// appended.
fn with_overrides(mut bundled: Vec<SourceFile>, user: Vec<SourceFile>) -> Vec<SourceFile> {
    for file in user {
        let base = std::path::Path::new(&file.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        match bundled.iter_mut().find(|b| Some(&b.name) == base.as_ref()) {
            Some(replaced) => *replaced = file,
            None => bundled.push(file),
        }
    }
    bundled
}

fn bundled_sources() -> Vec<SourceFile> {
    BUNDLED_FILES
        .iter()
        .map(|(n, t)| SourceFile {
            name: (*n).to_owned(),
            text: (*t).to_owned(),
        })
        .collect()
}

/// The bundled regimes plus the config's custom ones, with `applies` closed over `extends`.
fn regimes_of(config: &PolicyConfig) -> Vec<RegimeSpec> {
    let mut extends: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut out: Vec<RegimeSpec> = REGIMES
        .iter()
        .map(|r| RegimeSpec {
            id: r.id.to_owned(),
            from: r.effective_from,
            until: r.effective_until,
            applies: vec![r.id.to_owned()],
            in_timeline: r.in_timeline,
        })
        .collect();
    for c in &config.regimes {
        extends.insert(c.id.clone(), c.extends.clone());
        let spec = RegimeSpec {
            id: c.id.clone(),
            from: c.from,
            until: c.until,
            applies: vec![c.id.clone()],
            in_timeline: c.in_timeline,
        };
        match out.iter_mut().find(|r| r.id == c.id) {
            Some(existing) => *existing = spec,
            None => out.push(spec),
        }
    }
    for r in &mut out {
        let mut stack: Vec<String> = extends.get(&r.id).cloned().unwrap_or_default();
        while let Some(x) = stack.pop() {
            if !r.applies.contains(&x) {
                stack.extend(extends.get(&x).cloned().unwrap_or_default());
                r.applies.push(x);
            }
        }
    }
    out
}

fn find_span(text: &str, needle: &str) -> Option<miette::SourceSpan> {
    text.find(needle)
        .map(|o| miette::SourceSpan::from((o, needle.len())))
}

fn content_hash(
    name: &str,
    files: &[SourceFile],
    config: &PolicyConfig,
    regimes: &[RegimeSpec],
    selection: &Selection,
) -> String {
    let mut h = Sha256::new();
    h.update(b"consentgate-policy-v1\0");
    h.update(name.as_bytes());
    h.update(b"\0");
    h.update(SCHEMA.as_bytes());
    let mut sorted: Vec<&SourceFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for f in sorted {
        h.update(b"\0file\0");
        h.update(f.name.as_bytes());
        h.update(b"\0");
        h.update(f.text.as_bytes());
    }
    h.update(b"\0config\0");
    h.update(serde_json::to_vec(config).unwrap_or_default());
    h.update(b"\0regimes\0");
    h.update(serde_json::to_vec(regimes).unwrap_or_default());
    h.update(format!("{selection:?}").as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
