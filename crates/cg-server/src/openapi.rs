//! The route table and the OpenAPI document generated from it. The same table drives the
//! authorisation-matrix test (every role × every endpoint), so documentation and behaviour
//! cannot drift apart silently.

use axum::Json;
use serde_json::{Value, json};

/// One API endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path (axum syntax, `{param}`).
    pub path: &'static str,
    /// Roles allowed (empty: public).
    pub roles: &'static [&'static str],
    /// What it does.
    pub summary: &'static str,
    /// A valid example body, if it takes one.
    pub example: Option<&'static str>,
}

const MEMBER: &[&str] = &["member"];
const SERVICE: &[&str] = &["service", "admin"];
const ADMIN: &[&str] = &["admin"];
const READER: &[&str] = &["admin", "auditor"];

/// Every API endpoint.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/v1/me/consents",
        roles: MEMBER,
        summary: "The member's choices per purpose, the current decision and its explanation",
        example: None,
    },
    Endpoint {
        method: "PUT",
        path: "/v1/me/consents/{purpose}",
        roles: MEMBER,
        summary: "Record the member's choice for a purpose",
        example: Some(r#"{"granted": false}"#),
    },
    Endpoint {
        method: "GET",
        path: "/v1/me/history",
        roles: MEMBER,
        summary: "Every recorded choice of the member, with log indices",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/me/receipts",
        roles: MEMBER,
        summary: "The member's receipt for a dataset (?dataset=ID)",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/me/export",
        roles: MEMBER,
        summary: "The member's data-use record (Art 15/20): consent history with log indices, a receipt per dataset, models trained on their content",
        example: None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/me/erasure",
        roles: MEMBER,
        summary: "Request erasure (Art 17)",
        example: None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/check",
        roles: SERVICE,
        summary: "May this member's content be used for this purpose, for training now? (`created_at`: when the content was made)",
        example: Some(r#"{"member_id": 1, "purpose": "genai_training"}"#),
    },
    Endpoint {
        method: "POST",
        path: "/v1/check/batch",
        roles: SERVICE,
        summary: "Up to 10 000 checks",
        example: Some(r#"{"items": [{"member_id": 1, "purpose": "genai_training"}]}"#),
    },
    Endpoint {
        method: "POST",
        path: "/v1/audit/decision",
        roles: READER,
        summary: "What was decided for a member's content as of a past instant (audit only)",
        example: Some(r#"{"member_id": 1, "purpose": "genai_training", "as_of": "2025-06-01"}"#),
    },
    Endpoint {
        method: "POST",
        path: "/v1/admin/members",
        roles: ADMIN,
        summary: "Import or update member facts",
        example: Some(r#"[{"member_id": 99, "country": "FR", "birth_date": "1990-01-01"}]"#),
    },
    Endpoint {
        method: "GET",
        path: "/v1/admin/policies",
        roles: READER,
        summary: "The policy in force and the bundled policies",
        example: None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/admin/policies/validate",
        roles: ADMIN,
        summary: "Validate a policy (bundled name and optional Cedar)",
        example: Some(r#"{"policy": "li-2025-11"}"#),
    },
    Endpoint {
        method: "POST",
        path: "/v1/admin/policies/activate",
        roles: ADMIN,
        summary: "Put a policy in force (refused if it admits something the policy in force excludes, unless accept_widening with a reason, which is logged)",
        example: Some(r#"{"policy": "timeline"}"#),
    },
    Endpoint {
        method: "POST",
        path: "/v1/admin/policies/prove",
        roles: ADMIN,
        summary: "Prove that a policy admits nothing another (default: the one in force) excludes, or get a counterexample",
        example: Some(r#"{"new": {"policy": "li-2025-11"}, "old": {"policy": "li-2024-09"}}"#),
    },
    Endpoint {
        method: "GET",
        path: "/v1/admin/builds",
        roles: READER,
        summary: "Published datasets with counts",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/admin/builds/{id}/manifest",
        roles: READER,
        summary: "A dataset's manifest",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/admin/tokens",
        roles: ADMIN,
        summary: "Issued tokens (never secrets)",
        example: None,
    },
    Endpoint {
        method: "POST",
        path: "/v1/admin/tokens",
        roles: ADMIN,
        summary: "Issue a token",
        example: Some(r#"{"role": "auditor", "ttl": "1d"}"#),
    },
    Endpoint {
        method: "DELETE",
        path: "/v1/admin/tokens/{id}",
        roles: ADMIN,
        summary: "Revoke a token",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/log/checkpoint",
        roles: READER,
        summary: "The latest signed checkpoint",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/log/verify",
        roles: READER,
        summary: "Verify the whole log now",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/log/proof/inclusion",
        roles: READER,
        summary: "Inclusion proof (?index=N) as C2SP tlog-proof",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/log/proof/consistency",
        roles: READER,
        summary: "Consistency proof (?old=&new=)",
        example: None,
    },
    Endpoint {
        method: "GET",
        path: "/v1/log/tile/{path}",
        roles: READER,
        summary: "C2SP tlog-tiles (tile/<L>/<N>, tile/entries/<N>)",
        example: None,
    },
];

/// `GET /openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}

/// The OpenAPI 3.1 document.
pub fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    for e in ENDPOINTS {
        let path = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": e.summary,
            "security": [{"bearer": []}],
            "x-roles": e.roles,
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"}
            }
        });
        if let Some(ex) = e.example {
            let example: Value = serde_json::from_str(ex).unwrap_or(Value::Null);
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"example": example}}});
        }
        path[e.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "consentgate", "version": env!("CARGO_PKG_VERSION"), "description": "Decides, provably, which member data may train generative-AI models."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "cgt_<id>_<secret> tokens from `consentgate token issue`"}},
            "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"error": {"type": "object", "properties": {
                    "status": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}
                }, "required": ["status", "code", "message"]}}
            }}}}}
        }
    })
}
