//! `/v1/me/...`: a member's own settings, history, receipts and erasure request. Every
//! handler takes a [`MemberCap`], which names the one member the token acts for; there is no
//! way to name another.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use cg_ledger::{Erasure, NewEvent, Record, StoredEvent};
use cg_model::consent::ConsentSource;
use cg_model::{MemberId, Purpose};
use serde::{Deserialize, Serialize};

use super::{S, dataset_dir, now};
use crate::AppState;
use crate::auth::{MemberAuth, MemberCap, TokenId};
use crate::check::{CheckRequest, CheckResult, decide};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::limits::Kind;
use crate::storage::Lane;

/// The member routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/me/consents", get(me_consents))
        .route("/v1/me/consents/{purpose}", put(me_set_consent))
        .route("/v1/me/history", get(me_history))
        .route("/v1/me/receipts", get(me_receipt))
        .route("/v1/me/erasure", post(me_erasure))
        .route("/v1/me/export", get(me_export))
}

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

/// Whether a request carries the Global Privacy Control signal (`Sec-GPC: 1`).
pub fn gpc_signal(headers: &HeaderMap) -> bool {
    headers
        .get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        == Some("1")
}

/// Records a GPC opt-out signal once per member (in the caller's ledger call).
fn record_gpc_in(
    store: &mut dyn cg_ledger::Store,
    member: i64,
    channel: &str,
) -> Result<(), ApiError> {
    let purpose = Purpose::genai_training();
    let seen = store
        .history(MemberId(member))?
        .iter()
        .any(|e| e.event.purpose == purpose && e.event.source == ConsentSource::Gpc);
    if !seen {
        let mut e = NewEvent::new(MemberId(member), purpose, false, now());
        e.event.source = ConsentSource::Gpc;
        e.actor = Some("member-browser".into());
        e.metadata = Some(serde_json::json!({
            "signal": "Sec-GPC: 1",
            "channel": channel,
            "spec": "https://privacycg.github.io/gpc-spec/",
        }));
        store.append_stamped(&[e])?;
    }
    Ok(())
}

/// Records a GPC opt-out signal once per member, when the request carries `Sec-GPC: 1`.
pub async fn record_gpc(
    state: &AppState,
    cap: MemberCap,
    headers: &HeaderMap,
    channel: &'static str,
) -> Result<bool, ApiError> {
    if !gpc_signal(headers) {
        return Ok(false);
    }
    let member = cap.member();
    state
        .ledger(Lane::Interactive, move |store| {
            record_gpc_in(store, member, channel)
        })
        .await?;
    Ok(true)
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

/// A member's consents and the current decision.
pub async fn my_consents(state: &AppState, cap: MemberCap) -> Result<MyConsents, ApiError> {
    // One read of the policy in force: the purposes listed and the decision shown come from
    // the same policy even if an admin activates another meanwhile.
    let active = state.policy()?;
    let policy = active.clone();
    let member = cap.member();
    let (history, genai) = state
        .ledger(Lane::Interactive, move |store| {
            let history = store.history(MemberId(member))?;
            let genai = decide(
                store,
                &policy,
                &CheckRequest {
                    member_id: member,
                    purpose: Purpose::GENAI_TRAINING.into(),
                    at: None,
                    kind: None,
                    created_at: None,
                },
            )?;
            Ok((history, genai))
        })
        .await?;
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
    Ok(MyConsents {
        member_id: member,
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
    record_gpc(&s, cap, &headers, "api").await?;
    Ok(Json(my_consents(&s, cap).await?))
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

/// Records a member's choice from the API or the privacy page (with the GPC signal, if the
/// request carries one, in the same ledger call).
pub async fn set_consent(
    state: &AppState,
    cap: MemberCap,
    purpose: &str,
    body: &SetConsent,
    channel: &'static str,
    gpc: bool,
) -> Result<EventView, ApiError> {
    let purpose = state
        .policy()?
        .policy
        .config()
        .purpose(purpose)
        .map_err(|e| ApiError::bad("purpose", e.to_string()))?;
    let member = cap.member();
    let mut e = NewEvent::new(MemberId(member), purpose, body.granted, now());
    e.event.source = ConsentSource::Settings;
    e.event.notice_version = body.notice_version.clone();
    e.actor = Some("member".into());
    e.metadata = Some(serde_json::json!({
        "collection_method": channel,
        "setting_name": "Use my data for training content-generating AI models",
    }));
    state
        .ledger(Lane::Interactive, move |store| {
            if gpc {
                record_gpc_in(store, member, channel)?;
            }
            // Stamped: never before the member's latest recorded choice, whatever the clock
            // says.
            let stored = store.append_stamped(&[e])?;
            let first = stored
                .first()
                .ok_or_else(|| ApiError::internal("append returned nothing"))?;
            view(store, first)
        })
        .await
}

async fn me_set_consent(
    MemberAuth(cap): MemberAuth,
    axum::Extension(TokenId(token)): axum::Extension<TokenId>,
    State(s): S,
    ApiPath(purpose): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SetConsent>,
) -> Result<Json<EventView>, ApiError> {
    s.limits().take(&token, Kind::MemberWrite)?;
    let gpc = gpc_signal(&headers);
    Ok(Json(
        set_consent(&s, cap, &purpose, &body, "api", gpc).await?,
    ))
}

/// A member's history.
pub async fn history(state: &AppState, cap: MemberCap) -> Result<Vec<EventView>, ApiError> {
    let member = cap.member();
    state
        .ledger(Lane::Interactive, move |store| {
            let events = store.history(MemberId(member))?;
            events.iter().map(|e| view(store, e)).collect()
        })
        .await
}

async fn me_history(
    MemberAuth(cap): MemberAuth,
    State(s): S,
    headers: HeaderMap,
) -> Result<Json<Vec<EventView>>, ApiError> {
    record_gpc(&s, cap, &headers, "api").await?;
    Ok(Json(history(&s, cap).await?))
}

#[derive(Debug, Deserialize)]
struct ReceiptQuery {
    dataset: Option<String>,
}

/// Issues the member's receipt for a dataset. Errors say what a member can act on, never a
/// server path, a parser message or an operator's command (those go to the log).
pub async fn receipt(
    state: &Arc<AppState>,
    cap: MemberCap,
    dataset: &str,
) -> Result<cg_proof::receipt::Receipt, ApiError> {
    let dir = dataset_dir(state, dataset, "dataset")?;
    if state.keys().is_none() {
        return Err(ApiError::unavailable(
            "receipts are not available from this service",
        ));
    }
    let member = cap.member();
    let id = dataset.to_owned();
    let st = state.clone();
    state
        .ledger(Lane::Interactive, move |store| {
            let (signer, keys) = st
                .keys()
                .ok_or_else(|| ApiError::unavailable("receipts are not available from this service"))?;
            cg_ledger::receipts::issue(&dir, member, store, signer, keys).map_err(|e| {
                use cg_ledger::receipts::ReceiptIssueError as E;
                match e {
                    E::Ledger(l) => ApiError::from(l),
                    E::NotLogged(detail) => {
                        tracing::warn!(dataset = %id, %detail, "receipt refused: manifest not in the log");
                        ApiError::conflict(format!(
                            "the dataset {id} is not in the transparency log yet, so no receipt can be issued for it"
                        ))
                    }
                    E::OtherKey(_) => {
                        tracing::warn!(dataset = %id, "receipt refused: committed with another key");
                        ApiError::conflict(format!(
                            "the dataset {id} was published with another key; this service cannot issue its receipts"
                        ))
                    }
                    E::Dataset(detail) => {
                        tracing::error!(dataset = %id, %detail, "receipt refused: dataset files unreadable");
                        ApiError::conflict(format!(
                            "the dataset {id} cannot give receipts (its files are incomplete)"
                        ))
                    }
                }
            })
        })
        .await
}

async fn me_receipt(
    MemberAuth(cap): MemberAuth,
    State(s): S,
    ApiQuery(q): ApiQuery<ReceiptQuery>,
) -> Result<Json<cg_proof::receipt::Receipt>, ApiError> {
    let id = q
        .dataset
        .ok_or_else(|| ApiError::bad("dataset", "required"))?;
    Ok(Json(receipt(&s, cap, &id).await?))
}

async fn me_erasure(
    MemberAuth(cap): MemberAuth,
    axum::Extension(TokenId(token)): axum::Extension<TokenId>,
    State(s): S,
) -> Result<Response, ApiError> {
    s.limits().take(&token, Kind::MemberWrite)?;
    let at = now();
    let member = cap.member();
    s.ledger(Lane::Interactive, move |store| {
        store.import(
            &mut std::iter::once(Ok(Record::Erasure(Erasure {
                member_id: MemberId(member),
                ts: at,
            }))),
            &cg_model::progress::NoProgress,
        )?;
        Ok(())
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"erasure_requested_at": at.to_string()})),
    )
        .into_response())
}

/// The published dataset directories (those with a manifest), by name.
pub fn dataset_dirs(state: &AppState) -> Result<Vec<std::path::PathBuf>, ApiError> {
    let Some(root) = state.datasets() else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(root)
        .map_err(|e| ApiError::internal(format!("datasets directory: {e}")))?;
    let mut dirs: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The member's data-use record (GDPR Art 15/20): consent history with log indices, a receipt
/// per dataset, the models trained on datasets holding their content. Receipts are issued on
/// the bulk lane (one per dataset).
pub async fn export(
    state: &Arc<AppState>,
    cap: MemberCap,
) -> Result<cg_report::export::MemberExport, ApiError> {
    let dirs = dataset_dirs(state)?;
    let models = match state.models() {
        Some(path) => cg_report::registry::read(path).map_err(|e| {
            tracing::error!(error = %e, "the model registry cannot be read");
            ApiError::unavailable("the data-use record is not available right now")
        })?,
        None => Vec::new(),
    };
    let member = cap.member();
    let st = state.clone();
    state
        .ledger(Lane::Bulk, move |store| {
            let keys = st
                .keys()
                .map(|(signer, keys)| cg_report::export::ReceiptKeys { signer, keys });
            cg_report::export::export(store, member, &dirs, keys, &models, now()).map_err(|e| {
                match e {
                    cg_report::ReportError::Ledger(l) => ApiError::from(l),
                    other => {
                        tracing::error!(error = %other, "member export failed");
                        ApiError::internal("the data-use record could not be made")
                    }
                }
            })
        })
        .await
}

async fn me_export(
    MemberAuth(cap): MemberAuth,
    axum::Extension(TokenId(token)): axum::Extension<TokenId>,
    State(s): S,
) -> Result<Json<cg_report::export::MemberExport>, ApiError> {
    s.limits().take(&token, Kind::Batch)?;
    Ok(Json(export(&s, cap).await?))
}
