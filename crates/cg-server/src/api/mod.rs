//! The JSON API under `/v1`, one module per resource, each with its own `routes()`:
//! [`me`] (a member's own settings), [`check`] (services' "may I use this?"), [`admin`]
//! (member facts, policies, builds, tokens) and [`audit`] (past decisions and the log). Each
//! handler takes the capability handle its role grants (see [`crate::auth`]) and reaches the
//! ledger through the pool ([`crate::storage`]); bodies, paths and queries are read with the
//! extractors of [`crate::extract`], so every rejection has the documented error shape. The
//! route table in [`crate::openapi`] lists the same endpoints, and a test compares it with
//! this router.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use cg_model::Timestamp;

use crate::AppState;
use crate::error::ApiError;

pub mod admin;
pub mod audit;
pub mod check;
pub mod me;

pub use admin::{BUNDLED, BuildView, PolicyView, list_builds, policy_view};
pub use check::MAX_BATCH;
pub use me::{
    EventView, MyConsents, PurposeState, SetConsent, explanation, history, my_consents, receipt,
    record_gpc, set_consent,
};

type S = State<Arc<AppState>>;

/// The API routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .merge(me::routes())
        .merge(check::routes())
        .merge(admin::routes())
        .merge(audit::routes())
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

/// A dataset id as builds write them (`ds-` and 16 hex digits): nothing else reaches the file
/// system. Messages name no server path.
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
    let root = state
        .datasets()
        .ok_or_else(|| ApiError::unavailable("datasets are not available from this service"))?;
    let dir = root.join(id);
    if !dir.join("manifest.json").is_file() {
        return Err(ApiError::not_found(format!("no dataset {id}")));
    }
    Ok(dir)
}
