//! cg-server through its router, without a socket (`tower::ServiceExt::oneshot`): the
//! authorisation matrix over every endpoint and role, member isolation, a setting change seen
//! by `/v1/check` and in the log, GPC recorded once, and the error shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cg_ledger::{NewEvent, Record};
use cg_model::{MemberId, Purpose, Timestamp};
use cg_server::openapi::ENDPOINTS;
use cg_server::{AppState, ServerConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

mod hardening;
mod proofs;
mod seams;

struct Fixture {
    _dir: cg_test_support::TempDir,
    state: Arc<AppState>,
    tokens: Vec<(&'static str, String)>,
    member_b: String,
}

fn fixture() -> Fixture {
    fixture_on(None)
}

/// The fixture on SQLite, or on the PostgreSQL database at `pg`.
fn fixture_on(pg: Option<String>) -> Fixture {
    fixture_with(pg, cg_prove::SolverConfig::default())
}

/// The fixture with this solver for policy proofs.
fn fixture_with(pg: Option<String>, solver: cg_prove::SolverConfig) -> Fixture {
    let dir = cg_test_support::tempdir();
    let mut store: Box<dyn cg_ledger::Store> = match &pg {
        // The postgres client cannot run inside the async runtime: the store gets its own thread.
        Some(url) => Box::new(cg_ledger::open_threaded(url).unwrap()),
        None => cg_ledger::open(dir.path().join("l.sqlite").to_str().unwrap()).unwrap(),
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let members = [(1, "US"), (2, "US"), (3, "FR")].map(|(id, c)| {
        Ok(Record::Member(cg_ledger::MemberRecord {
            member_id: MemberId(id),
            country: Some(c.into()),
            birth_date: Some(time::Date::parse("1990-01-01", fmt).unwrap()),
            created_at: None,
            closed_at: None,
            display_name: None,
            handle: None,
        }))
    });
    store
        .import(&mut members.into_iter(), &cg_model::progress::NoProgress)
        .unwrap();
    store
        .append(&[NewEvent::new(
            MemberId(2),
            Purpose::genai_training(),
            true,
            Timestamp::parse("2025-01-01").unwrap(),
        )])
        .unwrap();
    let mut tokens = Vec::new();
    for (role, member) in [
        ("member", Some(1)),
        ("service", None),
        ("admin", None),
        ("auditor", None),
    ] {
        let (t, _) = cg_ledger::tokens::issue(store.as_mut(), role, member, None, None).unwrap();
        tokens.push((role, t));
    }
    let (member_b, _) =
        cg_ledger::tokens::issue(store.as_mut(), "member", Some(2), None, None).unwrap();
    let signer = cg_proof::note::NoteSigner::from_seed("consentgate.test/log", &[4u8; 32]).unwrap();
    cg_ledger::log::checkpoint(store.as_mut(), &signer).unwrap();
    let datasets = dir.path().join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    drop(store);
    let url = pg.unwrap_or_else(|| dir.path().join("l.sqlite").display().to_string());
    // Activations are checked with the solver.
    cg_test_support::install_solver();
    let state = AppState::new(ServerConfig {
        policy: Some(
            cg_policy::Policy::bundled("timeline", cg_policy::PolicyConfig::default()).unwrap(),
        ),
        datasets: Some(datasets),
        signer: Some(signer),
        solver,
        ..ServerConfig::new(url)
    })
    .unwrap();
    Fixture {
        _dir: dir,
        state,
        tokens,
        member_b,
    }
}

impl Fixture {
    fn token(&self, role: &str) -> &str {
        &self.tokens.iter().find(|(r, _)| *r == role).unwrap().1
    }

    /// Runs `f` on one of the service's own ledger connections.
    async fn ledger<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn cg_ledger::Store) -> R + Send + 'static,
    ) -> R {
        self.state
            .ledger(cg_server::Lane::Interactive, move |s| Ok(f(s)))
            .await
            .unwrap()
    }

    async fn history(&self, member: i64) -> Vec<cg_ledger::StoredEvent> {
        self.ledger(move |s| s.history(MemberId(member)).unwrap())
            .await
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_owned())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = cg_server::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        assert!(resp.headers().contains_key("x-request-id"));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

fn concrete(path: &str) -> String {
    path.replace("{purpose}", "genai_training")
        .replace("{id}", "ds-0000000000000000")
        .replace("{path}", "0/000.p/1")
}

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let f = fixture();
    for e in ENDPOINTS {
        let uri = concrete(e.path);
        let (status, body) = f.call(e.method, &uri, None, e.example, &[]).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {} without a token",
            e.method,
            e.path
        );
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = f
            .call(
                e.method,
                &uri,
                Some("cgt_0123456789abcdef_bogus"),
                e.example,
                &[],
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {} with a bogus token",
            e.method,
            e.path
        );
        for role in ["member", "service", "admin", "auditor"] {
            // Revoking would spend the admin token: use an unknown id there.
            let uri = if e.method == "DELETE" {
                uri.replace("ds-0000000000000000", "0000000000000000")
            } else {
                uri.clone()
            };
            let (status, body) = f
                .call(e.method, &uri, Some(f.token(role)), e.example, &[])
                .await;
            if e.roles.contains(&role) {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{role} must be allowed {} {}: {status} {body}",
                    e.method,
                    e.path
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} must be refused {} {}: {body}",
                    e.method,
                    e.path
                );
                assert_eq!(body["error"]["code"], "forbidden");
            }
        }
    }
    // The OpenAPI document lists exactly the table's endpoints.
    let (status, doc) = f.call("GET", "/openapi.json", None, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    for e in ENDPOINTS {
        assert!(
            doc["paths"][e.path][e.method.to_lowercase()].is_object(),
            "{} {}",
            e.method,
            e.path
        );
    }
}

#[tokio::test]
async fn a_member_changes_only_their_own_setting_and_check_sees_it_at_once() {
    member_isolation_and_check(fixture()).await;
}

/// The same on PostgreSQL (when `CG_TEST_DATABASE_URL` is set; `.ci/run` sets it). The test
/// database is made and dropped outside the async runtime (the postgres client runs its own).
#[test]
fn the_same_on_postgresql() {
    let Some(db) = cg_test_support::PgDatabase::create() else {
        return;
    };
    let url = db.url().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move { member_isolation_and_check(fixture_on(Some(url))).await });
    drop(runtime);
    drop(db);
}

async fn member_isolation_and_check(f: Fixture) {
    let check = r#"{"member_id": 1, "purpose": "genai_training"}"#;
    let (s, before) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("service")),
            Some(check),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(before["decision"], "include", "{before}");
    let (_, b_before) = f
        .call("GET", "/v1/me/history", Some(&f.member_b), None, &[])
        .await;

    let (s, event) = f
        .call(
            "PUT",
            "/v1/me/consents/genai_training",
            Some(f.token("member")),
            Some(r#"{"granted": false}"#),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{event}");
    let index = event["log_index"].as_u64().expect("a log index");
    let (_, after) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("service")),
            Some(check),
            &[],
        )
        .await;
    assert_eq!(
        (after["decision"].as_str(), after["reasons"][0].as_str()),
        (Some("exclude"), Some("not_permitted")),
        "a service learns the decision and a coarse reason: {after}"
    );
    let (_, detail) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("admin")),
            Some(check),
            &[],
        )
        .await;
    assert_eq!(
        (detail["decision"].as_str(), detail["reasons"][0].as_str()),
        (Some("exclude"), Some("opted_out")),
        "an admin sees the reason codes: {detail}"
    );

    // Member 2 is untouched; a member token cannot reach another member at all.
    let (_, b_after) = f
        .call("GET", "/v1/me/history", Some(&f.member_b), None, &[])
        .await;
    assert_eq!(b_before, b_after);
    let (s, _) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("member")),
            Some(r#"{"member_id": 2, "purpose": "genai_training"}"#),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, b_check) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("service")),
            Some(r#"{"member_id": 2, "purpose": "genai_training"}"#),
            &[],
        )
        .await;
    assert_eq!(b_check["decision"], "include");

    // The change is in the log: checkpoint it (the service holds the key) and prove it.
    f.ledger(|store| {
        let signer =
            cg_proof::note::NoteSigner::from_seed("consentgate.test/log", &[4u8; 32]).unwrap();
        cg_ledger::log::checkpoint(store, &signer).unwrap();
    })
    .await;
    let (s, proof) = f
        .call(
            "GET",
            &format!("/v1/log/proof/inclusion?index={index}"),
            Some(f.token("auditor")),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{proof}");
    let (s, verified) = f
        .call("GET", "/v1/log/verify", Some(f.token("auditor")), None, &[])
        .await;
    assert_eq!(
        (s, verified["verified"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{verified}"
    );
    let (_, mine) = f
        .call("GET", "/v1/me/consents", Some(f.token("member")), None, &[])
        .await;
    assert_eq!(mine["purposes"][0]["granted"], false);
    assert!(
        mine["explanation"]
            .as_str()
            .unwrap()
            .contains("turn this setting off"),
        "{mine}"
    );

    // A batch (its members read together) answers what single checks answer, item by item:
    // an opted-out, an opted-in and a never-asked member, an unknown one, members named twice.
    let admin = f.token("admin");
    let members = [1, 2, 3, 404, 2, 1];
    let items: Vec<String> = members
        .iter()
        .map(|m| format!(r#"{{"member_id": {m}, "purpose": "genai_training"}}"#))
        .collect();
    let (s, batch) = f
        .call(
            "POST",
            "/v1/check/batch",
            Some(admin),
            Some(&format!(r#"{{"items": [{}]}}"#, items.join(","))),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{batch}");
    let without_instant = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("at");
        v
    };
    for (i, item) in items.iter().enumerate() {
        let (_, single) = f
            .call("POST", "/v1/check", Some(admin), Some(item), &[])
            .await;
        assert_eq!(
            without_instant(batch["results"][i].clone()),
            without_instant(single),
            "item {i} (member {})",
            members[i]
        );
    }
    assert_eq!(batch["results"][0]["decision"], "exclude");
    assert_eq!(batch["results"][3]["reasons"][0], "member_unknown");
}

#[tokio::test]
async fn gpc_is_recorded_once_with_its_provenance() {
    let f = fixture();
    for _ in 0..3 {
        let (s, _) = f
            .call(
                "GET",
                "/v1/me/consents",
                Some(f.token("member")),
                None,
                &[("sec-gpc", "1")],
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (_, history) = f
        .call("GET", "/v1/me/history", Some(f.token("member")), None, &[])
        .await;
    let gpc: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "gpc")
        .collect();
    assert_eq!(gpc.len(), 1, "{history}");
    assert_eq!(gpc[0]["granted"], false);
    let events = f.history(1).await;
    let meta = events
        .iter()
        .find(|e| e.event.source.as_str() == "gpc")
        .unwrap()
        .metadata
        .clone()
        .unwrap();
    assert_eq!(meta["signal"], "Sec-GPC: 1");
    // With gpc_as_objection on (the default), the signal counts as an objection at once.
    let (_, check) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("admin")),
            Some(r#"{"member_id": 1, "purpose": "genai_training"}"#),
            &[],
        )
        .await;
    assert_eq!(
        (check["decision"].as_str(), check["reasons"][0].as_str()),
        (Some("exclude"), Some("opted_out")),
        "{check}"
    );
}

/// (method, uri, body, expected status, expected field).
type Case = (
    &'static str,
    &'static str,
    Option<String>,
    StatusCode,
    Option<&'static str>,
);

#[tokio::test]
async fn errors_have_one_shape_and_name_the_field() {
    let f = fixture();
    let svc = f.token("service");
    let cases: Vec<Case> = vec![
        ("POST", "/v1/check", Some("{not json".into()), StatusCode::BAD_REQUEST, Some("body")),
        ("POST", "/v1/check", Some(r#"{"member_id": 1, "purpose": "Not-A-Purpose"}"#.into()), StatusCode::BAD_REQUEST, Some("purpose")),
        ("POST", "/v1/check", Some(r#"{"member_id": 1, "purpose": "genai_training", "at": "yesterday"}"#.into()), StatusCode::BAD_REQUEST, Some("at")),
        // A well-spelt purpose outside the catalogue is not decided (it would fail open).
        ("POST", "/v1/check", Some(r#"{"member_id": 1, "purpose": "genai_trianing"}"#.into()), StatusCode::BAD_REQUEST, Some("purpose")),
        ("POST", "/v1/check/batch", Some(format!(r#"{{"items": [{}]}}"#, vec![r#"{"member_id":1,"purpose":"genai_training"}"#; 10_001].join(","))), StatusCode::BAD_REQUEST, Some("items")),
        ("POST", "/v1/check/batch", Some(r#"{"items": [{"member_id":1,"purpose":"genai_training"},{"member_id":1,"purpose":"x y"}]}"#.into()), StatusCode::BAD_REQUEST, Some("items[1].purpose")),
    ];
    for (method, uri, body, status, field) in cases {
        let (s, b) = f.call(method, uri, Some(svc), body.as_deref(), &[]).await;
        assert_eq!(s, status, "{uri}: {b}");
        assert_eq!(b["error"]["status"], status.as_u16());
        assert_eq!(b["error"]["field"].as_str(), field, "{b}");
    }
    let m = f.token("member");
    let (s, b) = f
        .call(
            "PUT",
            "/v1/me/consents/marketingx",
            Some(m),
            Some(r#"{"granted": true}"#),
            &[],
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("purpose"))
    );
    let (s, b) = f
        .call(
            "GET",
            "/v1/me/receipts?dataset=../../etc",
            Some(m),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("dataset"))
    );
    let (s, _) = f
        .call(
            "GET",
            "/v1/me/receipts?dataset=ds-0123456789abcdef",
            Some(m),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A 3 MiB body is refused before it is read.
    let big = format!(r#"{{"items": ["{}"]}}"#, "x".repeat(3 << 20));
    let (s, _) = f
        .call("POST", "/v1/check/batch", Some(svc), Some(&big), &[])
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Batches answer in order.
    let (s, b) = f.call("POST", "/v1/check/batch", Some(svc), Some(r#"{"items": [{"member_id":1,"purpose":"genai_training"},{"member_id":404,"purpose":"genai_training"}]}"#), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["results"][0]["member_id"], 1);
    assert_eq!(b["results"][1]["reasons"][0], "not_permitted");
    let (_, b) = f.call("POST", "/v1/check/batch", Some(f.token("admin")), Some(r#"{"items": [{"member_id":1,"purpose":"genai_training"},{"member_id":404,"purpose":"genai_training"}]}"#), &[]).await;
    assert_eq!(b["results"][1]["reasons"][0], "member_unknown");
}

#[tokio::test]
async fn revoked_and_issued_tokens_through_the_admin_api() {
    let f = fixture();
    let admin = f.token("admin");
    let (s, issued) = f
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(admin),
            Some(r#"{"role": "auditor", "ttl": "1h"}"#),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let token = issued["token"].as_str().unwrap();
    let (s, _) = f
        .call("GET", "/v1/log/checkpoint", Some(token), None, &[])
        .await;
    assert_eq!(s, StatusCode::OK);
    let id = issued["record"]["id"].as_str().unwrap();
    let (s, _) = f
        .call(
            "DELETE",
            &format!("/v1/admin/tokens/{id}"),
            Some(admin),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = f
        .call("GET", "/v1/log/checkpoint", Some(token), None, &[])
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (_, list) = f
        .call("GET", "/v1/admin/tokens", Some(admin), None, &[])
        .await;
    assert!(
        list.to_string().find("hash").is_none(),
        "no hashes or secrets listed"
    );
    // Activating a policy changes what checks answer, and the hash shown.
    let (s, p) = f
        .call(
            "POST",
            "/v1/admin/policies/activate",
            Some(admin),
            Some(
                r#"{"policy": "strict-optin", "accept_widening": true, "reason": "opt-in pilot"}"#,
            ),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    let (_, c) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("service")),
            Some(r#"{"member_id": 1, "purpose": "genai_training"}"#),
            &[],
        )
        .await;
    assert_eq!(
        (c["decision"].as_str(), c["policy"].as_str()),
        (Some("exclude"), Some("strict-optin")),
        "{c}"
    );
    let (s, b) = f
        .call(
            "POST",
            "/v1/admin/policies/validate",
            Some(admin),
            Some(r#"{"cedar": "permit(principal, action, resource) when { nonsense };"}"#),
            &[],
        )
        .await;
    assert_eq!(
        (s, b["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("cedar")),
        "{b}"
    );
}

#[tokio::test]
async fn a_form_post_without_the_csrf_token_changes_nothing() {
    let f = fixture();
    let member_token_id = f.token("member").split('_').nth(1).unwrap().to_owned();
    let member = f.state.sessions().create(&member_token_id).unwrap();
    let post = |body: String| {
        Request::builder()
            .method("POST")
            .uri("/privacy")
            .header("cookie", format!("cg_session={member}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let before = f.history(1).await.len();
    for body in [
        "granted=off".to_owned(),
        "granted=off&csrf=0123456789abcdef0123456789abcdef".to_owned(),
    ] {
        let resp = cg_server::router(f.state.clone())
            .oneshot(post(body))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(f.history(1).await.len(), before, "nothing recorded");
    // With the session's CSRF token, the same post records the choice.
    let csrf = cg_server::auth::csrf_of(&member);
    let resp = cg_server::router(f.state.clone())
        .oneshot(post(format!("granted=off&csrf={csrf}")))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(f.history(1).await.len(), before + 1);
    // Pages without a session go to the login page.
    let resp = cg_server::router(f.state.clone())
        .oneshot(
            Request::builder()
                .uri("/privacy")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (resp.status(), resp.headers()["location"].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/login")
    );
}
