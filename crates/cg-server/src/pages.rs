//! Server-rendered pages: `/login`, `/privacy` (a member's setting, its explanation, history,
//! receipts) and `/dashboard` (builds with SVG charts, the policy in force, the log). HTML is
//! built here with every value escaped; the stylesheet is embedded; forms work without
//! JavaScript. Pages authenticate by the `cg_session` cookie (HttpOnly, SameSite=Strict,
//! `Secure` over HTTPS) that `/login` sets: a server-side session id ([`crate::sessions`]),
//! never the token. Every form carries a CSRF token: derived from the session for signed-in
//! forms, a double-submit value for the sign-in form. Every response carries a strict
//! Content-Security-Policy, `frame-ancestors 'none'`, `nosniff`, `no-referrer` and
//! `Cache-Control: no-store` ([`security_headers`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::AppState;
use crate::api::{self, SetConsent};
use crate::auth::{
    AnyPage, MemberCap, MemberPage, ReaderPage, SESSION_COOKIE, cookie, csrf_of, session_token,
};
use crate::error::ApiError;
use crate::extract::ApiForm;
use crate::storage::Lane;

/// The cookie holding the sign-in form's CSRF value (double submit: the form echoes it).
const LOGIN_COOKIE: &str = "cg_login";

/// Headers every response carries: pages load nothing from elsewhere, cannot be framed, are
/// not cached and do not leak their address.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    // A generated document (build report, data-use record) brings its own, stricter policy.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
    }
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    // The stylesheet is the same for everyone; everything else is personal or live.
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Whether cookies must be `Secure`: the service says so, or the request came over HTTPS
/// through a proxy that says so.
fn secure(s: &AppState, headers: &HeaderMap) -> bool {
    s.secure_cookies()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn cookie_header(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        let _ = write!(c, "; Max-Age={age}");
    }
    c
}

const STYLE: &str = include_str!("../assets/style.css");

/// The page routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/privacy", get(privacy).post(privacy_save))
        .route("/privacy/receipt", axum::routing::post(privacy_receipt))
        .route("/privacy/export", get(privacy_export))
        .route("/privacy/export.json", get(privacy_export_json))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/builds/{id}/report", get(build_report))
        .route(
            "/assets/style.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    STYLE,
                )
            }),
        )
}

/// Escapes text for HTML content and attribute values (one escaper for pages and documents).
pub use cg_report::html::esc;

/// A page: `csrf` is the session's form token when signed in (for the sign-out form).
fn page(title: &str, body: &str, csrf: Option<&str>) -> Html<String> {
    let logout = match csrf {
        Some(csrf) => format!(
            r#"<form method="post" action="/logout" class="signout"><input type="hidden" name="csrf" value="{}"><button class="secondary" type="submit">Sign out</button></form>"#,
            esc(csrf)
        ),
        None => String::new(),
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · consentgate</title><link rel="stylesheet" href="/assets/style.css"></head><body><header><strong>consentgate</strong>{logout}</header><main id="main">{body}</main></body></html>"#,
        esc(title)
    ))
}

/// The form token of a signed-in page request.
fn csrf_for(headers: &HeaderMap) -> String {
    session_token(headers)
        .map(|t| csrf_of(&t))
        .unwrap_or_default()
}

/// A page error: 401 goes to the login page; others show a message.
fn page_error(e: ApiError, headers: &HeaderMap) -> Response {
    match e.status {
        StatusCode::UNAUTHORIZED => Redirect::to("/login").into_response(),
        status => {
            let csrf = csrf_for(headers);
            let mut response = (
                status,
                page(
                    "Error",
                    &format!("<h1>{}</h1><p>{}</p>", status.as_u16(), esc(&e.message)),
                    (!csrf.is_empty()).then_some(csrf.as_str()),
                ),
            )
                .into_response();
            if let Some(seconds) = e.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

async fn home(caller: Result<AnyPage, ApiError>) -> Response {
    match caller {
        Ok(AnyPage(c)) if c.record.role == "member" => Redirect::to("/privacy").into_response(),
        Ok(_) => Redirect::to("/dashboard").into_response(),
        Err(_) => Redirect::to("/login").into_response(),
    }
}

fn login_page(status: StatusCode, s: &AppState, headers: &HeaderMap, alert: &str) -> Response {
    // A fresh double-submit value per form: a cross-site page can neither read it nor set the
    // cookie (SameSite=Strict), so it cannot post a sign-in (login CSRF).
    let Ok(value) = crate::sessions::random_id() else {
        return page_error(
            ApiError::internal("no randomness for the sign-in form"),
            headers,
        );
    };
    let body = format!(
        r#"<h1>Sign in</h1>{alert}<form method="post" action="/login"><input type="hidden" name="csrf" value="{value}"><label class="field" for="token">Access token</label><input id="token" name="token" type="password" autocomplete="off" required><p class="muted">Your platform gives you this token. Signing in starts a session for this site; the token itself is not stored in your browser.</p><button type="submit">Sign in</button></form>"#
    );
    (
        status,
        [(
            header::SET_COOKIE,
            cookie_header(LOGIN_COOKIE, &value, secure(s, headers), Some(600)),
        )],
        page("Sign in", &body, None),
    )
        .into_response()
}

async fn login_form(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    login_page(StatusCode::OK, &s, &headers, "")
}

async fn login(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<ApiForm<BTreeMap<String, String>>, ApiError>,
) -> Response {
    let f = match form {
        Ok(ApiForm(f)) => f,
        Err(e) => return page_error(e, &headers),
    };
    let expected = cookie(&headers, LOGIN_COOKIE);
    if expected.is_none() || f.get("csrf") != expected.as_ref() {
        return login_page(
            StatusCode::FORBIDDEN,
            &s,
            &headers,
            r#"<p class="bad" role="alert">The sign-in form expired; please try again.</p>"#,
        );
    }
    let token = f
        .get("token")
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    let record = s
        .ledger(Lane::Interactive, move |store| {
            Ok(cg_ledger::tokens::authenticate(store, &token))
        })
        .await;
    match record {
        Err(e) => page_error(e, &headers),
        Ok(Err(cg_ledger::tokens::TokenError::Unavailable(detail))) => page_error(
            ApiError::from(cg_ledger::LedgerError::Database {
                backend: "tokens",
                message: detail,
            }),
            &headers,
        ),
        Ok(Err(cg_ledger::tokens::TokenError::Invalid)) => login_page(
            StatusCode::UNAUTHORIZED,
            &s,
            &headers,
            r#"<p class="bad" role="alert">That token is not valid.</p>"#,
        ),
        Ok(Ok(record)) => {
            let session = match s.sessions().create(&record.id) {
                Ok(id) => id,
                Err(e) => return page_error(e, &headers),
            };
            let target = if record.role == "member" {
                "/privacy"
            } else {
                "/dashboard"
            };
            let secure = secure(&s, &headers);
            let mut response = Redirect::to(target).into_response();
            let h = response.headers_mut();
            for c in [
                cookie_header(SESSION_COOKIE, &session, secure, None),
                cookie_header(LOGIN_COOKIE, "", secure, Some(0)),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
    }
}

async fn logout(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<ApiForm<Vec<(String, String)>>, ApiError>,
) -> Response {
    let form = match form {
        Ok(ApiForm(f)) => f,
        Err(e) => return page_error(e, &headers),
    };
    // A sign-out needs the session's form token: a cross-site form cannot sign a member out.
    if !csrf_ok(&headers, &form) {
        return page_error(
            ApiError::forbidden("the form expired; reload the page"),
            &headers,
        );
    }
    if let Some(session) = session_token(&headers) {
        s.sessions().end(&session);
    }
    (
        [(
            header::SET_COOKIE,
            cookie_header(SESSION_COOKIE, "", secure(&s, &headers), Some(0)),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

/// A member's form post: the caller's handle if signed in and the CSRF token matches.
fn member_post(
    caller: Result<MemberPage, ApiError>,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<MemberCap, ApiError> {
    let MemberPage(cap) = caller?;
    if !csrf_ok(headers, form) {
        return Err(ApiError::forbidden("the form expired; reload the page"));
    }
    Ok(cap)
}

fn csrf_ok(headers: &HeaderMap, form: &[(String, String)]) -> bool {
    let Some(session) = session_token(headers) else {
        return false;
    };
    form.iter()
        .any(|(k, v)| k == "csrf" && *v == csrf_of(&session))
}

async fn privacy_body(
    s: &Arc<AppState>,
    cap: MemberCap,
    headers: &HeaderMap,
    flash: &str,
) -> Result<String, ApiError> {
    let gpc = api::record_gpc(s, cap, headers, "web").await?;
    let mine = api::my_consents(s, cap).await?;
    let history = api::history(s, cap).await?;
    let csrf = csrf_for(headers);
    let genai = mine.purposes.iter().find(|p| p.purpose == "genai_training");
    // The setting shows the member's own choice; with none recorded, what the rules in their
    // region do by default.
    let on = genai
        .and_then(|p| p.granted)
        .unwrap_or(mine.genai_training.allowed && !genai.is_some_and(|p| p.gpc_signal));
    let mut b = String::new();
    let _ = write!(b, "<h1>Your privacy settings</h1>{flash}");
    if gpc {
        b.push_str(r#"<p class="notice" role="status" id="gpc-notice">Your browser sends a <strong>Global Privacy Control</strong> signal. We recorded it as an objection to using your data for AI training.</p>"#);
    }
    let _ = write!(
        b,
        r#"<form method="post" action="/privacy"><fieldset><legend>Generative AI</legend><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="granted" value="off"><div class="toggle"><input type="checkbox" id="genai" name="granted" value="on"{checked} aria-describedby="genai-help"><label for="genai">Use my data for training content-generating AI models</label></div><p id="genai-help">{explanation}</p><p class="muted">Now: <strong id="decision">{decision}</strong> ({reasons}) under policy <code>{policy}</code>{regime}.</p><button type="submit" id="save">Save</button></fieldset></form>"#,
        csrf = esc(&csrf),
        checked = if on { " checked" } else { "" },
        explanation = esc(&mine.explanation),
        decision = esc(&mine.genai_training.decision),
        reasons = esc(&mine.genai_training.reasons.join(", ")),
        policy = esc(&mine.genai_training.policy),
        regime = mine
            .genai_training
            .regime
            .as_deref()
            .map(|r| format!(", regime <code>{}</code>", esc(r)))
            .unwrap_or_default(),
    );
    b.push_str(r#"<h2 id="history-heading">Your choices</h2><table id="history" aria-labelledby="history-heading"><thead><tr><th>When</th><th>Purpose</th><th>Choice</th><th>How</th><th>Log entry</th></tr></thead><tbody>"#);
    if history.is_empty() {
        b.push_str(r#"<tr><td colspan="5" class="muted">No choices recorded.</td></tr>"#);
    }
    for e in history.iter().rev() {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.ts),
            esc(&e.purpose),
            if e.granted { "allowed" } else { "not allowed" },
            esc(&e.source),
            e.log_index.map_or("-".into(), |i| i.to_string())
        );
    }
    b.push_str("</tbody></table>");
    b.push_str(r#"<h2>Your data use record</h2><p>Everything this service holds about how your data is used for AI training: your choices, every dataset with a receipt that your content is or is not in it, and the models trained on it.</p><p><a id="export" class="button" href="/privacy/export">Download my data use record</a></p>"#);
    let builds = api::list_builds(s)?;
    if !builds.is_empty() && s.keys().is_some() {
        b.push_str(r#"<h2>Your receipts</h2><p>A receipt proves, with the platform's public key and without trusting this page, whether your content is in a training dataset.</p><table><thead><tr><th>Dataset</th><th>As of</th><th></th></tr></thead><tbody>"#);
        for d in builds.iter().take(20) {
            let _ = write!(
                b,
                r#"<tr><td><code>{id}</code></td><td>{as_of}</td><td><form method="post" action="/privacy/receipt"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="dataset" value="{id}"><button type="submit" class="secondary">Get and verify receipt</button></form></td></tr>"#,
                id = esc(&d.dataset_id),
                as_of = esc(&d.as_of),
                csrf = esc(&csrf)
            );
        }
        b.push_str("</tbody></table>");
    }
    Ok(b)
}

async fn privacy(
    State(s): State<Arc<AppState>>,
    caller: Result<MemberPage, ApiError>,
    headers: HeaderMap,
) -> Response {
    let cap = match caller {
        Ok(MemberPage(c)) => c,
        Err(e) => return page_error(e, &headers),
    };
    match privacy_body(&s, cap, &headers, "").await {
        Ok(b) => page("Privacy settings", &b, Some(&csrf_for(&headers))).into_response(),
        Err(e) => page_error(e, &headers),
    }
}

async fn privacy_save(
    State(s): State<Arc<AppState>>,
    caller: Result<MemberPage, ApiError>,
    headers: HeaderMap,
    form: Result<ApiForm<Vec<(String, String)>>, ApiError>,
) -> Response {
    let cap = match form.and_then(|ApiForm(form)| Ok((member_post(caller, &headers, &form)?, form)))
    {
        Ok(cap) => cap,
        Err(e) => return page_error(e, &headers),
    };
    let (cap, form) = cap;
    let granted = form.iter().any(|(k, v)| k == "granted" && v == "on");
    if let Err(e) = api::set_consent(
        &s,
        cap,
        "genai_training",
        &SetConsent {
            granted,
            notice_version: None,
        },
        "web",
        crate::api::me::gpc_signal(&headers),
    )
    .await
    {
        return page_error(e, &headers);
    }
    // Post/redirect/get: a reload does not submit again.
    Redirect::to("/privacy").into_response()
}

async fn privacy_receipt(
    State(s): State<Arc<AppState>>,
    caller: Result<MemberPage, ApiError>,
    headers: HeaderMap,
    form: Result<ApiForm<Vec<(String, String)>>, ApiError>,
) -> Response {
    let cap = match form.and_then(|ApiForm(form)| Ok((member_post(caller, &headers, &form)?, form)))
    {
        Ok(cap) => cap,
        Err(e) => return page_error(e, &headers),
    };
    let (cap, form) = cap;
    let dataset = form
        .iter()
        .find(|(k, _)| k == "dataset")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let result = api::receipt(&s, cap, &dataset).await.and_then(|r| {
        let vkey = s
            .verifier_key()
            .ok_or_else(|| ApiError::unavailable("no log key"))?;
        let verified = cg_proof::receipt::verify(&r, &vkey, Some(cap.member())).map_err(|e| {
            ApiError::internal(format!(
                "a receipt this service issued does not verify: {e}"
            ))
        })?;
        Ok((r, verified, vkey))
    });
    let flash = match result {
        Ok((r, v, vkey)) => format!(
            r#"<div class="notice" role="status" id="receipt"><p><strong>Verified:</strong> {}.</p><details><summary>The receipt (JSON) and the public key to check it yourself</summary><p><code>{}</code></p><pre class="mono">{}</pre></details></div>"#,
            esc(&v.statement()),
            esc(&vkey),
            esc(&serde_json::to_string_pretty(&r).unwrap_or_default())
        ),
        Err(e) => format!(
            r#"<p class="bad" role="alert">No receipt: {}</p>"#,
            esc(&e.message)
        ),
    };
    match privacy_body(&s, cap, &headers, &flash).await {
        Ok(b) => page("Privacy settings", &b, Some(&csrf_for(&headers))).into_response(),
        Err(e) => page_error(e, &headers),
    }
}

/// A generated document, served with its own Content-Security-Policy.
fn document(html: String) -> Response {
    let csp = HeaderValue::from_str(&cg_report::html::content_security_policy())
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        html,
    )
        .into_response()
}

async fn privacy_export(
    State(s): State<Arc<AppState>>,
    caller: Result<MemberPage, ApiError>,
    headers: HeaderMap,
) -> Response {
    let cap = match caller {
        Ok(MemberPage(c)) => c,
        Err(e) => return page_error(e, &headers),
    };
    match crate::api::me::export(&s, cap).await {
        Ok(e) => document(cg_report::export::html(&e, Some("/privacy/export.json"))),
        Err(e) => page_error(e, &headers),
    }
}

async fn privacy_export_json(
    State(s): State<Arc<AppState>>,
    caller: Result<MemberPage, ApiError>,
    headers: HeaderMap,
) -> Response {
    let cap = match caller {
        Ok(MemberPage(c)) => c,
        Err(e) => return page_error(e, &headers),
    };
    match crate::api::me::export(&s, cap).await {
        Ok(e) => (
            [(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"my-data-use-record.json\""),
            )],
            axum::Json(e),
        )
            .into_response(),
        Err(e) => page_error(e, &headers),
    }
}

async fn build_report(
    State(s): State<Arc<AppState>>,
    caller: Result<ReaderPage, ApiError>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if let Err(e) = caller {
        return page_error(e, &headers);
    }
    let dir = match api::dataset_dir(&s, &id, "id") {
        Ok(d) => d,
        Err(e) => return page_error(e, &headers),
    };
    let id2 = id.clone();
    let made = s
        .ledger(Lane::Bulk, move |store| {
            let facts = cg_report::DatasetFacts::read(&dir).map_err(|e| {
                tracing::error!(dataset = %id2, error = %e, "build report failed");
                ApiError::conflict(format!(
                    "the dataset {id2} cannot be reported on (its files are incomplete)"
                ))
            })?;
            let log = cg_report::build_report::log_position(store, &facts)?;
            Ok(cg_report::build_report::render(&facts, None, Some(&log)))
        })
        .await;
    match made {
        Ok(html) => document(html),
        Err(e) => page_error(e, &headers),
    }
}

/// Colours of the decisions in charts (distinguishable in greyscale too).
const COLOURS: [(&str, &str); 3] = [
    ("include", "#1a7f37"),
    ("include_redacted", "#d4a72c"),
    ("exclude", "#6e7781"),
];

async fn dashboard(
    State(s): State<Arc<AppState>>,
    caller: Result<ReaderPage, ApiError>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = caller {
        return page_error(e, &headers);
    }
    match dashboard_body(&s).await {
        Ok(b) => page("Dashboard", &b, Some(&csrf_for(&headers))).into_response(),
        Err(e) => page_error(e, &headers),
    }
}

async fn dashboard_body(s: &Arc<AppState>) -> Result<String, ApiError> {
    let p = api::policy_view(s)?;
    let mut b = String::from("<h1>Dashboard</h1>");
    let _ = write!(
        b,
        r#"<h2>Policy in force</h2><p><strong id="policy-name">{}</strong> · hash <code id="policy-hash">{}</code> · since {}</p><table><thead><tr><th>Regime</th><th>In force from</th></tr></thead><tbody>"#,
        esc(&p.name),
        esc(&p.hash),
        esc(&p.activated_at)
    );
    b = b.replace(
        "<th>In force from</th>",
        "<th>In force from</th><th>Until</th>",
    );
    for r in &p.regimes {
        let day = |d: Option<time::Date>| d.map_or_else(|| "-".to_owned(), |d| d.to_string());
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&r.id),
            day(r.from),
            day(r.until)
        );
    }
    b.push_str("</tbody></table><h2>Transparency log</h2>");
    let checkpoint = s
        .ledger(Lane::Interactive, |store| {
            Ok(store.log_checkpoints()?.pop())
        })
        .await?;
    let verified = s.log_verification().await?;
    match &checkpoint {
        Some(cp) => {
            let _ = write!(
                b,
                r#"<p>Latest signed checkpoint: size <strong>{}</strong>, root <code>{}</code>, signed {}.</p><pre class="mono">{}</pre>"#,
                cp.size,
                cg_proof::hex(&cp.root),
                esc(&cp.created_at.to_string()),
                esc(&cp.note)
            );
        }
        None => b.push_str(r#"<p class="muted">No checkpoint yet.</p>"#),
    }
    match verified {
        Some((at, Ok(r))) => {
            let _ = write!(b, r#"<p id="log-status" class="ok">✓ The log verifies: {} entries ({} consent events, {} manifests), {} checkpoints (checked {} s ago).</p>"#, r.size, r.events, r.manifests, r.checkpoints, at.elapsed().as_secs());
        }
        Some((_, Err(e))) => {
            let _ = write!(b, r#"<p id="log-status" class="bad" role="alert">✗ The log does not verify: {}</p>"#, esc(&e));
        }
        None if s.verifier_key().is_some() => b.push_str(r#"<p id="log-status" class="muted">The log is being verified; reload in a moment.</p>"#),
        None => b.push_str(r#"<p id="log-status" class="muted">This service does not hold the log key: verify with <code>consentgate log verify --vkey KEY</code>.</p>"#),
    }
    b.push_str(r#"<h2>Builds</h2><p class="legend">"#);
    for (d, c) in COLOURS {
        let _ = write!(
            b,
            r#"<span><svg class="swatch" viewBox="0 0 12 12" aria-hidden="true"><rect width="12" height="12" fill="{c}"/></svg>{d}</span>"#
        );
    }
    b.push_str("</p>");
    let builds = api::list_builds(s)?;
    if builds.is_empty() {
        b.push_str(r#"<p class="muted">No datasets published yet.</p>"#);
    }
    for (i, d) in builds.iter().take(10).enumerate() {
        let totals: Vec<String> = d
            .totals
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} {}", v.as_u64().unwrap_or(0)))
            .collect();
        let _ = write!(
            b,
            r#"<section aria-labelledby="b{i}"><h3 id="b{i}"><code>{}</code> as of {}</h3><p>{} · policy <code>{}</code>{} · <a class="report" href="/dashboard/builds/{id}/report">build report</a></p>{}</section>"#,
            esc(&d.dataset_id),
            esc(&d.as_of),
            esc(&totals.join(" · ")),
            esc(d.policy["name"].as_str().unwrap_or("")),
            d.parent
                .as_deref()
                .map(|p| format!(" · rebuilt from <code>{}</code>", esc(p)))
                .unwrap_or_default(),
            cg_report::build_report::region_chart(&format!("chart-{i}"), &d.rows_by_region),
            id = esc(&d.dataset_id),
        );
    }
    Ok(b)
}
