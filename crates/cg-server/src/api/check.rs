//! `/v1/check` and `/v1/check/batch`: "may I use this member's content to train a model
//! now?" for services (and admins). Decisions come from [`crate::check`]; what a caller sees
//! depends on its handle: a service gets the decision and a coarse reason, an admin the reason
//! codes, regime and jurisdiction too.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::Deserialize;

use super::S;
use crate::AppState;
use crate::auth::{ServiceAuth, TokenId};
use crate::check::{CheckRequest, CheckResult, decide};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::limits::Kind;
use crate::storage::Lane;

/// The service routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/check", post(check_one))
        .route("/v1/check/batch", post(check_batch))
}

async fn check_one(
    ServiceAuth(cap): ServiceAuth,
    State(s): S,
    ApiJson(req): ApiJson<CheckRequest>,
) -> Result<Json<CheckResult>, ApiError> {
    let active = s.policy()?;
    let result = s
        .ledger(Lane::Interactive, move |store| decide(store, &active, &req))
        .await?;
    Ok(Json(if cap.detail() {
        result
    } else {
        result.for_service()
    }))
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

async fn check_batch(
    ServiceAuth(cap): ServiceAuth,
    axum::Extension(TokenId(token)): axum::Extension<TokenId>,
    State(s): S,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
        let decided = s
            .ledger(Lane::Bulk, move |store| {
                slice
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        decide(store, &active, item).map_err(|mut e| {
                            e.field = e.field.map(|f| format!("items[{}].{f}", offset + i));
                            e
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        offset += decided.len();
        results.extend(
            decided
                .into_iter()
                .map(|r| if cap.detail() { r } else { r.for_service() }),
        );
    }
    Ok(Json(serde_json::json!({ "results": results })))
}
