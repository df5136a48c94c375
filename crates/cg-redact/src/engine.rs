//! [`Redactor`]: the single-pass engine.
//!
//! 1. **Candidate scan**: if the text has no ASCII digit, no `@`, no `://` and no `www.`, the
//!    structured patterns cannot match and are skipped.
//! 2. **One automaton**: every structured pattern (and custom ones) in one `regex-automata`
//!    multi-pattern regex, leftmost-first in priority order. A candidate a validator rejects is
//!    first shrunk back to a separator (greedy patterns swallow a trailing number or word), then
//!    the other patterns are tried anchored at the same start, then the scan moves on.
//! 3. **Names**: one Aho-Corasick automaton over the caller's gazetteer (excluded members'
//!    names and handles), and one over common given names followed by a common surname.
//!
//! Spans never split a code point: every pattern starts and ends on ASCII or whole characters.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, PatternID};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

use crate::entity::EntityType;
use crate::names;
use crate::validate;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Email,
    Url,
    Mention,
    Ssn,
    Nino,
    Iban,
    Card,
    Ipv4,
    Ipv6,
    Phone,
    None,
}

/// The built-in patterns in priority order.
const BUILT_IN: &[(&str, Check, &str)] = &[
    (
        "EMAIL",
        Check::Email,
        r"[\w.%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}",
    ),
    (
        "URL",
        Check::Url,
        r#"(?:[Hh][Tt][Tt][Pp][Ss]?://|www\.)[^\s<>"'()\[\]{}]+"#,
    ),
    (
        "MENTION",
        Check::Mention,
        r"@[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_])?",
    ),
    (
        "US_SSN",
        Check::Ssn,
        r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
    ),
    (
        "UK_NINO",
        Check::Nino,
        r"(?-u:\b)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?-u:\b)",
    ),
    (
        "IBAN_CODE",
        Check::Iban,
        r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?-u:\b)",
    ),
    (
        "CREDIT_CARD",
        Check::Card,
        r"(?-u:\b)[0-9](?:[ \-]?[0-9]){12,18}(?-u:\b)",
    ),
    (
        "IP_ADDRESS",
        Check::Ipv4,
        r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
    ),
    (
        "IP_ADDRESS",
        Check::Ipv6,
        r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}",
    ),
    (
        "PHONE",
        Check::Phone,
        r"(?:\+[0-9]{1,3}[ .\-]?)?(?:\([0-9]{1,5}\)[ .\-]?)?[0-9]{1,5}(?:[ .\-]?[0-9]{1,5}){1,6}",
    ),
];

fn kind_of(name: &str) -> EntityType {
    EntityType::from(name.to_owned())
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

    /// Finds common first/last name pairs (on by default through [`Redactor::new`]).
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
        let mut patterns: Vec<String> = Vec::new();
        let mut kinds = Vec::new();
        let mut checks = Vec::new();
        for (name, pattern) in &self.custom {
            regex_automata::meta::Regex::new(pattern).map_err(|e| RedactError::Pattern {
                name: name.clone(),
                message: e.to_string(),
            })?;
            patterns.push(pattern.clone());
            kinds.push(EntityType::Custom(name.clone()));
            checks.push(Check::None);
        }
        for (name, check, pattern) in BUILT_IN {
            patterns.push((*pattern).to_owned());
            kinds.push(kind_of(name));
            checks.push(*check);
        }
        let regex = Regex::new_many(&patterns).map_err(|e| RedactError::Pattern {
            name: "built-in".into(),
            message: e.to_string(),
        })?;
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
        let first_names = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(names::FIRST)
            .map_err(|e| RedactError::Names(e.to_string()))?;
        let mut last_names: Vec<&'static str> = names::LAST.to_vec();
        last_names.sort_unstable();
        Ok(Redactor {
            regex,
            kinds,
            checks,
            custom_count: self.custom.len(),
            gazetteer,
            common_names: self.common_names,
            first_names,
            last_names,
            key: self.key,
        })
    }
}

/// The PII engine. Build once, share across threads.
#[derive(Debug)]
pub struct Redactor {
    regex: Regex,
    kinds: Vec<EntityType>,
    checks: Vec<Check>,
    custom_count: usize,
    gazetteer: Option<(AhoCorasick, Vec<EntityType>)>,
    common_names: bool,
    first_names: AhoCorasick,
    last_names: Vec<&'static str>,
    key: Vec<u8>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
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

/// Cuts `s` back to its last separator (space, `-`, `.`), if any.
fn shrink(s: &str) -> Option<&str> {
    let cut = s.trim_end().rfind([' ', '-', '.'])?;
    let t = s[..cut].trim_end_matches([' ', '-', '.']);
    (!t.is_empty()).then_some(t)
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

    /// Validates candidate `m` of pattern `pid` at `start`; returns the accepted end.
    fn accept(
        &self,
        text: &str,
        start: usize,
        end: usize,
        pid: usize,
        hint: Option<&str>,
    ) -> Option<usize> {
        let s = &text[start..end];
        let check = self.checks[pid];
        let numeric = matches!(
            check,
            Check::Ssn | Check::Nino | Check::Iban | Check::Card | Check::Ipv4 | Check::Phone
        );
        // Numbers start at a token boundary: never inside `2025-03-01`, `3.14159` or a word.
        if numeric
            && text[..start]
                .bytes()
                .next_back()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        {
            return None;
        }
        match check {
            Check::None => Some(end),
            Check::Email => Some(end),
            Check::Url => {
                let t = s.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"']);
                (t.len() > 7).then_some(start + t.len())
            }
            Check::Mention => {
                let prev = text[..start].bytes().next_back();
                prev.is_none_or(|b| !is_word_byte(b) && b != b'.' && b != b'@')
                    .then_some(end)
            }
            Check::Ssn => validate::us_ssn(s).then_some(end),
            Check::Nino => validate::uk_nino(s).then_some(end),
            Check::Ipv4 => validate::ipv4(s).then_some(end),
            Check::Ipv6 => {
                let prev = text[..start].bytes().next_back();
                let t = s.trim_end_matches(':');
                let t = if t.ends_with(':') || s.ends_with("::") {
                    s
                } else {
                    t
                };
                (prev.is_none_or(|b| !b.is_ascii_alphanumeric() && b != b':') && validate::ipv6(t))
                    .then_some(start + t.len())
            }
            Check::Iban | Check::Card | Check::Phone => {
                let mut cur = s;
                loop {
                    let ok = match check {
                        Check::Iban => validate::iban(cur),
                        Check::Card => validate::credit_card(cur),
                        // An SSN-shaped number that is not a valid SSN is not a phone either.
                        _ => !validate::ssn_shaped(cur) && validate::phone(cur, hint),
                    };
                    if ok && word_boundary_after(text, start + cur.len()) {
                        return Some(start + cur.len());
                    }
                    cur = shrink(cur)?;
                }
            }
        }
    }

    /// All entities in `text` (byte spans, sorted, non-overlapping). `hint` is the author's
    /// country (ISO alpha-2), used for national phone formats.
    pub fn find(&self, text: &str, hint: Option<&str>) -> Vec<Span> {
        let mut spans = Vec::new();
        let bytes = text.as_bytes();
        let structured = self.custom_count > 0
            || bytes.iter().any(|b| b.is_ascii_digit() || *b == b'@')
            || memchr::memmem::find(bytes, b"://").is_some()
            || memchr::memmem::find(bytes, b"www.").is_some();
        if structured {
            self.find_structured(text, hint, &mut spans);
        }
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
        if self.common_names {
            self.find_name_pairs(text, &mut spans);
        }
        if spans.len() > 1 {
            spans.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
            let mut kept: Vec<Span> = Vec::with_capacity(spans.len());
            for s in spans {
                match kept.last() {
                    Some(last) if s.start < last.end => {}
                    _ => kept.push(s),
                }
            }
            spans = kept;
        }
        spans
    }

    /// "First Last" where both are common names: given names from one automaton, the next
    /// word looked up among surnames.
    fn find_name_pairs(&self, text: &str, spans: &mut Vec<Span>) {
        for m in self.first_names.find_iter(text) {
            if !word_boundary_before(text, m.start()) {
                continue;
            }
            let Some(after) = text[m.end()..].strip_prefix(' ') else {
                continue;
            };
            let len = after
                .find(|c: char| !(c.is_alphabetic() || c == '\'' || c == '-'))
                .unwrap_or(after.len());
            if len > 0 && self.last_names.binary_search(&&after[..len]).is_ok() {
                spans.push(Span {
                    start: m.start(),
                    end: m.end() + 1 + len,
                    kind: EntityType::Person,
                });
            }
        }
    }

    fn find_structured(&self, text: &str, hint: Option<&str>, spans: &mut Vec<Span>) {
        let mut pos = 0;
        while pos < text.len() {
            let Some(m) = self.regex.search(&Input::new(text).range(pos..)) else {
                break;
            };
            let (start, pid) = (m.start(), m.pattern().as_usize());
            let mut accepted = self
                .accept(text, start, m.end(), pid, hint)
                .map(|end| (end, pid));
            if accepted.is_none() {
                // Try the other patterns anchored at the same start, in priority order.
                for other in 0..self.kinds.len() {
                    if other == pid {
                        continue;
                    }
                    let Ok(other_id) = PatternID::new(other) else {
                        continue;
                    };
                    let input = Input::new(text)
                        .range(start..)
                        .anchored(Anchored::Pattern(other_id));
                    if let Some(end) = self
                        .regex
                        .search(&input)
                        .and_then(|m2| self.accept(text, start, m2.end(), other, hint))
                    {
                        accepted = Some((end, other));
                        break;
                    }
                }
            }
            match accepted {
                Some((end, p)) if end > start => {
                    spans.push(Span {
                        start,
                        end,
                        kind: self.kinds[p].clone(),
                    });
                    pos = end;
                }
                _ => {
                    // Skip the rest of this token (a rejected number is not retried from its
                    // middle), or at least one whole character.
                    let run = text[start..]
                        .bytes()
                        .take_while(u8::is_ascii_alphanumeric)
                        .count();
                    pos = start + run.max(text[start..].chars().next().map_or(1, char::len_utf8));
                }
            }
        }
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
        let mut last = 0;
        for s in spans {
            out.push_str(&text[last..s.start]);
            out.push('<');
            out.push_str(s.kind.as_str());
            if how == Replacement::Pseudonym {
                out.push('_');
                out.push_str(&self.pseudonym(&s.kind, &text[s.start..s.end]));
            }
            out.push('>');
            last = s.end;
        }
        out.push_str(&text[last..]);
        out
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
