//! [`Redactor`]: the single-pass engine.
//!
//! 1. **Scanner** ([`crate::scan`]): one pass over the bytes finds every structured entity
//!    (e-mail, obfuscated e-mail, URL, mention, IPv4/IPv6, SSN, NINO, IBAN, card, phone) and
//!    validates it on the spot; no regex runs and nothing is compiled after start-up.
//! 2. **Custom patterns** (config or `--pattern`): one `regex-automata` multi-pattern regex,
//!    only when there are any; their spans take priority.
//! 3. **Names**: one Aho-Corasick automaton over the caller's gazetteer (excluded members'
//!    names and handles), and one over common given names followed by a common surname.
//!
//! Spans never split a code point: every entity starts and ends on ASCII or whole characters.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_automata::meta::Regex;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

use crate::entity::EntityType;
use crate::names;

/// A found entity: byte offsets into the text (end exclusive) and its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What it is.
    pub kind: EntityType,
}

/// The same span in character offsets (Unicode scalar values).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CharSpan {
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The type name.
    #[serde(rename = "type")]
    pub kind: EntityType,
}

/// How found entities are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// `<EMAIL>`, `<PHONE>`, ...
    Placeholder,
    /// `<EMAIL_1a2b3c4d>`: the same value gives the same token under the same key.
    Pseudonym,
}

/// Errors building an engine.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// A custom pattern does not compile.
    #[error("invalid custom pattern `{name}`: {message}")]
    Pattern {
        /// The pattern's name.
        name: String,
        /// The compiler's message.
        message: String,
    },
    /// The name automaton could not be built.
    #[error("cannot build the name automaton: {0}")]
    Names(String),
}

/// Builds a [`Redactor`].
#[derive(Debug, Default)]
pub struct RedactorBuilder {
    gazetteer: Vec<(String, EntityType)>,
    custom: Vec<(String, String)>,
    common_names: bool,
    key: Vec<u8>,
}

impl RedactorBuilder {
    /// Adds names to find verbatim (case-insensitive, whole words), e.g. excluded members'
    /// display names (`PERSON`) and handles (`MENTION`).
    pub fn gazetteer(mut self, entries: impl IntoIterator<Item = (String, EntityType)>) -> Self {
        self.gazetteer.extend(
            entries
                .into_iter()
                .filter(|(n, _)| n.trim().chars().count() >= 2),
        );
        self
    }

    /// Adds a custom pattern (regex syntax) reported as `name`; custom patterns take priority.
    pub fn custom(mut self, name: &str, pattern: &str) -> Self {
        self.custom.push((name.to_owned(), pattern.to_owned()));
        self
    }

    /// Finds person names from the built-in name lists and context (on by default through
    /// [`Redactor::new`]; the gazetteer works either way).
    pub fn common_names(mut self, on: bool) -> Self {
        self.common_names = on;
        self
    }

    /// The secret for pseudonyms.
    pub fn pseudonym_key(mut self, key: &[u8]) -> Self {
        self.key = key.to_vec();
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Result<Redactor, RedactError> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut kinds = Vec::new();
        for (name, pattern) in &self.custom {
            Regex::new(pattern).map_err(|e| RedactError::Pattern {
                name: name.clone(),
                message: e.to_string(),
            })?;
            patterns.push(pattern);
            kinds.push(EntityType::Custom(name.clone()));
        }
        let custom = if patterns.is_empty() {
            None
        } else {
            let regex = Regex::new_many(&patterns).map_err(|e| RedactError::Pattern {
                name: "custom".into(),
                message: e.to_string(),
            })?;
            Some((regex, kinds))
        };
        let gazetteer = if self.gazetteer.is_empty() {
            None
        } else {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(self.gazetteer.iter().map(|(n, _)| n.trim()))
                .map_err(|e| RedactError::Names(e.to_string()))?;
            Some((ac, self.gazetteer.iter().map(|(_, k)| k.clone()).collect()))
        };
        Ok(Redactor {
            custom,
            gazetteer,
            names: self.common_names.then(names::Names::new),
            key: self.key,
        })
    }
}

/// The PII engine. Build once, share across threads.
#[derive(Debug)]
pub struct Redactor {
    custom: Option<(Regex, Vec<EntityType>)>,
    gazetteer: Option<(AhoCorasick, Vec<EntityType>)>,
    names: Option<names::Names>,
    key: Vec<u8>,
}

fn word_boundary_before(text: &str, at: usize) -> bool {
    text[..at]
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_alphanumeric() && c != '_')
}

fn word_boundary_after(text: &str, at: usize) -> bool {
    text[at..]
        .chars()
        .next()
        .is_none_or(|c| !c.is_alphanumeric() && c != '_')
}

impl Redactor {
    /// An engine with the built-in patterns and common-name pairs, no gazetteer.
    pub fn new() -> Result<Redactor, RedactError> {
        Redactor::builder().common_names(true).build()
    }

    /// A builder.
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder::default()
    }

    /// All entities in `text` (byte spans, sorted, non-overlapping). `hint` is the author's
    /// country (ISO alpha-2), used for national phone formats.
    pub fn find(&self, text: &str, hint: Option<&str>) -> Vec<Span> {
        let mut spans = Vec::new();
        self.find_into(text, hint, &mut spans);
        spans
    }

    /// [`Redactor::find`] into a buffer the caller reuses (cleared first). The author's country
    /// is no longer needed to find national phone numbers (their shape and cues decide); the
    /// parameter stays for callers and future per-country rules.
    pub fn find_into(&self, text: &str, _hint: Option<&str>, spans: &mut Vec<Span>) {
        spans.clear();
        let mut custom_end = 0;
        if let Some((regex, kinds)) = &self.custom {
            for m in regex.find_iter(text) {
                if m.start() < m.end() {
                    spans.push(Span {
                        start: m.start(),
                        end: m.end(),
                        kind: kinds[m.pattern().as_usize()].clone(),
                    });
                }
            }
            custom_end = spans.len();
        }
        crate::scan::scan(text, self.names.as_ref(), spans);
        if let Some((ac, kinds)) = &self.gazetteer {
            for m in ac.find_iter(text) {
                if word_boundary_before(text, m.start()) && word_boundary_after(text, m.end()) {
                    spans.push(Span {
                        start: m.start(),
                        end: m.end(),
                        kind: kinds[m.pattern().as_usize()].clone(),
                    });
                }
            }
        }
        resolve_overlaps(spans, custom_end);
    }

    /// Replaces every entity; returns the text (borrowed when nothing was found).
    pub fn redact<'t>(&self, text: &'t str, hint: Option<&str>, how: Replacement) -> Cow<'t, str> {
        let spans = self.find(text, hint);
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(self.apply(text, &spans, how))
    }

    /// Replaces `spans` (sorted, non-overlapping) in `text`.
    pub fn apply(&self, text: &str, spans: &[Span], how: Replacement) -> String {
        let mut out = String::with_capacity(text.len());
        self.apply_with(text, spans, how, |piece| out.push_str(piece));
        out
    }

    /// [`Redactor::apply`] appended to a byte buffer (UTF-8), without a `String` per text.
    pub fn apply_into(&self, text: &str, spans: &[Span], how: Replacement, out: &mut Vec<u8>) {
        out.reserve(text.len());
        self.apply_with(text, spans, how, |piece| {
            out.extend_from_slice(piece.as_bytes())
        });
    }

    /// The pieces of the redacted text, in order: the text between spans and each span's
    /// replacement, handed to `put` (a caller writing into a buffer of its own, such as an
    /// Arrow string column, needs no `String` per text).
    pub fn apply_with(
        &self,
        text: &str,
        spans: &[Span],
        how: Replacement,
        mut put: impl FnMut(&str),
    ) {
        let mut last = 0;
        for s in spans {
            put(&text[last..s.start]);
            put("<");
            put(s.kind.as_str());
            if how == Replacement::Pseudonym {
                put("_");
                put(&self.pseudonym(&s.kind, &text[s.start..s.end]));
            }
            put(">");
            last = s.end;
        }
        put(&text[last..]);
    }

    /// HMAC-SHA256(key, type ‖ 0 ‖ lower-cased value), first 4 bytes in hex.
    fn pseudonym(&self, kind: &EntityType, value: &str) -> String {
        let mut key = [0u8; 64];
        if self.key.len() > 64 {
            key[..32].copy_from_slice(&Sha256::digest(&self.key));
        } else {
            key[..self.key.len()].copy_from_slice(&self.key);
        }
        let pad = |x: u8| key.iter().map(move |k| k ^ x).collect::<Vec<u8>>();
        let mut inner = Sha256::new();
        inner.update(pad(0x36));
        inner.update(kind.as_str().as_bytes());
        inner.update([0]);
        inner.update(value.to_lowercase().as_bytes());
        let mut outer = Sha256::new();
        outer.update(pad(0x5c));
        outer.update(inner.finalize());
        outer.finalize()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Sorts spans and drops overlaps: custom spans (the first `custom` of `spans`) first, then
/// the earliest start, then the longest.
fn resolve_overlaps(spans: &mut Vec<Span>, custom: usize) {
    if spans.len() < 2 {
        return;
    }
    if custom > 0 {
        let (c, rest) = spans.split_at(custom);
        let mut keep: Vec<Span> = c.to_vec();
        keep.extend(
            rest.iter()
                .filter(|s| !c.iter().any(|x| s.start < x.end && x.start < s.end))
                .cloned(),
        );
        *spans = keep;
    }
    spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut last_end = 0;
    let mut first = true;
    spans.retain(|s| {
        let keep = first || s.start >= last_end;
        if keep {
            last_end = s.end;
            first = false;
        }
        keep
    });
}

/// Converts byte spans to character offsets.
pub fn char_spans(text: &str, spans: &[Span]) -> Vec<CharSpan> {
    let mut out = Vec::with_capacity(spans.len());
    let mut chars = 0;
    let mut byte = 0;
    for s in spans {
        chars += text[byte..s.start].chars().count();
        let start = chars;
        chars += text[s.start..s.end].chars().count();
        byte = s.end;
        out.push(CharSpan {
            start,
            end: chars,
            kind: s.kind.clone(),
        });
    }
    out
}
