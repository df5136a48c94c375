//! Policy proofs in the service: `POST /v1/admin/policies/prove`, and activations refused when
//! the new policy admits something the one in force excludes, unless a widening is accepted
//! with a reason that the transparency log records next to the activation.

use super::*;

impl Fixture {
    async fn post_admin(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let admin = self.token("admin");
        self.call("POST", path, Some(admin), Some(body), &[]).await
    }

    /// The policy activation entries of the transparency log, oldest first.
    async fn logged_activations(&self) -> Vec<cg_proof::leaves::Entry> {
        self.state
            .ledger(cg_server::Lane::Interactive, |s| {
                let mut out = Vec::new();
                s.log_scan(0, &mut |e| {
                    if let Some(entry @ cg_proof::leaves::Entry::PolicyActivation { .. }) =
                        cg_proof::leaves::Entry::decode(&e.data)
                    {
                        out.push(entry);
                    }
                    Ok(())
                })?;
                Ok(out)
            })
            .await
            .unwrap()
    }

    async fn active_name(&self) -> String {
        let admin = self.token("admin");
        let (_, view) = self
            .call("GET", "/v1/admin/policies", Some(admin), None, &[])
            .await;
        view["active"]["name"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn prove_answers_both_ways_for_admins_only() {
    let f = fixture();
    let body = r#"{"old": {"policy": "li-2024-09"}, "new": {"policy": "li-2025-11"}}"#;
    let (status, report) = f.post_admin("/v1/admin/policies/prove", body).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["admits_new"], true, "{report}");
    let check = &report["checks"][0];
    assert_eq!(check["result"], "counterexample");
    assert_eq!(check["counterexample"]["replay"]["confirmed"], true);
    assert_eq!(
        check["counterexample"]["replay"]["new"]["decision"],
        "include"
    );

    let body = r#"{"old": {"policy": "li-2025-11"}, "new": {"policy": "li-2024-09"}, "direction": "both"}"#;
    let (status, report) = f.post_admin("/v1/admin/policies/prove", body).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["admits_new"], false);
    assert_eq!(report["checks"][0]["result"], "proved");
    assert_eq!(report["checks"][1]["result"], "counterexample");

    for role in ["auditor", "service"] {
        let (status, _) = f
            .call(
                "POST",
                "/v1/admin/policies/prove",
                Some(f.token(role)),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    let (status, err) = f
        .post_admin(
            "/v1/admin/policies/prove",
            r#"{"new": {"policy": "timeline"}, "direction": "sideways"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"]["field"], "direction");
}

#[tokio::test]
async fn a_widening_activation_is_refused_unless_accepted_with_a_logged_reason() {
    let f = fixture();
    // Narrowing: proved, put in force, logged without a reason.
    let (status, view) = f
        .post_admin("/v1/admin/policies/activate", r#"{"policy": "li-2024-09"}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["proof"], "proved");
    let before = f.logged_activations().await;

    // Widening: refused, nothing changes, nothing is logged.
    let (status, err) = f
        .post_admin("/v1/admin/policies/activate", r#"{"policy": "li-2025-11"}"#)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(message.contains("accept_widening"), "{message}");
    assert_eq!(f.active_name().await, "li-2024-09");
    assert_eq!(f.logged_activations().await, before);

    // Accepting needs a reason.
    let (status, err) = f
        .post_admin(
            "/v1/admin/policies/activate",
            r#"{"policy": "li-2025-11", "accept_widening": true, "reason": "  "}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "reason");

    // Accepted with a reason: in force, the counterexample returned, the reason logged.
    let reason = "EU resumption under legitimate interest after the 2025 notice";
    let body =
        format!(r#"{{"policy": "li-2025-11", "accept_widening": true, "reason": "{reason}"}}"#);
    let (status, view) = f.post_admin("/v1/admin/policies/activate", &body).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["proof"], "widening_accepted");
    assert_eq!(view["counterexample"]["replay"]["confirmed"], true);
    assert_eq!(f.active_name().await, "li-2025-11");
    let logged = f.logged_activations().await;
    assert_eq!(logged.len(), before.len() + 1);
    let hash = f.state.policy().unwrap().policy.hash().to_owned();
    assert_eq!(
        logged.last(),
        Some(&cg_proof::leaves::Entry::PolicyActivation {
            policy_hash: hash,
            accepted_widening: Some(reason.to_owned()),
        })
    );
}

#[tokio::test]
async fn without_a_solver_nothing_is_activated_unproven_unless_accepted() {
    let f = fixture_with(
        None,
        cg_prove::SolverConfig {
            path: Some("/nonexistent/cvc5".into()),
            ..cg_prove::SolverConfig::default()
        },
    );
    let (status, err) = f
        .post_admin("/v1/admin/policies/activate", r#"{"policy": "li-2024-09"}"#)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(f.active_name().await, "timeline");
    let (status, err) = f
        .post_admin(
            "/v1/admin/policies/prove",
            r#"{"new": {"policy": "li-2024-09"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert!(
        err.to_string().contains("install-solver.sh"),
        "the error says how to get the solver: {err}"
    );
    let (status, view) = f
        .post_admin(
            "/v1/admin/policies/activate",
            r#"{"policy": "li-2024-09", "accept_widening": true, "reason": "solver down, change reviewed by hand"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["proof"], "unproven_accepted");
    assert_eq!(f.active_name().await, "li-2024-09");
}
