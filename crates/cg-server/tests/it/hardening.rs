//! How the service holds up: sessions that are not tokens, CSRF on sign-in and sign-out,
//! security headers, the error shape for every rejection, coarse answers for services,
//! bounded connections and waits, and a PostgreSQL session killed under it.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::*;

fn header<'a>(resp: &'a axum::response::Response, name: &str) -> Vec<&'a str> {
    resp.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn cookie_value(set_cookies: &[&str], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        let first = c.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

async fn send(f: &Fixture, req: Request<Body>) -> axum::response::Response {
    cg_server::router(f.state.clone())
        .oneshot(req)
        .await
        .unwrap()
}

fn form(uri: &str, cookie: &str, body: String) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap()
}

fn get_page(uri: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

/// Signs in through the form; returns the session cookie value.
async fn sign_in(f: &Fixture, token: &str, proto_https: bool) -> axum::response::Response {
    let resp = send(f, get_page("/login", "")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let login = cookie_value(&header(&resp, "set-cookie"), "cg_login").expect("a login cookie");
    let mut req = form(
        "/login",
        &format!("cg_login={login}"),
        format!("csrf={login}&token={token}"),
    );
    if proto_https {
        req.headers_mut()
            .insert("x-forwarded-proto", "https".parse().unwrap());
    }
    send(f, req).await
}

#[tokio::test]
async fn a_session_is_not_the_token_and_ends_on_sign_out_and_with_its_token() {
    let f = fixture();
    let member = f.token("member").to_owned();
    let resp = sign_in(&f, &member, false).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookies = header(&resp, "set-cookie");
    let session = cookie_value(&cookies, "cg_session").unwrap();
    assert!(!session.is_empty() && !member.contains(&session) && !session.contains(&member));
    let set = cookies
        .iter()
        .find(|c| c.starts_with("cg_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"),
        "{set}"
    );
    let cookie = format!("cg_session={session}");
    // The raw token in the cookie is not a session.
    let resp = send(&f, get_page("/privacy", &format!("cg_session={member}"))).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = send(&f, get_page("/privacy", &cookie)).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Sign-out needs the form token; without it nothing ends.
    let resp = send(&f, form("/logout", &cookie, String::new())).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        send(&f, get_page("/privacy", &cookie)).await.status(),
        StatusCode::OK
    );
    let csrf = cg_server::auth::csrf_of(&session);
    let resp = send(&f, form("/logout", &cookie, format!("csrf={csrf}"))).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    // The old cookie is worthless now, even if the browser kept it.
    let resp = send(&f, get_page("/privacy", &cookie)).await;
    assert_eq!(
        (resp.status(), header(&resp, "location")),
        (StatusCode::SEE_OTHER, vec!["/login"])
    );

    // Revoking the token ends its sessions.
    let resp = sign_in(&f, &member, true).await;
    let cookies = header(&resp, "set-cookie");
    let set = cookies
        .iter()
        .find(|c| c.starts_with("cg_session="))
        .unwrap();
    assert!(set.contains("; Secure"), "behind an HTTPS proxy: {set}");
    let cookie = format!(
        "cg_session={}",
        cookie_value(&cookies, "cg_session").unwrap()
    );
    assert_eq!(
        send(&f, get_page("/privacy", &cookie)).await.status(),
        StatusCode::OK
    );
    let id = member.split('_').nth(1).unwrap();
    let (s, _) = f
        .call(
            "DELETE",
            &format!("/v1/admin/tokens/{id}"),
            Some(f.token("admin")),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&f, get_page("/privacy", &cookie)).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sign_in_needs_the_forms_own_token() {
    let f = fixture();
    let member = f.token("member").to_owned();
    // A cross-site form knows neither the cookie nor the value.
    for (cookie, body) in [
        (String::new(), format!("token={member}")),
        (
            "cg_login=abc".to_owned(),
            format!("csrf=abd&token={member}"),
        ),
        (String::new(), format!("csrf=abc&token={member}")),
    ] {
        let resp = send(&f, form("/login", &cookie, body)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(cookie_value(&header(&resp, "set-cookie"), "cg_session").is_none());
    }
    let resp = sign_in(&f, "cgt_0123456789abcdef_bogus", false).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let f = fixture();
    for req in [
        get_page("/login", ""),
        get_page("/privacy", ""),
        get_page("/v1/me/consents", ""),
        get_page("/nowhere", ""),
    ] {
        let uri = req.uri().to_string();
        let resp = send(&f, req).await;
        let csp = header(&resp, "content-security-policy").join("");
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
            "{uri}: {csp}"
        );
        assert_eq!(
            header(&resp, "x-content-type-options"),
            vec!["nosniff"],
            "{uri}"
        );
        assert_eq!(header(&resp, "cache-control"), vec!["no-store"], "{uri}");
        assert_eq!(header(&resp, "x-frame-options"), vec!["DENY"], "{uri}");
    }
    // Pages carry no inline styles or scripts the policy would block.
    let resp = send(&f, get_page("/login", "")).await;
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8_lossy(&bytes);
    assert!(
        !html.contains("style=") && !html.contains("<script"),
        "{html}"
    );
}

#[tokio::test]
async fn every_rejection_has_the_error_shape() {
    let f = fixture();
    let auditor = f.token("auditor");
    for (method, uri, token, body, status, code) in [
        (
            "GET",
            "/v1/log/proof/inclusion?index=abc",
            Some(auditor),
            None,
            400,
            "bad_request",
        ),
        ("GET", "/v1/nowhere", None, None, 404, "not_found"),
        ("PATCH", "/v1/check", None, None, 405, "method_not_allowed"),
        (
            "POST",
            "/v1/check",
            Some(f.token("service")),
            Some("[1,2]"),
            400,
            "bad_request",
        ),
        // `/v1/check` checks its token before it looks at the body (both in one ledger call).
        (
            "POST",
            "/v1/check",
            Some("cgt_not_a_token"),
            Some("not json"),
            401,
            "unauthorized",
        ),
        ("POST", "/v1/check", None, Some("{}"), 401, "unauthorized"),
        (
            "POST",
            "/v1/check",
            Some(f.token("member")),
            Some("not json"),
            403,
            "forbidden",
        ),
        (
            "POST",
            "/v1/check",
            Some(f.token("service")),
            None,
            415,
            "unsupported_media_type",
        ),
        // A batch parses its body on the bulk lane, with the same errors.
        (
            "POST",
            "/v1/check/batch",
            Some(f.token("service")),
            Some("{"),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/check/batch",
            Some(f.token("service")),
            None,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/admin/tokens",
            Some(f.token("admin")),
            Some(r#"{"role":"auditor","ttl":"1é"}"#),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/admin/tokens",
            Some(f.token("admin")),
            Some(r#"{"role":"auditor","ttl":"99999999999999d"}"#),
            400,
            "bad_request",
        ),
    ] {
        let (s, b) = f.call(method, uri, token, body, &[]).await;
        assert_eq!(
            (s.as_u16(), b["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {uri}: {b}"
        );
        assert_eq!(b["error"]["status"], status);
    }
    // A form post with a body that is not a form.
    let resp = send(
        &f,
        Request::builder()
            .method("POST")
            .uri("/login")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert!(resp.status().is_client_error());
    // The bearer scheme is case-insensitive.
    let req = Request::builder()
        .uri("/v1/log/checkpoint")
        .header("authorization", format!("bearer {auditor}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&f, req).await.status(), StatusCode::OK);
    // A token's expiry is an RFC 3339 time, at most ten years away.
    let (s, issued) = f
        .call(
            "POST",
            "/v1/admin/tokens",
            Some(f.token("admin")),
            Some(r#"{"role":"auditor","ttl":"3650d"}"#),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let expires = issued["record"]["expires_at"].as_str().unwrap();
    assert!(
        Timestamp::parse(expires).is_ok() && expires.ends_with('Z'),
        "{expires}"
    );
}

#[tokio::test]
async fn a_service_learns_nothing_about_the_member_but_the_decision() {
    let f = fixture();
    let svc = f.token("service");
    // Member 1 objects; member 404 does not exist.
    let (s, _) = f
        .call(
            "PUT",
            "/v1/me/consents/genai_training",
            Some(f.token("member")),
            Some(r#"{"granted": false}"#),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, unknown) = f
        .call(
            "POST",
            "/v1/check",
            Some(svc),
            Some(r#"{"member_id": 404, "purpose": "genai_training"}"#),
            &[],
        )
        .await;
    let (_, opted_out) = f
        .call(
            "POST",
            "/v1/check",
            Some(svc),
            Some(r#"{"member_id": 1, "purpose": "genai_training"}"#),
            &[],
        )
        .await;
    for v in [&unknown, &opted_out] {
        assert_eq!(v["decision"], "exclude", "{v}");
        assert_eq!(v["reason"], "not_permitted", "{v}");
        assert_eq!(v["reasons"], serde_json::json!(["not_permitted"]), "{v}");
        assert!(v["jurisdiction"].is_null() && v["regime"].is_null(), "{v}");
    }
    // An unknown id and a known member read the same but for the id.
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("member_id");
        v.as_object_mut().unwrap().remove("at");
        v
    };
    assert_eq!(strip(&unknown), strip(&opted_out));
    // Admins and auditors get the detail.
    let (_, detail) = f
        .call(
            "POST",
            "/v1/check",
            Some(f.token("admin")),
            Some(r#"{"member_id": 1, "purpose": "genai_training"}"#),
            &[],
        )
        .await;
    assert_eq!(
        (
            detail["jurisdiction"].as_str(),
            detail["reason"].as_str(),
            detail["reasons"][0].as_str()
        ),
        (Some("US"), Some("not_permitted"), Some("opted_out"))
    );
}

/// The route table (and so `/openapi.json`) against the router itself: every table entry is
/// routed, every other method on its paths is 405, and every `.route(...)` in the API's
/// source is in the table.
#[tokio::test]
async fn the_openapi_table_matches_the_router() {
    let f = fixture();
    for e in ENDPOINTS {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            let (s, b) = f.call(method, &concrete(e.path), None, None, &[]).await;
            let listed = ENDPOINTS
                .iter()
                .any(|x| x.path == e.path && x.method == method);
            if listed {
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {}: {b}", e.path);
            } else {
                assert_eq!(
                    s,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {} is routed but not documented: {b}",
                    e.path
                );
            }
        }
    }
    let sources = [
        include_str!("../../src/api/me.rs"),
        include_str!("../../src/api/check.rs"),
        include_str!("../../src/api/admin.rs"),
        include_str!("../../src/api/audit.rs"),
    ];
    let mut routed = Vec::new();
    for src in sources {
        for chunk in src.split(".route(").skip(1) {
            // The table writes a catch-all `{*path}` as `{path}`.
            let path = chunk.split('"').nth(1).unwrap().replace("{*", "{");
            let handlers = chunk.split(".route(").next().unwrap();
            let handlers = &handlers[..handlers.find("\n}").unwrap_or(handlers.len())];
            for (token, method) in [
                ("get(", "GET"),
                ("post(", "POST"),
                ("put(", "PUT"),
                ("delete(", "DELETE"),
            ] {
                if handlers.contains(token) {
                    routed.push((method, path.to_owned()));
                }
            }
        }
    }
    assert_eq!(routed.len(), ENDPOINTS.len(), "{routed:?}");
    for (method, path) in routed {
        assert!(
            ENDPOINTS
                .iter()
                .any(|e| e.method == method && e.path == path),
            "{method} {path} is routed but not in the table"
        );
    }
}

/// Serves the fixture on a loopback socket with `limits`.
async fn serve_fixture(
    f: &Fixture,
    limits: cg_server::ServeLimits,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = f.state.clone();
    tokio::spawn(async move {
        cg_server::serve_with(listener, state, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_the_connection_cap_answers_503() {
    let f = fixture();
    let limits = cg_server::ServeLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_millis(400),
        ..cg_server::ServeLimits::default()
    };
    let (addr, stop) = serve_fixture(&f, limits).await;
    let outcome = tokio::task::spawn_blocking(move || {
        // Two silent clients take both slots.
        let silent: Vec<std::net::TcpStream> = (0..2)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        // A third is refused at once with 503 and Retry-After.
        let mut third = std::net::TcpStream::connect(addr).unwrap();
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = String::new();
        third.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 503") && answer.contains("retry-after: 1"),
            "{answer}"
        );
        // The silent ones are closed by the server after the header-read timeout.
        let started = Instant::now();
        for mut s in silent {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = n;
        }
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(4), "closed after {waited:?}");
        // With the slots free again, a real request is served.
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(outcome.starts_with("HTTP/1.1 200"), "{outcome}");
    let _ = stop.send(());
}

/// PostgreSQL terminates the service's sessions: requests answer 503 (never 401) until the pool
/// reconnects, then correctly again, within 5 s; nothing acknowledged is lost.
#[test]
fn a_killed_postgresql_session_is_503_then_recovers() {
    let Some(db) = cg_test_support::PgDatabase::create() else {
        return;
    };
    let url = db.url().to_owned();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let f = fixture_on(Some(url.clone()));
        let (s, event) = f
            .call("PUT", "/v1/me/consents/genai_training", Some(f.token("member")), Some(r#"{"granted": false}"#), &[])
            .await;
        assert_eq!(s, StatusCode::OK, "{event}");
        // Kill every session of the service's database.
        // On a plain thread: the postgres client runs its own runtime.
        let killed = std::thread::spawn(move || {
            let admin_url = url.clone();
            let db_name = admin_url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
            let mut c = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
            let rows = c
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&db_name],
                )
                .unwrap();
            rows.len()
        })
        .join()
        .unwrap();
        assert!(killed > 0, "the service's sessions were found");
        let started = Instant::now();
        let mut statuses = Vec::new();
        loop {
            let (s, b) = f
                .call("POST", "/v1/check", Some(f.token("admin")), Some(r#"{"member_id": 1, "purpose": "genai_training"}"#), &[])
                .await;
            statuses.push(s.as_u16());
            assert!(s == StatusCode::OK || s == StatusCode::SERVICE_UNAVAILABLE, "{s}: {b}");
            if s == StatusCode::OK {
                assert_eq!(b["reasons"][0], "opted_out", "the acknowledged opt-out is there: {b}");
                break;
            }
            assert_eq!(b["error"]["code"], "unavailable", "{b}");
            assert!(started.elapsed() < Duration::from_secs(5), "not recovered after 5 s: {statuses:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Every connection of the pool recovers (the interactive lane has several).
        for _ in 0..20 {
            let (s, b) = f.call("GET", "/v1/me/history", Some(f.token("member")), None, &[]).await;
            if s != StatusCode::OK {
                assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let (s, _) = f.call("GET", "/v1/me/history", Some(f.token("member")), None, &[]).await;
        assert_eq!(s, StatusCode::OK);
    });
    drop(runtime);
    drop(db);
}

/// A member asking for a receipt of a dataset whose files are broken learns that, not the
/// server's paths, a parser's message or an operator's command.
#[tokio::test]
async fn receipt_errors_tell_a_member_nothing_about_the_server() {
    let f = fixture();
    let datasets = f._dir.path().join("datasets");
    for (id, manifest) in [
        ("ds-0123456789abcdef", "{not json"),
        (
            "ds-0123456789abcde0",
            r#"{"dataset_id": "ds-0123456789abcde0"}"#,
        ),
    ] {
        std::fs::create_dir_all(datasets.join(id)).unwrap();
        std::fs::write(datasets.join(id).join("manifest.json"), manifest).unwrap();
        let (s, b) = f
            .call(
                "GET",
                &format!("/v1/me/receipts?dataset={id}"),
                Some(f.token("member")),
                None,
                &[],
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(id), "{message}");
        for leak in [
            datasets.to_str().unwrap(),
            "/tmp",
            "consentgate ",
            "expected",
            "line 1",
        ] {
            assert!(!message.contains(leak), "{leak:?} in {message}");
        }
    }
}
