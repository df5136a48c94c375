//! Authentication and authorisation, in one place.
//!
//! A caller presents a token (`Authorization: Bearer cgt_…` for the API, the scheme in any
//! case; for the pages, the `cg_session` cookie set by `/login`, which holds a server-side
//! session id, never the token). The token's role decides which **capability handle** the
//! caller can obtain, and handlers take handles, not tokens:
//!
//! | handle | roles | can |
//! |---|---|---|
//! | [`MemberCap`] | member | read and change the settings of the one member the token is bound to |
//! | [`ServiceCap`] | service, admin | ask "may I use this?" (`/v1/check`) |
//! | [`AdminCap`] | admin | manage policies, builds, member facts and tokens |
//! | [`ReaderCap`] | admin, auditor | read the log, proofs, datasets and the policy in force |
//!
//! A missing or invalid token is 401; a valid token of the wrong role is 403; a ledger that
//! cannot be asked is 503 (never 401: a storage fault must not look like a bad token, or
//! clients would discard good tokens). A member handle
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

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

/// The bearer token of a request (`Authorization: Bearer …`, the scheme case-insensitive).
fn bearer(parts: &Parts) -> Option<String> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn token_error(e: cg_ledger::tokens::TokenError) -> ApiError {
    match e {
        cg_ledger::tokens::TokenError::Invalid => ApiError::unauthorized(),
        cg_ledger::tokens::TokenError::Unavailable(detail) => {
            ApiError::from(cg_ledger::LedgerError::Database {
                backend: "tokens",
                message: detail,
            })
        }
    }
}

/// Authenticates a request: the token's record, or 401 (503 when the ledger cannot be asked).
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    source: Source,
) -> Result<TokenRecord, ApiError> {
    let record = match source {
        Source::Bearer => {
            let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
            state
                .ledger_read(move |store| {
                    cg_ledger::tokens::authenticate(store, &token).map_err(token_error)
                })
                .await?
        }
        Source::Cookie => {
            let session =
                cookie(&parts.headers, SESSION_COOKIE).ok_or_else(ApiError::unauthorized)?;
            let token_id = state
                .sessions()
                .token_of(&session)
                .ok_or_else(ApiError::unauthorized)?;
            // The token must still be valid: revoking it (or its expiry) ends its sessions.
            let record = state
                .ledger_read(move |store| {
                    cg_ledger::tokens::valid_record(store, &token_id).map_err(token_error)
                })
                .await;
            if matches!(&record, Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED) {
                state.sessions().end(&session);
            }
            record?
        }
    };
    if let Some(slot) = parts.extensions.get::<RoleSlot>()
        && let Ok(mut s) = slot.0.lock()
    {
        *s = Some(role_name(&record.role));
    }
    Ok(record)
}

/// The page session cookie's name.
pub const SESSION_COOKIE: &str = "cg_session";

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

/// The "may I use this?" handle. Services learn the decision and a coarse reason; the
/// detail (reason codes, jurisdiction, regime) is for administrators.
#[derive(Clone, Copy, Debug)]
pub struct ServiceCap {
    detail: bool,
}

impl ServiceCap {
    /// Whether the caller may see a decision's detail (an admin token).
    pub fn detail(&self) -> bool {
        self.detail
    }
}

/// The administration handle.
#[derive(Clone, Debug)]
pub struct AdminCap {
    token_id: String,
}

/// The id of the token behind a request (for per-token rate limits).
#[derive(Clone, Debug)]
pub struct TokenId(pub String);

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
        "service" => Ok(ServiceCap { detail: false }),
        "admin" => Ok(ServiceCap { detail: true }),
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
                let record = authenticate(parts, state, $source).await?;
                let cap = $make(&record)?;
                parts.extensions.insert(TokenId(record.id));
                Ok($name(cap))
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

/// A bearer token not checked yet, for handlers that call the ledger anyway: they check it in
/// the same ledger call ([`BearerToken::service_cap`]), one hop to a ledger thread instead of
/// two (`/v1/check`, where the hops are most of the cost). A request without a bearer token is
/// 401 here already; the rest of the rules are the extractors'.
#[derive(Debug)]
pub struct BearerToken {
    token: String,
    role: Option<RoleSlot>,
}

impl BearerToken {
    /// The [`ServiceAuth`] rules, on a ledger thread: 401 for an unknown, revoked or expired
    /// token, 403 for a role other than service or admin, 503 when the ledger cannot be asked.
    pub fn service_cap(&self, store: &mut dyn cg_ledger::Store) -> Result<ServiceCap, ApiError> {
        let record = cg_ledger::tokens::authenticate(store, &self.token).map_err(token_error)?;
        if let Some(slot) = &self.role
            && let Ok(mut s) = slot.0.lock()
        {
            *s = Some(role_name(&record.role));
        }
        service_cap(&record)
    }
}

impl FromRequestParts<Arc<AppState>> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<AppState>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        Ok(BearerToken {
            token,
            role: parts.extensions.get::<RoleSlot>().cloned(),
        })
    }
}

/// The CSRF token of a session: derived from the session id, so a page can embed it and a
/// cross-site form cannot know it.
pub fn csrf_of(session: &str) -> String {
    use sha2::{Digest, Sha256};
    cg_proof::hex(&Sha256::digest(format!("consentgate/csrf/v1\0{session}").as_bytes())[..16])
}

/// The session id of a page request, if any (for the CSRF check).
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE)
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
        let record = authenticate(parts, state, Source::Cookie).await?;
        let csrf = session_token(&parts.headers)
            .map(|t| csrf_of(&t))
            .unwrap_or_default();
        Ok(AnyPage(PageCaller { record, csrf }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(authorization: &str) -> Parts {
        axum::http::Request::builder()
            .header("authorization", authorization)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_nothing_else_passes() {
        for ok in [
            "Bearer cgt_x",
            "bearer cgt_x",
            "BEARER  cgt_x ",
            "bEaReR cgt_x",
        ] {
            assert_eq!(bearer(&parts(ok)).as_deref(), Some("cgt_x"), "{ok:?}");
        }
        for bad in ["Basic cgt_x", "Bearer", "Bearer ", "cgt_x", "Bearercgt_x"] {
            assert_eq!(bearer(&parts(bad)), None, "{bad:?}");
        }
    }
}
