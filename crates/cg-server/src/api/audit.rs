//! The auditors' endpoints: `/v1/audit/decision` ("what was decided as of T?") and the
//! transparency log under `/v1/log/...` (checkpoint, full verification, proofs, tiles). Every
//! handler takes a [`ReaderCap`](crate::auth::ReaderCap) (auditors and admins). Verification
//! and tiles read the whole log: they run on the ledger's bulk lane, never in front of a check.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;

use super::S;
use crate::AppState;
use crate::auth::ReaderAuth;
use crate::check::{AuditDecisionRequest, CheckResult, decide_as_of};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::storage::Lane;

/// The audit routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/audit/decision", post(audit_decision))
        .route("/v1/log/checkpoint", get(log_checkpoint))
        .route("/v1/log/verify", get(log_verify))
        .route("/v1/log/proof/inclusion", get(log_inclusion))
        .route("/v1/log/proof/consistency", get(log_consistency))
        .route("/v1/log/tile/{*path}", get(log_tile))
}

async fn audit_decision(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
    ApiJson(req): ApiJson<AuditDecisionRequest>,
) -> Result<Json<CheckResult>, ApiError> {
    let active = s.policy()?;
    Ok(Json(
        s.ledger(Lane::Interactive, move |store| {
            decide_as_of(store, &active, &req)
        })
        .await?,
    ))
}

async fn log_checkpoint(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
) -> Result<Json<cg_ledger::StoredCheckpoint>, ApiError> {
    s.ledger(Lane::Interactive, |store| {
        Ok(store.log_checkpoints()?.pop())
    })
    .await?
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
    let outcome = s
        .ledger(Lane::Bulk, move |store| {
            Ok(cg_ledger::log::verify(store, &vkey))
        })
        .await?;
    match outcome {
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
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let index = q.index.ok_or_else(|| ApiError::bad("index", "required"))?;
    let proof = s
        .ledger(
            Lane::Interactive,
            move |store| match cg_ledger::log::prove(store, index) {
                Ok(p) => Ok(p),
                Err(e @ cg_ledger::LedgerError::Database { .. }) => Err(e.into()),
                Err(e) => Err(ApiError::bad("index", e.to_string())),
            },
        )
        .await?;
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
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let old = q.old.ok_or_else(|| ApiError::bad("old", "required"))?;
    let new = q.new.ok_or_else(|| ApiError::bad("new", "required"))?;
    let hashes = s
        .ledger(Lane::Bulk, |store| Ok(store.log_leaf_hashes()?))
        .await?;
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
    ApiPath(path): ApiPath<String>,
) -> Result<Response, ApiError> {
    let wanted = format!("tile/{path}");
    let bytes = s
        .ledger(Lane::Bulk, move |store| {
            let latest = store
                .log_checkpoints()?
                .pop()
                .ok_or_else(|| ApiError::not_found("no checkpoint yet"))?;
            let size = latest.size as usize;
            Ok(if wanted.starts_with("tile/entries/") {
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
            }
            .ok_or_else(|| ApiError::not_found(format!("no tile {wanted}"))))
        })
        .await??;
    let (_, bytes) = bytes;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}
