//! Extractors whose every rejection is the documented error shape
//! (`{"error": {"status", "code", "message", "field"?}}`), never axum's plain-text bodies:
//! [`ApiJson`] for bodies, [`ApiPath`] and [`ApiQuery`] for the URL, [`ApiForm`] for page
//! forms; and the fallbacks for unknown routes and methods.

use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; a bad one is 400 naming `body` (or 413 over the limit, 415 without the JSON
/// content type).
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

fn body_error(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("2 MiB"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError {
            status,
            code: "unsupported_media_type",
            message: text,
            field: Some("body".into()),
            retry_after: None,
        },
        _ => ApiError::bad("body", text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        body_error(e.status(), e.body_text())
    }
}

impl From<FormRejection> for ApiError {
    fn from(e: FormRejection) -> ApiError {
        body_error(e.status(), e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::bad("path", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad("query", e.body_text())
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(t) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(t))
    }
}

/// A JSON body read but not parsed yet, for bodies parsed off the async workers
/// (`/v1/check/batch`) or after the token is checked on a ledger thread (`/v1/check`):
/// [`JsonBytes::parse`] gives the same errors as [`ApiJson`] (415 without the JSON content type,
/// 400 naming `body`); only a body over the limit (413) is refused while reading.
#[derive(Debug, Clone)]
pub struct JsonBytes {
    bytes: axum::body::Bytes,
    json_type: bool,
}

impl JsonBytes {
    /// Parses the body.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.json_type {
            return Err(body_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let axum::Json(t) = axum::Json::<T>::from_bytes(&self.bytes)?;
        Ok(t)
    }
}

/// Whether a request says its body is JSON (`application/json`, or `application/*+json`), as
/// axum's `Json` requires.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = json_content_type(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        Ok(JsonBytes { bytes, json_type })
    }
}

/// A URL-encoded form body (the pages).
#[derive(Debug, Clone)]
pub struct ApiForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Form(t) = axum::Form::<T>::from_request(req, state).await?;
        Ok(ApiForm(t))
    }
}

/// Path parameters.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(t) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(t))
    }
}

/// Query parameters.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(t) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(t))
    }
}

/// No such route: 404 in the error shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see /openapi.json)")
}

/// A route that exists with other methods: 405 in the error shape.
pub async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "this endpoint does not take that method (see /openapi.json)".into(),
        field: None,
        retry_after: None,
    }
}
