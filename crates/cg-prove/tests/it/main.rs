//! Policy proofs against known answers: pairs of policies that narrow (PROVED) or widen
//! (COUNTEREXAMPLE), every counterexample replayed through the decision engine. Runs the real
//! cvc5 (installed by `scripts/install-solver.sh` when missing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cg_policy::config::RegimeConfig;
use cg_policy::{Policy, PolicyConfig, SourceFile};
use cg_prove::{Check, Comparison, Outcome, ProveError, Report, SolverConfig};
use time::macros::date;

fn solver() -> SolverConfig {
    cg_test_support::install_solver();
    SolverConfig::default()
}

fn bundled(name: &str) -> Policy {
    Policy::bundled(name, PolicyConfig::default()).unwrap()
}

fn with_config(name: &str, edit: impl FnOnce(&mut PolicyConfig)) -> Policy {
    let mut c = PolicyConfig::default();
    edit(&mut c);
    Policy::bundled(name, c).unwrap()
}

fn with_files(files: &[(&str, &str)], config: PolicyConfig) -> Policy {
    Policy::with_files(
        files
            .iter()
            .map(|(n, t)| SourceFile {
                name: (*n).to_owned(),
                text: (*t).to_owned(),
            })
            .collect(),
        config,
    )
    .unwrap()
}

/// A bundled file with one edit.
fn edited(file: &str, from: &str, to: &str) -> (String, String) {
    let text = cg_policy::BUNDLED_FILES
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(_, t)| *t)
        .unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    (format!("edited/{file}"), text.replace(from, to))
}

fn prove(old: &Policy, new: &Policy, checks: &[Check]) -> Report {
    Comparison {
        old,
        new,
        purpose: None,
        checks,
    }
    .run(&solver())
    .unwrap()
}

fn widening(old: &Policy, new: &Policy) -> Report {
    prove(old, new, &[Check::NothingNewAdmitted])
}

#[track_caller]
fn assert_proved(r: &Report) {
    for c in &r.checks {
        assert_eq!(
            c.result,
            Outcome::Proved,
            "{:?} not proved: {:#?}",
            c.check,
            c.counterexample
        );
    }
}

/// The counterexample of the only check, which the engine must confirm (new includes, old
/// excludes); returns it for further assertions.
#[track_caller]
fn assert_widens(r: &Report) -> &cg_prove::Counterexample {
    let c = &r.checks[0];
    assert_eq!(
        c.result,
        Outcome::Counterexample,
        "expected a counterexample"
    );
    let cx = c.counterexample.as_deref().unwrap();
    assert!(
        cx.replay.confirmed,
        "the engine does not confirm the counterexample: {cx:#?}"
    );
    assert_eq!(cx.replay.new.decision, cg_model::Decision::Include);
    assert_eq!(cx.replay.old.decision, cg_model::Decision::Exclude);
    cx
}

fn regime(id: &str, from: Option<time::Date>, until: Option<time::Date>) -> RegimeConfig {
    RegimeConfig {
        id: id.to_owned(),
        from,
        until,
        extends: Vec::new(),
        in_timeline: true,
    }
}

// --- narrowing: PROVED ---

#[test]
fn resuspending_admits_nothing_new() {
    assert_proved(&widening(&bundled("li-2025-11"), &bundled("li-2024-09")));
}

#[test]
fn an_extra_forbid_admits_nothing_new() {
    let new = with_files(
        &[(
            "no-articles.cedar",
            r#"@id("no-articles") @reason("content_kind_excluded")
forbid (principal, action == Action::"train", resource) when { resource.kind == "article" };"#,
        )],
        PolicyConfig::default(),
    );
    assert_proved(&widening(&bundled("timeline"), &new));
}

#[test]
fn an_earlier_suspension_admits_nothing_new() {
    let new = with_config("timeline", |c| {
        c.regimes = vec![
            regime("li-2024-pre", None, Some(date!(2024 - 08 - 31))),
            regime(
                "li-2024-09",
                Some(date!(2024 - 09 - 01)),
                Some(date!(2025 - 11 - 02)),
            ),
        ];
    });
    assert_proved(&widening(&bundled("timeline"), &new));
}

#[test]
fn a_higher_minimum_age_admits_nothing_new() {
    let new = with_config("timeline", |c| c.minimum_age = 21);
    assert_proved(&widening(&bundled("timeline"), &new));
}

#[test]
fn an_extra_excluded_kind_admits_nothing_new() {
    let new = with_config("timeline", |c| c.excluded_kinds.push("article".into()));
    assert_proved(&widening(&bundled("timeline"), &new));
}

#[test]
fn a_policy_is_equivalent_to_itself() {
    let p = bundled("timeline");
    let r = prove(
        &p,
        &bundled("timeline"),
        &[Check::NothingNewAdmitted, Check::NothingNewExcluded],
    );
    assert_proved(&r);
}

// --- widening: COUNTEREXAMPLE ---

#[test]
fn resuming_admits_members_of_the_suspended_regions() {
    let cx = assert_widens(&widening(&bundled("li-2024-09"), &bundled("li-2025-11"))).clone();
    let reasons: Vec<&str> = cx.replay.old.reasons.iter().map(|r| r.as_str()).collect();
    assert!(
        reasons.contains(&"region_suspended") || reasons.contains(&"not_yet_effective"),
        "{reasons:?}"
    );
}

#[test]
fn a_later_suspension_admits_uk_members_in_between() {
    let new = with_config("timeline", |c| {
        c.regimes = vec![
            regime("li-2024-pre", None, Some(date!(2024 - 09 - 30))),
            regime(
                "li-2024-09",
                Some(date!(2024 - 10 - 01)),
                Some(date!(2025 - 11 - 02)),
            ),
        ];
    });
    let report = widening(&bundled("timeline"), &new);
    let cx = assert_widens(&report).clone();
    let day = cx.as_of.date();
    assert!(
        (date!(2024 - 09 - 18)..=date!(2024 - 09 - 30)).contains(&day),
        "{day}"
    );
    // From when: exactly the days the old policy suspended and the new one did not yet.
    let differing: Vec<_> = report.checks[0]
        .periods
        .iter()
        .filter(|p| p.differs)
        .map(|p| {
            (
                p.from,
                p.until,
                p.old_regime.as_str(),
                p.new_regime.as_str(),
            )
        })
        .collect();
    assert_eq!(
        differing,
        [(
            Some(date!(2024 - 09 - 18)),
            Some(date!(2024 - 09 - 30)),
            "li-2024-09",
            "li-2024-pre"
        )]
    );
}

#[test]
fn dropping_the_minors_rule_admits_minors() {
    let (name, text) = edited(
        "common.cedar",
        "@id(\"common/minor\")\n@reason(\"minor\")\nforbid (principal, action == Action::\"train\", resource)\nwhen {\n  principal.age_known &&\n  (principal.age_at_creation < context.minimum_age || principal.age_now < context.minimum_age)\n};\n",
        "",
    );
    let new = with_files(&[(&name, &text)], PolicyConfig::default());
    let cx = assert_widens(&widening(&bundled("timeline"), &new)).clone();
    assert!(
        cx.replay.old.reasons.iter().any(|r| r.as_str() == "minor"),
        "{:?}",
        cx.replay.old.reasons
    );
}

#[test]
fn opt_in_accepting_unset_admits_members_without_a_grant() {
    let optin = |c: &mut PolicyConfig| {
        c.regimes = vec![RegimeConfig {
            extends: vec!["strict-optin".into()],
            ..regime("optin-2026", Some(date!(2026 - 01 - 01)), None)
        }];
    };
    let mut config = PolicyConfig::default();
    optin(&mut config);
    let old = Policy::bundled("timeline", config.clone()).unwrap();
    let (name, text) = edited(
        "strict-optin.cedar",
        "principal.consent == \"granted\" };",
        "(principal.consent == \"granted\" || principal.consent == \"none\") };",
    );
    let no_consent = "@id(\"strict-optin/no_consent\")\n@reason(\"no_consent\")\nforbid (principal, action == Action::\"train\", resource)\nwhen { context.regimes.contains(\"strict-optin\") && principal.consent == \"none\" };\n";
    assert!(text.contains(no_consent));
    let text = text.replace(no_consent, "");
    let new = with_files(&[(&name, &text)], config);
    let cx = assert_widens(&widening(&old, &new)).clone();
    assert!(
        cx.member.events.is_empty() || cx.facts.consent == "none",
        "{cx:#?}"
    );
    assert!(cx.as_of.date() >= date!(2026 - 01 - 01));
}

#[test]
fn a_shorter_notice_window_admits_members_sooner() {
    let old = with_config("li-2025-11", |c| c.notice_window_days = 30);
    let new = with_config("li-2025-11", |c| c.notice_window_days = 14);
    let cx = assert_widens(&widening(&old, &new)).clone();
    let days = cx.facts.notice_age_days;
    assert!(
        (14..30).contains(&days) && cx.facts.notice_delivered,
        "{days}"
    );
}

#[test]
fn a_region_taken_off_the_suspension_list_is_admitted() {
    let (name, text) = edited(
        "li-2024-09.cedar",
        "[\"EU\", \"EEA\", \"CH\", \"UK\", \"CA\", \"HK\"]",
        "[\"EU\", \"EEA\", \"CH\", \"UK\", \"CA\"]",
    );
    let new = with_files(&[(&name, &text)], PolicyConfig::default());
    let cx = assert_widens(&widening(&bundled("timeline"), &new)).clone();
    assert_eq!(cx.member.country.as_deref(), Some("HK"));
}

#[test]
fn gibraltar_no_longer_counted_as_uk_is_admitted_during_the_suspension() {
    let new = with_config("li-2024-09", |c| c.gibraltar_as_uk = false);
    let cx = assert_widens(&widening(&bundled("li-2024-09"), &new)).clone();
    assert_eq!(cx.member.country.as_deref(), Some("GI"));
}

#[test]
fn ignoring_gpc_admits_members_who_sent_it() {
    let new = with_config("timeline", |c| c.gpc_as_objection = false);
    let cx = assert_widens(&widening(&bundled("timeline"), &new)).clone();
    assert!(cx.facts.gpc_signal);
}

#[test]
fn the_reverse_check_shows_what_a_suspension_stops_admitting() {
    let r = prove(
        &bundled("li-2025-11"),
        &bundled("li-2024-09"),
        &[Check::NothingNewAdmitted, Check::NothingNewExcluded],
    );
    assert_eq!(r.checks[0].result, Outcome::Proved);
    let reverse = &r.checks[1];
    assert_eq!(reverse.result, Outcome::Counterexample);
    let cx = reverse.counterexample.as_deref().unwrap();
    assert!(cx.replay.confirmed, "{cx:#?}");
    assert_eq!(cx.replay.old.decision, cg_model::Decision::Include);
}

#[test]
fn one_purpose_only() {
    let purpose = cg_model::Purpose::genai_training();
    let r = Comparison {
        old: &bundled("li-2024-09"),
        new: &bundled("li-2025-11"),
        purpose: Some(&purpose),
        checks: &[Check::NothingNewAdmitted],
    }
    .run(&solver())
    .unwrap();
    let cx = assert_widens(&r);
    assert_eq!(cx.purpose, "genai_training");
}

// --- no answer: never PROVED ---

/// Re-suspension (which is PROVED with a working solver) under `solver`.
fn resuspension_with(solver: SolverConfig) -> Result<Report, ProveError> {
    Comparison {
        old: &bundled("li-2025-11"),
        new: &bundled("li-2024-09"),
        purpose: None,
        checks: &[Check::NothingNewAdmitted],
    }
    .run(&solver)
}

#[test]
fn a_missing_solver_is_an_error_not_a_proof() {
    let err = resuspension_with(SolverConfig {
        path: Some("/nonexistent/cvc5".into()),
        ..SolverConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, ProveError::SolverUnavailable { .. }), "{err}");
    assert!(err.hint().unwrap().contains("install-solver.sh"));
}

#[test]
fn a_solver_that_is_not_cvc5_is_refused() {
    let err = resuspension_with(SolverConfig {
        path: Some("/bin/true".into()),
        ..SolverConfig::default()
    })
    .unwrap_err();
    assert!(matches!(err, ProveError::SolverUnavailable { .. }), "{err}");
}

#[test]
fn a_solver_out_of_time_is_an_error_not_a_proof() {
    // 1 ms per query: cvc5 answers `unknown` (or nothing in time); never a proof.
    let err = resuspension_with(SolverConfig {
        timeout: std::time::Duration::from_millis(1),
        ..solver()
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProveError::SolverUnknown { .. } | ProveError::SolverTimeout { .. }
        ),
        "{err:?}"
    );
    assert!(err.hint().unwrap().contains("--timeout-ms"));
}
