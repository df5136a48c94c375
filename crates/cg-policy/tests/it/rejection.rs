//! Invalid policies are rejected with a span that points at the problem and a file name.

use cg_policy::{Policy, PolicyConfig, PolicyError, SourceFile};

fn load(text: &str) -> PolicyError {
    let file = SourceFile {
        name: "mine.cedar".into(),
        text: text.into(),
    };
    Policy::with_files(vec![file], PolicyConfig::default()).unwrap_err()
}

/// `(file, message, span)` of each problem.
type Found = Vec<(String, String, Option<(usize, usize)>)>;

fn problems(err: &PolicyError) -> Found {
    match err {
        PolicyError::Invalid(inv) => inv
            .problems()
            .iter()
            .map(|p| (p.file().to_owned(), p.message().to_owned(), p.span()))
            .collect(),
        other => panic!("expected an invalid policy, got {other}"),
    }
}

fn assert_points_at(text: &str, err: &PolicyError, needle: &str) {
    let ps = problems(err);
    assert!(!ps.is_empty());
    let (file, message, span) = &ps[0];
    assert_eq!(file, "mine.cedar", "{message}");
    let (offset, len) = span.unwrap_or_else(|| panic!("no span: {message}"));
    let pointed = &text[offset..offset + len];
    assert!(
        pointed.contains(needle) || needle.contains(pointed),
        "span `{pointed}` does not point at `{needle}`: {message}"
    );
}

const HEAD: &str = "@id(\"mine/a\")\n@reason(\"region_suspended\")\nforbid (principal, action == Action::\"train\", resource)\n";

#[test]
fn typo_in_an_attribute() {
    let text = format!("{HEAD}when {{ principal.contry == \"FR\" }};\n");
    let err = load(&text);
    assert_points_at(&text, &err, "principal.contry");
    let msg = format!("{:?}", problems(&err));
    assert!(msg.contains("contry"), "{msg}");
}

#[test]
fn type_error() {
    let text = format!("{HEAD}when {{ principal.age_now == \"eighteen\" }};\n");
    let err = load(&text);
    assert_points_at(&text, &err, "principal.age_now == \"eighteen\"");
}

#[test]
fn impossible_condition_is_a_warning_and_warnings_fail() {
    let text = format!("{HEAD}when {{ principal.erased && false }};\n");
    let err = load(&text);
    let msg = format!("{:?}", problems(&err));
    assert!(msg.contains("warning"), "{msg}");
    assert_points_at(&text, &err, "forbid");
}

#[test]
fn syntax_error() {
    let text = format!("{HEAD}when {{ principal.erased && }};\n");
    let err = load(&text);
    let msg = format!("{:?}", problems(&err));
    assert!(msg.contains("syntax error"), "{msg}");
    assert_points_at(&text, &err, "}");
}

#[test]
fn every_policy_needs_a_known_reason_matching_its_effect() {
    let missing = "@id(\"mine/x\")\nforbid (principal, action == Action::\"train\", resource) when { principal.erased };\n";
    assert!(format!("{:?}", problems(&load(missing))).contains("no `@reason`"));
    let unknown = "@id(\"mine/x\")\n@reason(\"too_risky\")\nforbid (principal, action == Action::\"train\", resource) when { principal.erased };\n";
    let err = load(unknown);
    assert!(format!("{:?}", problems(&err)).contains("too_risky"));
    assert_points_at(unknown, &err, "@reason(\"too_risky\")");
    let wrong = "@id(\"mine/x\")\n@reason(\"legitimate_interest\")\nforbid (principal, action == Action::\"train\", resource) when { principal.erased };\n";
    assert!(format!("{:?}", problems(&load(wrong))).contains("does not exclude"));
}

#[test]
fn duplicate_ids_are_rejected() {
    let dup = "@id(\"common/erased\")\n@reason(\"erased\")\nforbid (principal, action == Action::\"train\", resource) when { principal.erased };\n";
    assert!(format!("{:?}", problems(&load(dup))).contains("duplicate policy id"));
}

#[test]
fn a_timeline_regime_without_policies_is_rejected() {
    let cfg = PolicyConfig::from_toml(
        "p.toml",
        "[[regime]]\nid = \"orphan\"\nfrom = \"2026-01-01\"\n",
    )
    .unwrap();
    let err = Policy::bundled("timeline", cfg).unwrap_err();
    assert!(format!("{:?}", problems(&err)).contains("orphan"));
}

#[test]
fn a_custom_regime_extending_another_works() {
    let cfg = PolicyConfig::from_toml(
        "p.toml",
        "[[regime]]\nid = \"fr-2026\"\nfrom = \"2026-03-01\"\nextends = [\"li-2025-11\"]\n",
    )
    .unwrap();
    let file = SourceFile {
        name: "fr.cedar".into(),
        text: "@id(\"fr-2026/region_suspended\")\n@reason(\"region_suspended\")\nforbid (principal, action == Action::\"train\", resource)\nwhen { context.regimes.contains(\"fr-2026\") && principal.country == \"FR\" };\n".into(),
    };
    let p = Policy::with_files(vec![file], cfg).unwrap();
    let t = |s| cg_model::Timestamp::parse(s).unwrap();
    assert_eq!(p.regime_id_at(t("2026-02-28")), Some("li-2025-11"));
    assert_eq!(p.regime_id_at(t("2026-03-01")), Some("fr-2026"));
    let mut req = cg_policy::ExplainRequest::new(t("2026-03-05"));
    req.country = Some("FR".into());
    req.birth_date = Some(time::macros::date!(1990 - 01 - 01));
    let e = req.explain(&p);
    assert_eq!(e.reasons[0].as_str(), "region_suspended");
    assert_eq!(e.policies, ["fr-2026/region_suspended"]);
    req.country = Some("DE".into());
    assert_eq!(req.explain(&p).reasons[0].as_str(), "legitimate_interest");
}
