//! Regression tests for the seams where the service once assembled decisions by itself: each
//! failed before the service decided through the shared member-facts model and engine.

use super::*;

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

impl Fixture {
    /// `POST /v1/admin/policies/activate` with `body`, as the admin.
    async fn activate(&self, body: &str) -> (StatusCode, Value) {
        let admin = self.token("admin");
        self.call(
            "POST",
            "/v1/admin/policies/activate",
            Some(admin),
            Some(body),
            &[],
        )
        .await
    }

    /// `POST /v1/check` for a member's post, as an admin (who sees the reason codes).
    async fn check_member(&self, member: i64) -> Value {
        let body = format!(r#"{{"member_id": {member}, "purpose": "genai_training"}}"#);
        let (status, v) = self
            .call(
                "POST",
                "/v1/check",
                Some(self.token("admin")),
                Some(&body),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }
}

#[tokio::test]
async fn a_check_decides_now_and_refuses_a_past_instant() {
    let f = fixture();
    let service = f.token("service");
    let check = r#"{"member_id": 1, "purpose": "genai_training"}"#;
    let (status, body) = f
        .call("POST", "/v1/check", Some(service), Some(check), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true, "a US member, no objection: {body}");

    // The member erases; a check about the past must not answer "allowed" for them.
    let member = f.token("member");
    let (status, _) = f
        .call("POST", "/v1/me/erasure", Some(member), None, &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("admin")),
            Some(check),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["decision"].as_str(), body["reasons"][0].as_str()),
        (Some("exclude"), Some("erased"))
    );
    let past = r#"{"member_id": 1, "purpose": "genai_training", "at": "2025-06-01"}"#;
    let (status, body) = f
        .call("POST", "/v1/check", Some(service), Some(past), &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "at");
    // Content made in the past is still decided for training now.
    let old = r#"{"member_id": 1, "purpose": "genai_training", "created_at": "2025-06-01"}"#;
    let (_, body) = f
        .call("POST", "/v1/check", Some(service), Some(old), &[])
        .await;
    assert_eq!(body["allowed"], false, "{body}");

    // The historical question is explicit and for auditors only.
    let audit = r#"{"member_id": 1, "purpose": "genai_training", "as_of": "2025-06-01"}"#;
    let (status, _) = f
        .call(
            "POST",
            "/v1/audit/decision",
            Some(service),
            Some(audit),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = f
        .call(
            "POST",
            "/v1/audit/decision",
            Some(f.token("auditor")),
            Some(audit),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true, "before the erasure: {body}");
    assert_eq!(body["at"], "2025-06-01T00:00:00Z");
}

#[tokio::test]
async fn a_pinned_regime_with_extra_cedar_is_refused_not_unpinned() {
    let f = fixture();
    let admin = f.token("admin");
    let (status, _) = f.activate(r#"{"policy": "li-2024-09"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let cedar = r#"@id(\"extra\") @reason(\"content_kind_excluded\") forbid(principal, action, resource) when { resource.kind == \"poll\" };"#;
    let body = format!(r#"{{"policy": "li-2024-09", "cedar": "{cedar}"}}"#);
    let (status, err) = f.activate(&body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["field"], "cedar");
    // Still the pinned regime: a French member stays suspended.
    let (_, view) = f
        .call("GET", "/v1/admin/policies", Some(admin), None, &[])
        .await;
    assert_eq!(view["active"]["name"], "li-2024-09");
    let check = f.check_member(3).await;
    assert_eq!(check["reasons"][0], "region_suspended", "{check}");
    // The same Cedar on the timeline is accepted, and says so; the timeline admits members
    // the suspension excludes, so it takes an accepted widening.
    let body = format!(
        r#"{{"policy": "timeline", "cedar": "{cedar}", "accept_widening": true, "reason": "resumption"}}"#
    );
    let (status, view) = f.activate(&body).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["name"], "submitted");
    assert_eq!(view["proof"], "widening_accepted");
}

#[tokio::test]
async fn an_activation_is_recorded_and_survives_a_restart() {
    let f = fixture();
    let admin = f.token("admin");
    let (status, view) = f.activate(r#"{"policy": "li-2024-09"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let token_id = admin.split('_').nth(1).unwrap();
    assert_eq!(view["activated_by"], token_id, "{view}");
    // A restart without an explicit policy restores the recorded one.
    let restarted = AppState::new(ServerConfig::new(
        f._dir.path().join("l.sqlite").display().to_string(),
    ))
    .unwrap();
    let view = cg_server::api::policy_view(&restarted).unwrap();
    assert_eq!(
        (view.name.as_str(), view.hash),
        (
            "li-2024-09",
            f.state.policy().unwrap().policy.hash().to_owned()
        )
    );
    assert_eq!(view.activated_by.as_deref(), Some(token_id));
}

#[tokio::test]
async fn a_member_upsert_keeps_what_it_omits_and_never_reopens_an_account() {
    let f = fixture();
    let admin = f.token("admin");
    let closed = r#"[{"member_id": 3, "country": "FR", "closed_at": "2025-01-01"}]"#;
    let (status, _) = f
        .call("POST", "/v1/admin/members", Some(admin), Some(closed), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let again =
        r#"[{"member_id": 3, "country": "DE"}, {"member_id": 3, "closed_at": "2026-01-01"}]"#;
    let (status, _) = f
        .call("POST", "/v1/admin/members", Some(admin), Some(again), &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let facts = f
        .ledger(|s| s.member(MemberId(3)).unwrap())
        .await
        .unwrap()
        .record
        .unwrap();
    assert_eq!(
        facts.closed_at,
        Some(Timestamp::parse("2025-01-01").unwrap())
    );
    assert_eq!(facts.country.as_deref(), Some("DE"));
    assert!(facts.birth_date.is_some(), "an omitted birth date is kept");
    let check = f.check_member(3).await;
    assert_eq!(check["reasons"][0], "erased", "{check}");
}

#[tokio::test]
async fn service_stamps_are_monotonic_so_a_clock_step_back_cannot_revive_a_grant() {
    let f = fixture();
    // A grant recorded while the server clock ran a day ahead.
    let ahead = now().plus_days(1);
    f.ledger(move |s| {
        s.append(&[NewEvent::new(
            MemberId(1),
            Purpose::genai_training(),
            true,
            ahead,
        )])
        .unwrap()
    })
    .await;
    // The clock is back: the member withdraws now.
    let (status, event) = f
        .call(
            "PUT",
            "/v1/me/consents/genai_training",
            Some(f.token("member")),
            Some(r#"{"granted": false}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{event}");
    let ts = Timestamp::parse(event["ts"].as_str().unwrap()).unwrap();
    assert!(
        ts > ahead,
        "the withdrawal is stamped after the grant: {ts} vs {ahead}"
    );
    let later = format!(
        r#"{{"member_id": 1, "purpose": "genai_training", "as_of": "{}"}}"#,
        ahead.plus_days(1)
    );
    let (_, d) = f
        .call(
            "POST",
            "/v1/audit/decision",
            Some(f.token("auditor")),
            Some(&later),
            &[],
        )
        .await;
    assert_eq!(d["reasons"][0], "opted_out", "the newer opt-out wins: {d}");
    // Purposes outside the catalogue are refused, not recorded.
    let (status, _) = f
        .call(
            "PUT",
            "/v1/me/consents/genai_trainng",
            Some(f.token("member")),
            Some(r#"{"granted": true}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
