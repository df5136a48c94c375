//! One JSON error shape for every failure: `{"error": {"status", "code", "message", "field"?}}`.
//! 400 names the bad field; 401/403/404 as usual; 429 and 503 carry `Retry-After`; internal
//! errors say only that they happened (the log has the request id), never a stack trace or a
//! database message. A ledger that cannot be reached is 503 `unavailable`, never 401.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `internal`, ...).
    pub code: &'static str,
    /// What went wrong, for humans.
    pub message: String,
    /// The offending field, for 400s.
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (`Retry-After`), for 429 and 503.
    pub retry_after: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    status: u16,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// 400, naming the field.
    pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            field: Some(field.to_owned()),
            retry_after: None,
        }
    }

    /// 401.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "a valid bearer token is required".into(),
            field: None,
            retry_after: None,
        }
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 503: a capability this deployment does not have (no datasets directory, no log key).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 503 `overloaded`: a queue is full or a call took too long; retry in a second.
    pub fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "overloaded",
            message: message.into(),
            field: None,
            retry_after: Some(1),
        }
    }

    /// 429: this token sent more than its share; retry after `seconds`.
    pub fn rate_limited(seconds: u32) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!("too many requests for this token; retry in {seconds} s"),
            field: None,
            retry_after: Some(seconds),
        }
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: &str) -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the body is larger than {limit}"),
            field: Some("body".into()),
            retry_after: None,
        }
    }

    /// 500. The detail goes to the log only.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        let detail = detail.into();
        tracing::error!(%detail, "internal error");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error (see the service log)".into(),
            field: None,
            retry_after: None,
        }
    }
}

impl From<cg_ledger::LedgerError> for ApiError {
    fn from(e: cg_ledger::LedgerError) -> ApiError {
        match e {
            cg_ledger::LedgerError::Conflict { event_id } => ApiError::conflict(format!(
                "event id {event_id} is already recorded with different content"
            )),
            cg_ledger::LedgerError::Database { backend, message } => {
                // The detail is for the operator's log; the caller learns to retry.
                tracing::error!(backend, detail = %message, "ledger unavailable");
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "unavailable",
                    message: "the ledger is unavailable; try again shortly".into(),
                    field: None,
                    retry_after: Some(2),
                }
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                status: self.status.as_u16(),
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
