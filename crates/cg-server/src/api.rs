//! The JSON API under `/v1`. Each handler takes the capability handle its role grants (see
//! [`crate::auth`]); the route table in [`crate::openapi`] lists the same endpoints.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use base64::Engine;
use cg_ledger::{Erasure, MemberRecord, NewEvent, Record, StoredEvent};
use cg_model::consent::ConsentSource;
use cg_model::{MemberId, Purpose, Timestamp};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{AdminAuth, MemberAuth, MemberCap, ReaderAuth, ServiceAuth};
use crate::check::{
    AuditDecisionRequest, CheckRequest, CheckResult, decide, decide_as_of, time_field,
};
use crate::error::ApiError;

type S = State<Arc<AppState>>;

/// The API routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/me/consents", get(me_consents))
        .route("/v1/me/consents/{purpose}", put(me_set_consent))
        .route("/v1/me/history", get(me_history))
        .route("/v1/me/receipts", get(me_receipt))
        .route("/v1/me/erasure", post(me_erasure))
        .route("/v1/check", post(check_one))
        .route("/v1/check/batch", post(check_batch))
        .route("/v1/audit/decision", post(audit_decision))
        .route("/v1/admin/members", post(admin_members))
        .route("/v1/admin/policies", get(policies))
        .route("/v1/admin/policies/validate", post(policy_validate))
        .route("/v1/admin/policies/activate", post(policy_activate))
        .route("/v1/admin/builds", get(builds))
        .route("/v1/admin/builds/{id}/manifest", get(build_manifest))
        .route("/v1/admin/tokens", get(tokens_list).post(token_issue))
        .route("/v1/admin/tokens/{id}", delete(token_revoke))
        .route("/v1/log/checkpoint", get(log_checkpoint))
        .route("/v1/log/verify", get(log_verify))
        .route("/v1/log/proof/inclusion", get(log_inclusion))
        .route("/v1/log/proof/consistency", get(log_consistency))
        .route("/v1/log/tile/{*path}", get(log_tile))
}

/// A JSON body, or the error: 413 for a body over the limit, else 400 naming `body`.
pub fn json_body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    match body {
        Ok(Json(t)) => Ok(t),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: "the body is larger than 2 MiB".into(),
            field: Some("body".into()),
        }),
        Err(e) => Err(ApiError::bad("body", e.body_text())),
    }
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

// ---------------------------------------------------------------------------------------------
// Members

/// A member's state for one purpose.
#[derive(Debug, Serialize)]
pub struct PurposeState {
    /// Purpose.
    pub purpose: String,
    /// The member's explicit choice: true, false, or null (never chose).
    pub granted: Option<bool>,
    /// When they chose.
    pub chosen_at: Option<String>,
    /// How.
    pub source: Option<String>,
    /// A GPC opt-out signal after the latest choice.
    pub gpc_signal: bool,
}

/// `GET /v1/me/consents`.
#[derive(Debug, Serialize)]
pub struct MyConsents {
    /// The member.
    pub member_id: i64,
    /// Every catalogue purpose.
    pub purposes: Vec<PurposeState>,
    /// What the gate decides now for a new post of theirs, for generative-AI training.
    pub genai_training: CheckResult,
    /// The explanation of the setting that fits their region and regime.
    pub explanation: String,
}

/// The sentence a member sees next to the setting.
pub fn explanation(r: &CheckResult) -> String {
    let has = |c: &str| r.reasons.iter().any(|x| x == c);
    if has("region_suspended") {
        "Training on members' data from your region is suspended: your data is not used, whatever this setting says. Your choice is kept for when that changes.".into()
    } else if has("minor") || has("below_consent_age") {
        "Because of your age, your data is not used to train content-generating AI models.".into()
    } else if has("jurisdiction_unknown") || has("member_unknown") || has("age_unknown") {
        "We cannot tell which rules apply to you, so your data is not used.".into()
    } else if has("no_consent") || has("consent") {
        "In your region your data is used to train content-generating AI models only if you turn this setting on.".into()
    } else if has("notice_pending") {
        "Your data may be used after the notice period unless you turn this setting off.".into()
    } else {
        "Your data may be used to train content-generating AI models unless you turn this setting off (you can object at any time; it applies to future training).".into()
    }
}

/// Records a GPC opt-out signal once per member, when the request carries `Sec-GPC: 1`.
pub fn record_gpc(
    state: &AppState,
    cap: MemberCap,
    headers: &HeaderMap,
    channel: &str,
) -> Result<bool, ApiError> {
    let gpc = headers
        .get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        == Some("1");
    if !gpc {
        return Ok(false);
    }
    let mut store = state.store()?;
    let purpose = Purpose::genai_training();
    let seen = store
        .history(MemberId(cap.member()))?
        .iter()
        .any(|e| e.event.purpose == purpose && e.event.source == ConsentSource::Gpc);
    if !seen {
        let mut e = NewEvent::new(MemberId(cap.member()), purpose, false, now());
        e.event.source = ConsentSource::Gpc;
        e.actor = Some("member-browser".into());
        e.metadata = Some(serde_json::json!({
            "signal": "Sec-GPC: 1",
            "channel": channel,
            "spec": "https://privacycg.github.io/gpc-spec/",
        }));
        store.append_stamped(&[e])?;
    }
    Ok(true)
}

/// A member's consents and the current decision.
pub fn my_consents(state: &AppState, cap: MemberCap) -> Result<MyConsents, ApiError> {
    let active = state.policy()?;
    let mut store = state.store()?;
    let history = store.history(MemberId(cap.member()))?;
    let t = now();
    let purposes = active
        .policy
        .config()
        .catalogue()
        .into_iter()
        .filter_map(|p| Purpose::new(p).ok())
        .map(|p| {
            let events: Vec<StoredEvent> = history
                .iter()
                .filter(|e| e.event.purpose == p)
                .cloned()
                .collect();
            let (state, _) = cg_ledger::fold_stored(&events, t);
            PurposeState {
                purpose: p.to_string(),
                granted: state.explicit.as_ref().map(|c| c.granted),
                chosen_at: state.explicit.as_ref().map(|c| c.at.to_string()),
                source: state
                    .explicit
                    .as_ref()
                    .map(|c| c.source.as_str().to_owned()),
                gpc_signal: state.gpc_signal.is_some(),
            }
        })
        .collect();
    let genai = decide(
        store.as_mut(),
        &active,
        &CheckRequest {
            member_id: cap.member(),
            purpose: Purpose::GENAI_TRAINING.into(),
            at: None,
            kind: None,
            created_at: None,
        },
    )?;
    Ok(MyConsents {
        member_id: cap.member(),
        purposes,
        explanation: explanation(&genai),
        genai_training: genai,
    })
}

async fn me_consents(
    MemberAuth(cap): MemberAuth,
    State(s): S,
    headers: HeaderMap,
) -> Result<Json<MyConsents>, ApiError> {
    record_gpc(&s, cap, &headers, "api")?;
    Ok(Json(my_consents(&s, cap)?))
}

/// `PUT /v1/me/consents/{purpose}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConsent {
    /// The choice.
    pub granted: bool,
    /// The notice version the member saw.
    #[serde(default)]
    pub notice_version: Option<String>,
}

/// A recorded event, as the API shows it.
#[derive(Debug, Serialize)]
pub struct EventView {
    /// Ledger position.
    pub seq: i64,
    /// Purpose.
    pub purpose: String,
    /// Choice.
    pub granted: bool,
    /// When.
    pub ts: String,
    /// How.
    pub source: String,
    /// Notice version.
    pub notice_version: Option<String>,
    /// Its transparency log index.
    pub log_index: Option<u64>,
}

fn view(store: &mut dyn cg_ledger::Store, e: &StoredEvent) -> Result<EventView, ApiError> {
    Ok(EventView {
        seq: e.seq,
        purpose: e.event.purpose.to_string(),
        granted: e.event.granted,
        ts: e.event.ts.to_string(),
        source: e.event.source.as_str().to_owned(),
        notice_version: e.event.notice_version.clone(),
        log_index: store.log_index_of_event(e.seq)?,
    })
}

/// Records a member's choice from the API or the privacy page.
pub fn set_consent(
    state: &AppState,
    cap: MemberCap,
    purpose: &str,
    body: &SetConsent,
    channel: &str,
) -> Result<EventView, ApiError> {
    let purpose = state
        .policy()?
        .policy
        .config()
        .purpose(purpose)
        .map_err(|e| ApiError::bad("purpose", e.to_string()))?;
    let mut e = NewEvent::new(MemberId(cap.member()), purpose, body.granted, now());
    e.event.source = ConsentSource::Settings;
    e.event.notice_version = body.notice_version.clone();
    e.actor = Some("member".into());
    e.metadata = Some(serde_json::json!({
        "collection_method": channel,
        "setting_name": "Use my data for training content-generating AI models",
    }));
    let mut store = state.store()?;
    // Stamped: never before the member's latest recorded choice, whatever the clock says.
    let stored = store.append_stamped(&[e])?;
    let first = stored
        .first()
        .ok_or_else(|| ApiError::internal("append returned nothing"))?;
    view(store.as_mut(), first)
}

async fn me_set_consent(
    MemberAuth(cap): MemberAuth,
    State(s): S,
    Path(purpose): Path<String>,
    headers: HeaderMap,
    body: Result<Json<SetConsent>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<EventView>, ApiError> {
    let body = json_body(body)?;
    record_gpc(&s, cap, &headers, "api")?;
    Ok(Json(set_consent(&s, cap, &purpose, &body, "api")?))
}

/// A member's history.
pub fn history(state: &AppState, cap: MemberCap) -> Result<Vec<EventView>, ApiError> {
    let mut store = state.store()?;
    let events = store.history(MemberId(cap.member()))?;
    events.iter().map(|e| view(store.as_mut(), e)).collect()
}

async fn me_history(
    MemberAuth(cap): MemberAuth,
    State(s): S,
    headers: HeaderMap,
) -> Result<Json<Vec<EventView>>, ApiError> {
    record_gpc(&s, cap, &headers, "api")?;
    Ok(Json(history(&s, cap)?))
}

/// A dataset id as builds write them (`ds-` and 16 hex digits): nothing else reaches the file
/// system.
pub fn dataset_dir(
    state: &AppState,
    id: &str,
    field: &str,
) -> Result<std::path::PathBuf, ApiError> {
    let ok =
        id.len() == 19 && id.starts_with("ds-") && id[3..].bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(ApiError::bad(
            field,
            "not a dataset id (ds- and 16 hex digits)",
        ));
    }
    let root = state.datasets().ok_or_else(|| {
        ApiError::unavailable("this service has no datasets directory (--datasets)")
    })?;
    let dir = root.join(id);
    if !dir.join("manifest.json").is_file() {
        return Err(ApiError::not_found(format!("no dataset {id}")));
    }
    Ok(dir)
}

#[derive(Debug, Deserialize)]
struct ReceiptQuery {
    dataset: Option<String>,
}

/// Issues the member's receipt for a dataset.
pub fn receipt(
    state: &AppState,
    cap: MemberCap,
    dataset: &str,
) -> Result<cg_proof::receipt::Receipt, ApiError> {
    let dir = dataset_dir(state, dataset, "dataset")?;
    let (signer, keys) = state
        .keys()
        .ok_or_else(|| ApiError::unavailable("this service does not hold the log key (--key)"))?;
    let mut store = state.store()?;
    cg_ledger::receipts::issue(&dir, cap.member(), store.as_mut(), signer, keys).map_err(
        |e| match e {
            cg_ledger::receipts::ReceiptIssueError::Ledger(l) => ApiError::from(l),
            other => ApiError::conflict(other.to_string()),
        },
    )
}

async fn me_receipt(
    MemberAuth(cap): MemberAuth,
    State(s): S,
    Query(q): Query<ReceiptQuery>,
) -> Result<Json<cg_proof::receipt::Receipt>, ApiError> {
    let id = q
        .dataset
        .ok_or_else(|| ApiError::bad("dataset", "required"))?;
    Ok(Json(receipt(&s, cap, &id)?))
}

async fn me_erasure(MemberAuth(cap): MemberAuth, State(s): S) -> Result<Response, ApiError> {
    let at = now();
    let mut store = s.store()?;
    store.import(
        &mut std::iter::once(Ok(Record::Erasure(Erasure {
            member_id: MemberId(cap.member()),
            ts: at,
        }))),
        &cg_model::progress::NoProgress,
    )?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"erasure_requested_at": at.to_string()})),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// Services

async fn check_one(
    ServiceAuth(_): ServiceAuth,
    State(s): S,
    body: Result<Json<CheckRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CheckResult>, ApiError> {
    let req = json_body(body)?;
    let active = s.policy()?;
    let mut store = s.store()?;
    Ok(Json(decide(store.as_mut(), &active, &req)?))
}

async fn audit_decision(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
    body: Result<Json<AuditDecisionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CheckResult>, ApiError> {
    let req = json_body(body)?;
    let active = s.policy()?;
    let mut store = s.store()?;
    Ok(Json(decide_as_of(store.as_mut(), &active, &req)?))
}

/// `POST /v1/check/batch` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 10 000 checks.
    pub items: Vec<CheckRequest>,
}

/// The most checks in one batch.
pub const MAX_BATCH: usize = 10_000;

async fn check_batch(
    ServiceAuth(_): ServiceAuth,
    State(s): S,
    body: Result<Json<BatchRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req = json_body(body)?;
    if req.items.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "items",
            format!("at most {MAX_BATCH} items per batch"),
        ));
    }
    let active = s.policy()?;
    let mut store = s.store()?;
    let mut results = Vec::with_capacity(req.items.len());
    for (i, item) in req.items.iter().enumerate() {
        results.push(decide(store.as_mut(), &active, item).map_err(|mut e| {
            e.field = e.field.map(|f| format!("items[{i}].{f}"));
            e
        })?);
    }
    Ok(Json(serde_json::json!({ "results": results })))
}

// ---------------------------------------------------------------------------------------------
// Administration

/// A member row in `POST /v1/admin/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberIn {
    /// Id.
    pub member_id: i64,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Sign-up.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Closure.
    #[serde(default)]
    pub closed_at: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Handle.
    #[serde(default)]
    pub handle: Option<String>,
}

async fn admin_members(
    AdminAuth(_): AdminAuth,
    State(s): S,
    body: Result<Json<Vec<MemberIn>>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = json_body(body)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let mut records = Vec::with_capacity(rows.len());
    for (i, m) in rows.into_iter().enumerate() {
        let birth_date = m
            .birth_date
            .as_deref()
            .map(|d| {
                time::Date::parse(d, fmt)
                    .map_err(|e| ApiError::bad(&format!("[{i}].birth_date"), e.to_string()))
            })
            .transpose()?;
        records.push(Record::Member(MemberRecord {
            member_id: MemberId(m.member_id),
            country: m.country,
            birth_date,
            created_at: time_field(&format!("[{i}].created_at"), m.created_at.as_deref())?,
            closed_at: time_field(&format!("[{i}].closed_at"), m.closed_at.as_deref())?,
            display_name: m.display_name,
            handle: m.handle,
        }));
    }
    let n = records.len();
    let mut store = s.store()?;
    store.import(
        &mut records.into_iter().map(Ok),
        &cg_model::progress::NoProgress,
    )?;
    Ok(Json(serde_json::json!({ "imported": n })))
}

/// The policy in force.
#[derive(Debug, Serialize)]
pub struct PolicyView {
    /// Name.
    pub name: String,
    /// Content hash.
    pub hash: String,
    /// In force since.
    pub activated_at: String,
    /// Who put it in force (an admin token's id; absent: the server's start-up policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated_by: Option<String>,
    /// Regimes with their dates.
    pub regimes: Vec<cg_policy::RegimeSpec>,
}

/// The bundled policies an admin can activate.
pub const BUNDLED: &[&str] = cg_policy::BUNDLED_NAMES;

/// The policy in force, as the dashboard and the API show it.
pub fn policy_view(s: &AppState) -> Result<PolicyView, ApiError> {
    let p = s.policy()?;
    Ok(PolicyView {
        name: p.policy.name().to_owned(),
        hash: p.policy.hash().to_owned(),
        activated_at: p.activated_at.to_string(),
        activated_by: p.activated_by.clone(),
        regimes: p.policy.regimes().to_vec(),
    })
}

async fn policies(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({ "active": policy_view(&s)?, "bundled": BUNDLED }),
    ))
}

/// A policy to validate or activate: a bundled name, optionally with extra Cedar text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyIn {
    /// A bundled policy name (default `timeline`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Extra Cedar policies, validated against the schema.
    #[serde(default)]
    pub cedar: Option<String>,
}

fn build_policy(p: &PolicyIn) -> Result<cg_policy::Policy, ApiError> {
    let name = p.policy.as_deref().unwrap_or("timeline");
    if !BUNDLED.contains(&name) {
        return Err(ApiError::bad(
            "policy",
            format!("unknown policy `{name}` (one of {})", BUNDLED.join(", ")),
        ));
    }
    let config = cg_policy::PolicyConfig::default();
    let result = match &p.cedar {
        None => cg_policy::Policy::bundled(name, config),
        // Extra Cedar runs on the timeline of regimes; silently dropping a pinned regime would
        // change what runs (a suspended region could become included), so refuse.
        Some(_) if name != "timeline" => {
            return Err(ApiError::bad(
                "cedar",
                format!(
                    "extra Cedar policies run on the `timeline` of regimes and cannot be combined with the pinned regime `{name}`: activate `{name}` alone, or send the Cedar with \"policy\": \"timeline\""
                ),
            ));
        }
        Some(text) => cg_policy::Policy::with_files(
            vec![cg_policy::SourceFile {
                name: "submitted.cedar".into(),
                text: text.clone(),
            }],
            config,
        ),
    };
    result.map_err(|e| {
        ApiError::bad(
            if p.cedar.is_some() { "cedar" } else { "policy" },
            e.to_string(),
        )
    })
}

async fn policy_validate(
    AdminAuth(_): AdminAuth,
    body: Result<Json<PolicyIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = json_body(body)?;
    let policy = build_policy(&p)?;
    Ok(Json(
        serde_json::json!({ "valid": true, "name": policy.name(), "hash": policy.hash() }),
    ))
}

async fn policy_activate(
    AdminAuth(cap): AdminAuth,
    State(s): S,
    body: Result<Json<PolicyIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<PolicyView>, ApiError> {
    let p = json_body(body)?;
    let policy = build_policy(&p)?;
    s.activate(policy, Some(cap.token_id().to_owned()))?;
    Ok(Json(policy_view(&s)?))
}

/// One published dataset, as lists show it.
#[derive(Debug, Serialize)]
pub struct BuildView {
    /// Id.
    pub dataset_id: String,
    /// Cut-off.
    pub as_of: String,
    /// Purpose.
    pub purpose: String,
    /// Policy name and hash.
    pub policy: serde_json::Value,
    /// Rows by decision.
    pub totals: serde_json::Value,
    /// Rows by decision × reason × region.
    pub counts: serde_json::Value,
    /// When it was built.
    pub created_at: String,
    /// The parent of a rebuild.
    pub parent: Option<String>,
}

/// Every dataset under the datasets directory, newest first.
pub fn list_builds(s: &AppState) -> Result<Vec<BuildView>, ApiError> {
    let Some(root) = s.datasets() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let entries = std::fs::read_dir(root)
        .map_err(|e| ApiError::internal(format!("datasets directory: {e}")))?;
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("manifest.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        out.push(BuildView {
            dataset_id: m["dataset_id"].as_str().unwrap_or_default().to_owned(),
            as_of: m["as_of"].as_str().unwrap_or_default().to_owned(),
            purpose: m["purpose"].as_str().unwrap_or_default().to_owned(),
            policy: m["policy"].clone(),
            totals: m["totals"].clone(),
            counts: m["counts"].clone(),
            created_at: m["created_at"].as_str().unwrap_or_default().to_owned(),
            parent: m["lineage"]["parent"].as_str().map(str::to_owned),
        });
    }
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(a.dataset_id.cmp(&b.dataset_id))
    });
    Ok(out)
}

async fn builds(ReaderAuth(_): ReaderAuth, State(s): S) -> Result<Json<Vec<BuildView>>, ApiError> {
    Ok(Json(list_builds(&s)?))
}

async fn build_manifest(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dir = dataset_dir(&s, &id, "id")?;
    let bytes =
        std::fs::read(dir.join("manifest.json")).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn tokens_list(
    AdminAuth(_): AdminAuth,
    State(s): S,
) -> Result<Json<Vec<cg_ledger::tokens::TokenRecord>>, ApiError> {
    let mut store = s.store()?;
    Ok(Json(store.tokens()?))
}

/// `POST /v1/admin/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// member, service, admin, auditor.
    pub role: String,
    /// For member tokens.
    #[serde(default)]
    pub member_id: Option<i64>,
    /// Time to live (`90d`, `12h`, `30m`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// A label.
    #[serde(default)]
    pub label: Option<String>,
}

async fn token_issue(
    AdminAuth(_): AdminAuth,
    State(s): S,
    body: Result<Json<TokenIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let t = json_body(body)?;
    if !cg_ledger::tokens::ROLES.contains(&t.role.as_str()) {
        return Err(ApiError::bad(
            "role",
            "one of member, service, admin, auditor",
        ));
    }
    if (t.role == "member") != t.member_id.is_some() {
        return Err(ApiError::bad(
            "member_id",
            "required for member tokens, and only for them",
        ));
    }
    let ttl = t
        .ttl
        .as_deref()
        .map(|x| {
            cg_ledger::tokens::parse_ttl(x)
                .ok_or_else(|| ApiError::bad("ttl", "a duration like 90d, 12h, 30m"))
        })
        .transpose()?;
    let mut store = s.store()?;
    let (token, record) =
        cg_ledger::tokens::issue(store.as_mut(), &t.role, t.member_id, ttl, t.label)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "record": record })),
    )
        .into_response())
}

async fn token_revoke(
    AdminAuth(_): AdminAuth,
    State(s): S,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut store = s.store()?;
    if store.token_revoke(&id, now())? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such active token"))
    }
}

// ---------------------------------------------------------------------------------------------
// Auditors: the log

async fn log_checkpoint(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
) -> Result<Json<cg_ledger::StoredCheckpoint>, ApiError> {
    let mut store = s.store()?;
    store
        .log_checkpoints()?
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no checkpoint yet"))
}

async fn log_verify(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
) -> Result<Json<serde_json::Value>, ApiError> {
    let vkey = s
        .verifier_key()
        .ok_or_else(|| ApiError::unavailable("this service does not hold the log key"))?;
    let mut store = s.store()?;
    match cg_ledger::log::verify(store.as_mut(), &vkey) {
        Ok(report) => Ok(Json(
            serde_json::json!({ "verified": true, "report": report }),
        )),
        Err(cg_ledger::LedgerError::LogInvalid { problems }) => Ok(Json(
            serde_json::json!({ "verified": false, "problems": problems }),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct InclusionQuery {
    index: Option<u64>,
}

async fn log_inclusion(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let index = q.index.ok_or_else(|| ApiError::bad("index", "required"))?;
    let mut store = s.store()?;
    let proof = cg_ledger::log::prove(store.as_mut(), index)
        .map_err(|e| ApiError::bad("index", e.to_string()))?;
    Ok(Json(
        serde_json::json!({ "index": index, "proof": proof.to_text() }),
    ))
}

#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    old: Option<u64>,
    new: Option<u64>,
}

async fn log_consistency(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let old = q.old.ok_or_else(|| ApiError::bad("old", "required"))?;
    let new = q.new.ok_or_else(|| ApiError::bad("new", "required"))?;
    let mut store = s.store()?;
    let hashes = store.log_leaf_hashes()?;
    let prefix = hashes
        .get(..new as usize)
        .ok_or_else(|| ApiError::bad("new", format!("the log has {} entries", hashes.len())))?;
    let proof = cg_proof::consistency_proof(old, prefix)
        .map_err(|e| ApiError::bad("old", e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Json(serde_json::json!({
        "old": old,
        "new": new,
        "proof": proof.iter().map(|h| b64.encode(h)).collect::<Vec<_>>(),
    })))
}

async fn log_tile(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    let wanted = format!("tile/{path}");
    let mut store = s.store()?;
    let latest = store
        .log_checkpoints()?
        .pop()
        .ok_or_else(|| ApiError::not_found("no checkpoint yet"))?;
    let size = latest.size as usize;
    let bytes = if wanted.starts_with("tile/entries/") {
        let mut entries = Vec::new();
        store.log_scan(0, &mut |e| {
            if (e.index as usize) < size {
                entries.push(e.data);
            }
            Ok(())
        })?;
        cg_proof::tiles::entry_bundles(&entries)
            .into_iter()
            .find(|(p, _)| *p == wanted)
    } else {
        let hashes = store.log_leaf_hashes()?;
        cg_proof::tiles::hash_tiles(hashes.get(..size).unwrap_or(&[]))
            .into_iter()
            .find(|(p, _)| *p == wanted)
    };
    let (_, bytes) = bytes.ok_or_else(|| ApiError::not_found(format!("no tile {wanted}")))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}
