//! Purposes of processing and content kinds: names are data, validated for spelling.
//!
//! A purpose names what the data would be used for (`genai_training`: training models that
//! generate content). The catalogue of purposes a deployment accepts is data too
//! ([`Purpose::DEFAULT_CATALOGUE`]); a misspelt purpose is an error, never a silent new purpose.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A purpose of processing, e.g. `genai_training`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Purpose(String);

/// A purpose or kind name that is misspelt or not in the catalogue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not lower-case snake_case of 1–64 characters.
    #[error("`{0}` is not a valid name: use lower-case snake_case, e.g. `genai_training`")]
    Spelling(String),
    /// Well-formed but not a purpose this deployment knows.
    #[error("unknown purpose `{name}`; known purposes: {known}")]
    UnknownPurpose {
        /// The name given.
        name: String,
        /// The catalogue, comma-separated.
        known: String,
    },
}

fn is_snake_case(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !s.ends_with('_')
        && !s.contains("__")
}

impl Purpose {
    /// Training models that generate content: the purpose the gate exists for.
    pub const GENAI_TRAINING: &'static str = "genai_training";

    /// The purposes known out of the box.
    pub const DEFAULT_CATALOGUE: &'static [&'static str] = &[
        "genai_training",
        "ranking_training",
        "personalisation",
        "safety_training",
        "analytics",
        "marketing",
    ];

    /// `genai_training`.
    pub fn genai_training() -> Purpose {
        Purpose(Self::GENAI_TRAINING.to_owned())
    }

    /// Checks spelling only (any well-formed name).
    pub fn new(name: &str) -> Result<Purpose, NameError> {
        if is_snake_case(name) {
            Ok(Purpose(name.to_owned()))
        } else {
            Err(NameError::Spelling(name.to_owned()))
        }
    }

    /// Checks spelling and membership of `catalogue`.
    pub fn in_catalogue(name: &str, catalogue: &[&str]) -> Result<Purpose, NameError> {
        let purpose = Purpose::new(name)?;
        if catalogue.contains(&name) {
            Ok(purpose)
        } else {
            Err(NameError::UnknownPurpose {
                name: name.to_owned(),
                known: catalogue.join(", "),
            })
        }
    }

    /// Checks spelling and membership of the default catalogue.
    pub fn known(name: &str) -> Result<Purpose, NameError> {
        Purpose::in_catalogue(name, Self::DEFAULT_CATALOGUE)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Purpose {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_snake_case(&s) {
            Ok(Purpose(s))
        } else {
            Err(NameError::Spelling(s))
        }
    }
}

impl From<Purpose> for String {
    fn from(p: Purpose) -> String {
        p.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content kind (`post`, `comment`, `message`, ...). Which kinds are excluded is policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentKind(String);

impl ContentKind {
    /// Kinds included by default (DOMAIN.md A2).
    pub const DEFAULT_INCLUDED: &'static [&'static str] =
        &["post", "comment", "article", "group_message", "profile"];
    /// Kinds excluded by default (DOMAIN.md A2): private messages, salary, credentials,
    /// payment data and job-application data.
    pub const DEFAULT_EXCLUDED: &'static [&'static str] = &[
        "message",
        "salary",
        "credential",
        "payment",
        "job_application",
    ];

    /// Checks spelling (lower-case snake_case).
    pub fn new(name: &str) -> Result<ContentKind, NameError> {
        if is_snake_case(name) {
            Ok(ContentKind(name.to_owned()))
        } else {
            Err(NameError::Spelling(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContentKind {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ContentKind::new(&s)
    }
}

impl From<ContentKind> for String {
    fn from(k: ContentKind) -> String {
        k.0
    }
}

impl fmt::Display for ContentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_are_checked() {
        assert_eq!(
            Purpose::known("genai_training").unwrap(),
            Purpose::genai_training()
        );
        assert!(matches!(
            Purpose::known("GenAI-Training"),
            Err(NameError::Spelling(_))
        ));
        assert!(matches!(
            Purpose::known("genai_trainin"),
            Err(NameError::UnknownPurpose { .. })
        ));
        for bad in ["", "_x", "x_", "a__b", "Ab", "a b", "é"] {
            assert!(Purpose::new(bad).is_err(), "{bad}");
        }
        let err = Purpose::known("genai").unwrap_err().to_string();
        assert!(err.contains("genai_training"), "{err}");
    }

    #[test]
    fn default_kind_lists_are_disjoint_and_well_formed() {
        for k in ContentKind::DEFAULT_INCLUDED
            .iter()
            .chain(ContentKind::DEFAULT_EXCLUDED)
        {
            ContentKind::new(k).unwrap();
        }
        assert!(
            ContentKind::DEFAULT_INCLUDED
                .iter()
                .all(|k| !ContentKind::DEFAULT_EXCLUDED.contains(k))
        );
    }
}
