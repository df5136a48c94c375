//! `consentgate policy prove`: exit codes (0 proved, 1 counterexample, 2 usage, 3 no answer),
//! text and JSON output, policy directories with their own config, per-side settings.

use crate::util::{consentgate, stderr, stdout};

fn prove(args: &[&str]) -> std::process::Output {
    cg_test_support::install_solver();
    let mut all = vec!["policy", "prove"];
    all.extend_from_slice(args);
    consentgate(&all)
}

#[test]
fn resuspending_is_proved_and_resuming_is_a_replayed_counterexample() {
    let o = prove(&["--old", "li-2025-11", "--new", "li-2024-09"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("PROVED") && !out.contains("COUNTEREXAMPLE"),
        "{out}"
    );
    assert!(out.contains("assumed of every member"), "{out}");

    let o = prove(&["--old", "li-2024-09", "--new", "li-2025-11", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["result"], "counterexample");
    let check = &report["checks"][0];
    assert_eq!(check["check"], "nothing_new_admitted");
    assert_eq!(check["result"], "counterexample");
    let cx = &check["counterexample"];
    assert_eq!(cx["replay"]["confirmed"], true, "{cx}");
    assert_eq!(cx["replay"]["old"]["decision"], "exclude");
    assert_eq!(cx["replay"]["new"]["decision"], "include");
    assert!(cx["as_of"].is_string() && cx["member"].is_object() && cx["item"]["kind"].is_string());
    assert!(report["assumptions"].as_array().unwrap().len() > 5);
    assert!(
        report["solver"]["version"]
            .as_str()
            .unwrap()
            .contains("cvc5")
    );
}

#[test]
fn the_text_output_shows_the_counterexample_and_its_replay() {
    let o = prove(&["--old", "li-2024-09", "--new", "li-2025-11"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for needle in [
        "COUNTEREXAMPLE",
        "member:",
        "item:",
        "replay: old li-2024-09 → exclude",
        "replay: new li-2025-11 → include",
        "confirmed by the decision engine",
    ] {
        assert!(out.contains(needle), "`{needle}` missing:\n{out}");
    }
}

#[test]
fn equivalence_and_both_directions() {
    let o = prove(&["--old", "timeline", "--new", "timeline", "--equivalent"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // Both directions: nothing new admitted (exit 0), but the reverse has a counterexample.
    let o = prove(&[
        "--old",
        "li-2025-11",
        "--new",
        "li-2024-09",
        "--direction",
        "both",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["result"], "proved", "the exit code's question");
    assert_eq!(report["checks"][1]["check"], "nothing_new_excluded");
    assert_eq!(report["checks"][1]["result"], "counterexample");
    // Equivalence fails on the same pair.
    let o = prove(&["--old", "li-2025-11", "--new", "li-2024-09", "--equivalent"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_directory_with_its_own_config_and_per_side_settings() {
    let dir = cg_test_support::tempdir();
    let common = cg_policy::BUNDLED_FILES
        .iter()
        .find(|(n, _)| *n == "common.cedar")
        .unwrap()
        .1;
    let minors = "@id(\"common/minor\")\n@reason(\"minor\")\nforbid (principal, action == Action::\"train\", resource)\nwhen {\n  principal.age_known &&\n  (principal.age_at_creation < context.minimum_age || principal.age_now < context.minimum_age)\n};\n";
    assert!(common.contains(minors));
    std::fs::write(dir.path().join("common.cedar"), common.replace(minors, "")).unwrap();
    std::fs::write(dir.path().join("policy.toml"), "minimum_age = 18\n").unwrap();
    let o = prove(&[
        "--old",
        "timeline",
        "--new",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let cx = &report["checks"][0]["counterexample"];
    assert_eq!(cx["replay"]["confirmed"], true);
    let reasons = cx["replay"]["old"]["reasons"].to_string();
    assert!(reasons.contains("minor"), "{reasons}");

    // A territory flag flipped on the new side only.
    let o = prove(&[
        "--old",
        "li-2024-09",
        "--new",
        "li-2024-09",
        "--new-set",
        "gibraltar_as_uk=false",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        report["checks"][0]["counterexample"]["member"]["country"],
        "GI"
    );
    // The same flag on both sides changes nothing.
    let o = prove(&[
        "--old",
        "li-2024-09",
        "--new",
        "li-2024-09",
        "--set",
        "gibraltar_as_uk=false",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn no_solver_is_exit_3_and_never_proved() {
    let o = prove(&[
        "--old",
        "li-2025-11",
        "--new",
        "li-2024-09",
        "--solver",
        "/nonexistent/cvc5",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(!stdout(&o).contains("PROVED"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("cannot be run") && err.contains("hint:") && err.contains("install-solver.sh"),
        "{err}"
    );
}

#[test]
fn a_solver_out_of_time_is_exit_3() {
    let o = prove(&[
        "--old",
        "li-2025-11",
        "--new",
        "li-2024-09",
        "--timeout-ms",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!stdout(&o).contains("PROVED"));
    assert!(stderr(&o).contains("--timeout-ms"), "{}", stderr(&o));
}

#[test]
fn usage_errors_are_exit_2() {
    for args in [
        vec!["--old", "no-such-policy", "--new", "timeline"],
        vec![
            "--old",
            "timeline",
            "--new",
            "timeline",
            "--purpose",
            "nope",
        ],
        vec![
            "--old",
            "timeline",
            "--new",
            "timeline",
            "--new-set",
            "minimum_agee=3",
        ],
        vec!["--old", "timeline"],
        vec![
            "--old",
            "timeline",
            "--new",
            "timeline",
            "--timeout-ms",
            "0",
        ],
    ] {
        let o = prove(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}
