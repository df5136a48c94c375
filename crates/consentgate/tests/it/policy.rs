//! `consentgate policy check|explain`: every DOMAIN.md row the scenarios cover, from the
//! command line; JSON fields; invalid policies; usage errors.

use std::path::Path;

use crate::util::{consentgate, stderr, stdout};

/// Translates a scenario block's inputs into `policy explain` flags; `None` when the block
/// needs more than one consent event (the CLI takes one).
fn flags(inputs: &[(String, String)]) -> Option<Vec<String>> {
    let mut out = vec![
        "policy".to_owned(),
        "explain".to_owned(),
        "--json".to_owned(),
    ];
    let mut events = 0;
    for (k, v) in inputs {
        match k.as_str() {
            "set" => out.extend(["--set".to_owned(), v.clone()]),
            "member" => out.push("--member-unknown".to_owned()),
            "residence" => out.extend(["--residence".to_owned(), v.clone()]),
            "policy" if v.ends_with(".cedar") => return None,
            "event" => {
                events += 1;
                let mut parts = v.split_whitespace();
                out.extend(["--consent".to_owned(), parts.next()?.to_owned()]);
                for p in parts {
                    let (pk, pv) = p.split_once('=')?;
                    let flag = match pk {
                        "at" => "--consent-at",
                        "purpose" => "--consent-purpose",
                        "notice" => "--consent-notice",
                        "source" => "--consent-source",
                        _ => return None,
                    };
                    out.extend([flag.to_owned(), pv.to_owned()]);
                }
            }
            key => out.extend([format!("--{key}"), v.clone()]),
        }
    }
    (events <= 1).then_some(out)
}

#[test]
fn explain_reproduces_every_covered_domain_row() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cg-policy/tests/scenarios/domain.scen");
    let text = std::fs::read_to_string(file).unwrap();
    let mut ran = 0;
    for block in text.split("=== ").skip(1) {
        let title = block.lines().next().unwrap();
        let (inputs, expected) = block.split_once("---").unwrap();
        let pairs = |s: &str| -> Vec<(String, String)> {
            s.lines()
                .skip_while(|l| !l.contains(':') || *l == title)
                .filter_map(|l| {
                    l.split_once(": ")
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                })
                .collect()
        };
        let inputs: Vec<_> = pairs(inputs)
            .into_iter()
            .filter(|(k, _)| k != title)
            .collect();
        let expected = pairs(expected);
        let Some(args) = flags(&inputs) else { continue };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = consentgate(&args);
        assert_eq!(o.status.code(), Some(0), "{title}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        for (k, want) in &expected {
            let got = match k.as_str() {
                "reasons" | "notes" => v[k.as_str()]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => v[k.as_str()].as_str().unwrap_or_default().to_owned(),
            };
            assert_eq!(&got, want, "{title}: {k}");
        }
        ran += 1;
    }
    assert!(ran >= 30, "only {ran} rows ran");
}

#[test]
fn explain_json_has_the_contract_fields() {
    let o = consentgate(&[
        "policy",
        "explain",
        "--country",
        "UK",
        "--birth-date",
        "1990-01-01",
        "--as-of",
        "2024-10-01",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["decision"], "exclude");
    assert_eq!(v["reasons"], serde_json::json!(["region_suspended"]));
    assert_eq!(v["regime"], "li-2024-09");
    assert_eq!(v["jurisdiction"], "GB");
    assert!(v["policy_hash"].as_str().unwrap().len() == 64);
}

#[test]
fn missing_birth_date_fails_closed_and_unknown_country_is_a_decision() {
    let o = consentgate(&[
        "policy",
        "explain",
        "--country",
        "US",
        "--as-of",
        "2025-03-01",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["reasons"], serde_json::json!(["age_unknown"]));
    let o = consentgate(&[
        "policy",
        "explain",
        "--country",
        "QQ",
        "--birth-date",
        "1990-01-01",
        "--as-of",
        "2025-03-01",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["reasons"], serde_json::json!(["jurisdiction_unknown"]));
    assert_eq!(v["jurisdiction"], serde_json::Value::Null);
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        &[
            "policy",
            "explain",
            "--country",
            "US",
            "--as-of",
            "tomorrow",
        ][..],
        &["policy", "explain", "--country", "US"],
        &[
            "policy",
            "explain",
            "--as-of",
            "2025-01-01",
            "--consent",
            "maybe",
        ],
        &[
            "policy",
            "explain",
            "--as-of",
            "2025-01-01",
            "--set",
            "minimum_age=old",
        ],
        &[
            "policy",
            "explain",
            "--as-of",
            "2025-01-01",
            "--set",
            "no_such_flag=1",
        ],
        &[
            "policy",
            "explain",
            "--as-of",
            "2025-01-01",
            "--policy",
            "li-2099",
        ],
        &[
            "policy",
            "explain",
            "--as-of",
            "2025-01-01",
            "--purpose",
            "genai-training",
        ],
    ] {
        let o = consentgate(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn check_prints_name_and_hash_and_rejects_bad_files_with_spans() {
    let o = consentgate(&["policy", "check"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    let (name, hash) = out.trim().split_once(' ').unwrap();
    assert_eq!(name, "timeline");
    assert_eq!(hash.len(), 64);

    let dir = cg_test_support::tempdir();
    let bad = dir.path().join("typo.cedar");
    std::fs::write(
        &bad,
        "@id(\"typo/x\")\n@reason(\"region_suspended\")\nforbid (principal, action == Action::\"train\", resource)\nwhen { principal.contry == \"FR\" };\n",
    )
    .unwrap();
    let o = consentgate(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("typo.cedar"), "{err}");
    assert!(err.contains("contry"), "{err}");
    assert!(
        err.contains("principal.contry"),
        "the span is rendered: {err}"
    );
    assert!(err.contains("error: policy `typo` is invalid"), "{err}");

    let good = dir.path().join("fr.cedar");
    std::fs::write(
        &good,
        "@id(\"fr/x\")\n@reason(\"region_suspended\")\nforbid (principal, action == Action::\"train\", resource)\nwhen { principal.country == \"FR\" };\n",
    )
    .unwrap();
    let o = consentgate(&["policy", "check", good.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["name"], "fr");
    assert_ne!(v["hash"].as_str().unwrap(), hash);
}
