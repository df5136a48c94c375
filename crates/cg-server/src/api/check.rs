//! `/v1/check` and `/v1/check/batch`: "may I use this member's content to train a model
//! now?" for services (and admins). Decisions come from [`crate::check`]; what a caller sees
//! depends on its handle: a service gets the decision and a coarse reason, an admin the reason
//! codes, regime and jurisdiction too.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::S;
use crate::AppState;
use crate::auth::{BearerToken, ServiceAuth, TokenId};
use crate::check::{CheckRequest, CheckResult, decide, decide_batch};
use crate::error::ApiError;
use crate::extract::JsonBytes;
use crate::limits::Kind;
use crate::storage::Lane;

/// The service routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/check", post(check_one))
        .route("/v1/check/batch", post(check_batch))
}

/// The token is checked, the body parsed and the member decided in one read of the ledger: on
/// the embedded ledger on this worker's own connection (no thread hop), else one hop to a
/// ledger thread and back. Nothing is read or parsed for a caller that is not a service
/// (401/403 come before any 400, as with the other endpoints).
async fn check_one(
    token: BearerToken,
    State(s): S,
    body: JsonBytes,
) -> Result<Json<CheckResult>, ApiError> {
    let active = s.policy()?;
    s.ledger_read(move |store| {
        let cap = token.service_cap(store)?;
        let req: CheckRequest = body.parse()?;
        let result = decide(store, &active, &req)?;
        Ok(if cap.detail() {
            result
        } else {
            result.for_service()
        })
    })
    .await
    .map(Json)
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

/// Checks per ledger call: a batch is decided in slices on the bulk lane, so it never holds a
/// connection interactive checks need, and the answer keeps the items' order.
const SLICE: usize = 500;

/// `POST /v1/check/batch` answer.
#[derive(Debug, serde::Serialize)]
struct BatchResponse {
    results: Vec<CheckResult>,
}

/// A batch's CPU work (parsing up to 10 000 items, deciding them, writing the answer) runs on
/// the bulk lane's low-priority thread, never on the async workers that answer single checks:
/// a worker busy with a 1 MB body for milliseconds would delay every check queued behind it.
async fn check_batch(
    ServiceAuth(cap): ServiceAuth,
    axum::Extension(TokenId(token)): axum::Extension<TokenId>,
    State(s): S,
    body: JsonBytes,
) -> Result<Response, ApiError> {
    let req: BatchRequest = s.ledger(Lane::Bulk, move |_| body.parse()).await?;
    if req.items.len() > MAX_BATCH {
        return Err(ApiError::bad(
            "items",
            format!("at most {MAX_BATCH} items per batch"),
        ));
    }
    s.limits().take(&token, Kind::Batch)?;
    let active = s.policy()?;
    let mut results = Vec::with_capacity(req.items.len());
    let mut items = req.items;
    let mut offset = 0;
    while !items.is_empty() {
        let rest = items.split_off(SLICE.min(items.len()));
        let slice = std::mem::replace(&mut items, rest);
        let active = active.clone();
        let detail = cap.detail();
        let decided = s
            .ledger(Lane::Bulk, move |store| {
                decide_batch(store, &active, &slice)?
                    .into_iter()
                    .enumerate()
                    .map(|(i, decided)| {
                        decided
                            .map(|r| if detail { r } else { r.for_service() })
                            .map_err(|mut e| {
                                e.field = e.field.map(|f| format!("items[{}].{f}", offset + i));
                                e
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        offset += decided.len();
        results.extend(decided);
    }
    let body = s
        .ledger(Lane::Bulk, move |_| {
            serde_json::to_vec(&BatchResponse { results })
                .map_err(|e| ApiError::internal(format!("cannot write the batch answer: {e}")))
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
