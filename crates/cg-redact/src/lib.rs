//! # cg-redact — the single-pass PII engine
//!
//! Removes personal data from the text that passes the gate: e-mail addresses, phone numbers
//! (international and national formats; the author's country is a hint), URLs, IPv4/IPv6
//! addresses, payment cards (Luhn), IBANs (checksum), UK NI numbers, US SSNs, @mentions,
//! names from a caller-supplied gazetteer (excluded members' names and handles) and common
//! first/last name pairs, plus custom patterns.
//!
//! One pass: a hand-written byte scanner finds candidates and validates them on the spot (no
//! regex at run time, no numbering-plan library); names come from Aho-Corasick automata. Output is placeholder text (`<EMAIL>`), keyed pseudonyms
//! (`<EMAIL_1a2b3c4d>`) or spans. [`stream`] runs it over a stream of lines on every core.
//!
//! ```
//! use cg_redact::{Redactor, Replacement};
//! let r = Redactor::new().unwrap();
//! let out = r.redact("mail me at jane.doe@example.co.uk or +44 20 7946 0958", None, Replacement::Placeholder);
//! assert_eq!(out, "mail me at <EMAIL> or <PHONE>");
//! ```

#![deny(missing_docs)]

mod engine;
mod entity;
mod names;
mod scan;
pub mod stream;
pub mod validate;

pub use engine::{CharSpan, RedactError, Redactor, RedactorBuilder, Replacement, Span, char_spans};
pub use entity::EntityType;
