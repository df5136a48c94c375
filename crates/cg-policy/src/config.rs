//! The policy configuration: parameters the bundled policies read (a TOML file, overridable
//! with `--set name=value`) and custom regimes that extend the timeline.
//!
//! ```toml
//! minimum_age = 18                  # 0 turns the platform floor off
//! excluded_kinds = ["message", "salary", "credential", "payment", "job_application"]
//! included_kinds = ["post", "comment", "article", "group_message", "profile"]
//! gibraltar_as_uk = true
//! crown_dependencies_as_uk = true
//! gpc_as_objection = true
//! notice_window_days = 0
//! accepted_notice_versions = []     # empty: any notice version is accepted
//!
//! [[regime]]                        # a custom regime (policies guard on its id)
//! id = "fr-suspension-2026"
//! from = "2026-03-01"
//! extends = ["li-2025-11"]
//!
//! [[purpose]]                       # a purpose beyond the default catalogue
//! name = "ads_personalization"
//! description = "Personalising ads"
//! ```

use cg_model::jurisdiction::RegionFlags;
use cg_model::purpose::ContentKind;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::error::PolicyError;

/// Largest `minimum_age` accepted (ages are packed as `age + 1` in 5 bits, capped at
/// `minimum_age + 1`).
pub const MAX_MINIMUM_AGE: u8 = 29;

/// Parameters of a policy evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Platform minimum age (18); 0 turns the floor off so only national consent ages apply.
    pub minimum_age: u8,
    /// Kinds never used.
    pub excluded_kinds: Vec<String>,
    /// Kinds that may be used; any kind in neither list is excluded (fail closed).
    pub included_kinds: Vec<String>,
    /// Count Gibraltar as UK.
    pub gibraltar_as_uk: bool,
    /// Count Jersey, Guernsey and the Isle of Man as UK.
    pub crown_dependencies_as_uk: bool,
    /// Count a GPC signal as an objection.
    pub gpc_as_objection: bool,
    /// Days a notice must have been delivered before training starts in newly enabled regions.
    pub notice_window_days: u32,
    /// Notice versions a grant must have been given under; empty accepts any.
    pub accepted_notice_versions: Vec<String>,
    /// Custom regimes.
    #[serde(rename = "regime")]
    pub regimes: Vec<RegimeConfig>,
    /// Purposes beyond the default catalogue (the ledger's import and API accept them, and a
    /// build may name them). Left out of the serialised form when empty, so policy hashes of
    /// configs without purposes do not change.
    #[serde(rename = "purpose", skip_serializing_if = "Vec::is_empty")]
    pub purposes: Vec<PurposeConfig>,
}

/// A purpose from the config (`[[purpose]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeConfig {
    /// Its name (lower-case snake_case).
    pub name: String,
    /// What it is for (shown to people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A custom regime from the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegimeConfig {
    /// Its id (policies guard on `context.regimes.contains(id)`).
    pub id: String,
    /// First day in force (inclusive).
    #[serde(default, with = "opt_date")]
    pub from: Option<Date>,
    /// Last day in force (inclusive).
    #[serde(default, with = "opt_date")]
    pub until: Option<Date>,
    /// Regimes whose policies also apply while this one is in force.
    #[serde(default)]
    pub extends: Vec<String>,
    /// Whether it joins the default timeline (default true).
    #[serde(default = "yes")]
    pub in_timeline: bool,
}

fn yes() -> bool {
    true
}

mod opt_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| cg_model::instant::parse_date(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            minimum_age: cg_model::age::PLATFORM_MINIMUM_AGE,
            excluded_kinds: ContentKind::DEFAULT_EXCLUDED
                .iter()
                .map(|s| s.to_string())
                .collect(),
            included_kinds: ContentKind::DEFAULT_INCLUDED
                .iter()
                .map(|s| s.to_string())
                .collect(),
            gibraltar_as_uk: true,
            crown_dependencies_as_uk: true,
            gpc_as_objection: true,
            notice_window_days: 0,
            accepted_notice_versions: Vec::new(),
            regimes: Vec::new(),
            purposes: Vec::new(),
        }
    }
}

impl PolicyConfig {
    /// Parses a TOML config; `name` is used in errors.
    pub fn from_toml(name: &str, text: &str) -> Result<PolicyConfig, PolicyError> {
        let cfg: PolicyConfig =
            toml::from_str(text).map_err(|e| PolicyError::config(name, e.to_string()))?;
        cfg.validate(name)?;
        Ok(cfg)
    }

    /// Applies one `name=value` override; the value is TOML (`18`, `false`, `["message"]`),
    /// and a bare word is taken as a string.
    pub fn set(&mut self, assignment: &str) -> Result<(), PolicyError> {
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| PolicyError::setting(assignment, "expected `name=value`"))?;
        let (name, value) = (name.trim(), value.trim());
        let mut table = toml::Table::try_from(&*self)
            .map_err(|e| PolicyError::setting(assignment, e.to_string()))?;
        if name == "regime" || !table.contains_key(name) && !KNOWN.contains(&name) {
            return Err(PolicyError::setting(
                assignment,
                format!("unknown setting `{name}`; settings: {}", KNOWN.join(", ")),
            ));
        }
        let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
            Ok(mut t) => t
                .remove("v")
                .unwrap_or(toml::Value::String(value.to_owned())),
            Err(_) => toml::Value::String(value.to_owned()),
        };
        table.insert(name.to_owned(), parsed);
        let updated: PolicyConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    PolicyError::setting(assignment, e.message().to_owned())
                })?;
        updated.validate(assignment)?;
        *self = updated;
        Ok(())
    }

    fn validate(&self, name: &str) -> Result<(), PolicyError> {
        if self.minimum_age > MAX_MINIMUM_AGE {
            return Err(PolicyError::config(
                name,
                format!("minimum_age must be at most {MAX_MINIMUM_AGE}"),
            ));
        }
        for k in self.excluded_kinds.iter().chain(&self.included_kinds) {
            ContentKind::new(k).map_err(|e| PolicyError::config(name, e.to_string()))?;
        }
        for p in &self.purposes {
            cg_model::Purpose::new(&p.name)
                .map_err(|e| PolicyError::config(name, e.to_string()))?;
        }
        for r in &self.regimes {
            if r.id.is_empty()
                || !r
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(PolicyError::config(
                    name,
                    format!("regime id `{}` must be letters, digits, `-` or `_`", r.id),
                ));
            }
        }
        Ok(())
    }

    /// The purposes this deployment accepts: the default catalogue and the configured ones.
    pub fn catalogue(&self) -> Vec<&str> {
        let mut names: Vec<&str> = cg_model::Purpose::DEFAULT_CATALOGUE.to_vec();
        for p in &self.purposes {
            if !names.contains(&p.name.as_str()) {
                names.push(&p.name);
            }
        }
        names
    }

    /// A purpose of the catalogue (spelling and membership checked).
    pub fn purpose(&self, name: &str) -> Result<cg_model::Purpose, cg_model::purpose::NameError> {
        cg_model::Purpose::in_catalogue(name, &self.catalogue())
    }

    /// The region flags.
    pub fn region_flags(&self) -> RegionFlags {
        RegionFlags {
            gibraltar_as_uk: self.gibraltar_as_uk,
            crown_dependencies_as_uk: self.crown_dependencies_as_uk,
        }
    }

    /// Ages at or above this value are reported as this value.
    pub fn age_cap(&self) -> u8 {
        self.minimum_age.max(cg_model::age::DEFAULT_CONSENT_AGE) + 1
    }

    /// Whether a grant under `notice_version` is accepted.
    pub fn accepts_notice(&self, notice_version: Option<&str>) -> bool {
        self.accepted_notice_versions.is_empty()
            || notice_version.is_some_and(|v| self.accepted_notice_versions.iter().any(|a| a == v))
    }
}

/// The names `--set` accepts.
pub const KNOWN: &[&str] = &[
    "minimum_age",
    "excluded_kinds",
    "included_kinds",
    "gibraltar_as_uk",
    "crown_dependencies_as_uk",
    "gpc_as_objection",
    "notice_window_days",
    "accepted_notice_versions",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_domain_a2() {
        let c = PolicyConfig::default();
        assert_eq!(c.minimum_age, 18);
        assert!(c.gibraltar_as_uk && c.crown_dependencies_as_uk && c.gpc_as_objection);
        assert_eq!(
            c.excluded_kinds,
            [
                "message",
                "salary",
                "credential",
                "payment",
                "job_application"
            ]
        );
        assert_eq!(c.age_cap(), 19);
        assert!(c.accepts_notice(None));
    }

    #[test]
    fn settings_override_with_toml_values() {
        let mut c = PolicyConfig::default();
        c.set("minimum_age=0").unwrap();
        c.set("gpc_as_objection=false").unwrap();
        c.set("excluded_kinds=[\"message\"]").unwrap();
        c.set("accepted_notice_versions=[\"2025-09\"]").unwrap();
        assert_eq!(c.minimum_age, 0);
        assert!(!c.gpc_as_objection);
        assert_eq!(c.excluded_kinds, ["message"]);
        assert!(
            c.accepts_notice(Some("2025-09"))
                && !c.accepts_notice(Some("v1"))
                && !c.accepts_notice(None)
        );
        for bad in [
            "minimum_age",
            "minimum_age=old",
            "minimum_age=99",
            "nope=1",
            "gpc_as_objection=maybe",
            "regime=[]",
        ] {
            assert!(c.set(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn toml_with_custom_regime() {
        let c = PolicyConfig::from_toml(
            "p.toml",
            "minimum_age = 16\n[[regime]]\nid = \"fr-2026\"\nfrom = \"2026-03-01\"\nextends = [\"li-2025-11\"]\n",
        )
        .unwrap();
        assert_eq!(c.regimes[0].from.unwrap().to_string(), "2026-03-01");
        assert!(c.regimes[0].in_timeline);
        let err = PolicyConfig::from_toml("p.toml", "minimum_agee = 1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.toml") && err.contains("minimum_agee"),
            "{err}"
        );
    }
}
