//! Authentication and authorisation, in one place.
//!
//! A caller presents a token (`Authorization: Bearer cgt_…` for the API; the `cg_session`
//! cookie, set by `/login`, for the pages). The token's role decides which **capability
//! handle** the caller can obtain, and handlers take handles, not tokens:
//!
//! | handle | roles | can |
//! |---|---|---|
//! | [`MemberCap`] | member | read and change the settings of the one member the token is bound to |
//! | [`ServiceCap`] | service, admin | ask "may I use this?" (`/v1/check`) |
//! | [`AdminCap`] | admin | manage policies, builds, member facts and tokens |
//! | [`ReaderCap`] | admin, auditor | read the log, proofs, datasets and the policy in force |
//!
//! A missing or invalid token is 401; a valid token of the wrong role is 403. A member handle
//! carries its member id and offers no way to name another member, so "member A changes B" is not
//! a check that can be forgotten: there is no endpoint that takes a member id from a member.

use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cg_ledger::tokens::TokenRecord;

use crate::AppState;
use crate::error::ApiError;

/// Where a token may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The `Authorization: Bearer` header (the API).
    Bearer,
    /// The `cg_session` cookie (the pages; SameSite=Strict, HttpOnly).
    Cookie,
}

/// The role a request authenticated as, for the request log (a slot the middleware reads).
#[derive(Clone, Debug, Default)]
pub struct RoleSlot(pub Arc<Mutex<Option<&'static str>>>);

fn role_name(role: &str) -> &'static str {
    match role {
        "member" => "member",
        "service" => "service",
        "admin" => "admin",
        "auditor" => "auditor",
        _ => "?",
    }
}

fn presented(parts: &Parts, source: Source) -> Option<String> {
    match source {
        Source::Bearer => parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned()),
        Source::Cookie => parts
            .headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("cg_session=").map(str::to_owned)),
    }
}

/// Authenticates a request: the token's record, or 401.
fn authenticate(parts: &Parts, state: &AppState, source: Source) -> Result<TokenRecord, ApiError> {
    let token = presented(parts, source).ok_or_else(ApiError::unauthorized)?;
    let record = {
        let mut store = state.store()?;
        cg_ledger::tokens::authenticate(store.as_mut(), &token)
            .map_err(|_| ApiError::unauthorized())?
    };
    if let Some(slot) = parts.extensions.get::<RoleSlot>()
        && let Ok(mut s) = slot.0.lock()
    {
        *s = Some(role_name(&record.role));
    }
    Ok(record)
}

/// The caller behind a page request (any role), with the token's CSRF secret.
#[derive(Clone, Debug)]
pub struct PageCaller {
    /// The token's record.
    pub record: TokenRecord,
    /// The form token pages must echo on POST (derived from the session token).
    pub csrf: String,
}

/// A member's handle: this member's settings, nothing else.
#[derive(Clone, Copy, Debug)]
pub struct MemberCap {
    member: i64,
}

impl MemberCap {
    /// The member this handle acts for.
    pub fn member(&self) -> i64 {
        self.member
    }
}

/// The "may I use this?" handle.
#[derive(Clone, Copy, Debug)]
pub struct ServiceCap {
    _private: (),
}

/// The administration handle.
#[derive(Clone, Debug)]
pub struct AdminCap {
    token_id: String,
}

impl AdminCap {
    /// The id of the admin's token (who did it, in records such as policy activations).
    pub fn token_id(&self) -> &str {
        &self.token_id
    }
}

/// The read-only handle of auditors (and admins).
#[derive(Clone, Copy, Debug)]
pub struct ReaderCap {
    _private: (),
}

fn member_cap(r: &TokenRecord) -> Result<MemberCap, ApiError> {
    match (r.role.as_str(), r.member_id) {
        ("member", Some(member)) => Ok(MemberCap { member }),
        _ => Err(ApiError::forbidden("this endpoint is for members")),
    }
}

fn service_cap(r: &TokenRecord) -> Result<ServiceCap, ApiError> {
    match r.role.as_str() {
        "service" | "admin" => Ok(ServiceCap { _private: () }),
        _ => Err(ApiError::forbidden("this endpoint is for services")),
    }
}

fn admin_cap(r: &TokenRecord) -> Result<AdminCap, ApiError> {
    match r.role.as_str() {
        "admin" => Ok(AdminCap {
            token_id: r.id.clone(),
        }),
        _ => Err(ApiError::forbidden("this endpoint is for administrators")),
    }
}

fn reader_cap(r: &TokenRecord) -> Result<ReaderCap, ApiError> {
    match r.role.as_str() {
        "admin" | "auditor" => Ok(ReaderCap { _private: () }),
        _ => Err(ApiError::forbidden(
            "this endpoint is for auditors and administrators",
        )),
    }
}

macro_rules! extractor {
    ($(#[$doc:meta])* $name:ident, $cap:ty, $make:ident, $source:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(pub $cap);

        impl FromRequestParts<Arc<AppState>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
                let record = authenticate(parts, state, $source)?;
                $make(&record).map($name)
            }
        }
    };
}

extractor!(
    /// A member, by bearer token.
    MemberAuth, MemberCap, member_cap, Source::Bearer
);
extractor!(
    /// A service (or admin), by bearer token.
    ServiceAuth, ServiceCap, service_cap, Source::Bearer
);
extractor!(
    /// An admin, by bearer token.
    AdminAuth, AdminCap, admin_cap, Source::Bearer
);
extractor!(
    /// An auditor or admin, by bearer token.
    ReaderAuth, ReaderCap, reader_cap, Source::Bearer
);
extractor!(
    /// A member, by session cookie (the privacy page).
    MemberPage, MemberCap, member_cap, Source::Cookie
);
extractor!(
    /// An auditor or admin, by session cookie (the dashboard).
    ReaderPage, ReaderCap, reader_cap, Source::Cookie
);

/// The CSRF token of a session: derived from the session token, so a page can embed it and a
/// cross-site form cannot know it.
pub fn csrf_of(session: &str) -> String {
    use sha2::{Digest, Sha256};
    cg_proof::hex(&Sha256::digest(format!("consentgate/csrf/v1\0{session}").as_bytes())[..16])
}

/// The session token of a page request, if any (for the CSRF check).
pub fn session_token(parts_headers: &axum::http::HeaderMap) -> Option<String> {
    parts_headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("cg_session=").map(str::to_owned))
}

/// Any authenticated page caller (for `/` to route to the right page).
#[derive(Debug)]
pub struct AnyPage(pub PageCaller);

impl FromRequestParts<Arc<AppState>> for AnyPage {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let record = authenticate(parts, state, Source::Cookie)?;
        let csrf = presented(parts, Source::Cookie)
            .map(|t| csrf_of(&t))
            .unwrap_or_default();
        Ok(AnyPage(PageCaller { record, csrf }))
    }
}
