//! `/v1/admin/...`: member facts, policies, builds and tokens. Writes need an [`AdminCap`];
//! builds, manifests and the policy in force are read by auditors too ([`ReaderAuth`]).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use cg_ledger::{MemberRecord, Record};
use cg_model::MemberId;
use serde::{Deserialize, Serialize};

use super::{S, dataset_dir, now};
use crate::AppState;
use crate::auth::{AdminAuth, ReaderAuth, TokenId};
use crate::check::time_field;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::limits::Kind;
use crate::storage::Lane;

/// The administration routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/admin/members", post(admin_members))
        .route("/v1/admin/policies", get(policies))
        .route("/v1/admin/policies/validate", post(policy_validate))
        .route("/v1/admin/policies/activate", post(policy_activate))
        .route("/v1/admin/policies/prove", post(policy_prove))
        .route("/v1/admin/builds", get(builds))
        .route("/v1/admin/builds/{id}/manifest", get(build_manifest))
        .route("/v1/admin/tokens", get(tokens_list).post(token_issue))
        .route("/v1/admin/tokens/{id}", delete(token_revoke))
}

/// A member row in `POST /v1/admin/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberIn {
    /// Id.
    pub member_id: i64,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Sign-up.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Closure.
    #[serde(default)]
    pub closed_at: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Handle.
    #[serde(default)]
    pub handle: Option<String>,
}

async fn admin_members(
    AdminAuth(_): AdminAuth,
    axum::Extension(TokenId(token)): axum::Extension<TokenId>,
    State(s): S,
    ApiJson(rows): ApiJson<Vec<MemberIn>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.limits().take(&token, Kind::AdminWrite)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let mut records = Vec::with_capacity(rows.len());
    for (i, m) in rows.into_iter().enumerate() {
        let birth_date = m
            .birth_date
            .as_deref()
            .map(|d| {
                time::Date::parse(d, fmt)
                    .map_err(|e| ApiError::bad(&format!("[{i}].birth_date"), e.to_string()))
            })
            .transpose()?;
        records.push(Record::Member(MemberRecord {
            member_id: MemberId(m.member_id),
            country: m.country,
            birth_date,
            created_at: time_field(&format!("[{i}].created_at"), m.created_at.as_deref())?,
            closed_at: time_field(&format!("[{i}].closed_at"), m.closed_at.as_deref())?,
            display_name: m.display_name,
            handle: m.handle,
        }));
    }
    let n = records.len();
    s.ledger(Lane::Bulk, move |store| {
        store.import(
            &mut records.into_iter().map(Ok),
            &cg_model::progress::NoProgress,
        )?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "imported": n })))
}

/// The policy in force.
#[derive(Debug, Serialize)]
pub struct PolicyView {
    /// Name.
    pub name: String,
    /// Content hash.
    pub hash: String,
    /// In force since.
    pub activated_at: String,
    /// Who put it in force (an admin token's id; absent: the server's start-up policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated_by: Option<String>,
    /// Regimes with their dates.
    pub regimes: Vec<cg_policy::RegimeSpec>,
}

/// The bundled policies an admin can activate.
pub const BUNDLED: &[&str] = cg_policy::BUNDLED_NAMES;

/// The policy in force, as the dashboard and the API show it.
pub fn policy_view(s: &AppState) -> Result<PolicyView, ApiError> {
    let p = s.policy()?;
    Ok(PolicyView {
        name: p.policy.name().to_owned(),
        hash: p.policy.hash().to_owned(),
        activated_at: p.activated_at.to_string(),
        activated_by: p.activated_by.clone(),
        regimes: p.policy.regimes().to_vec(),
    })
}

async fn policies(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        serde_json::json!({ "active": policy_view(&s)?, "bundled": BUNDLED }),
    ))
}

/// A policy to validate or activate: a bundled name, optionally with extra Cedar text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyIn {
    /// A bundled policy name (default `timeline`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Extra Cedar policies, validated against the schema.
    #[serde(default)]
    pub cedar: Option<String>,
}

fn build_policy(p: &PolicyIn) -> Result<cg_policy::Policy, ApiError> {
    let name = p.policy.as_deref().unwrap_or("timeline");
    if !BUNDLED.contains(&name) {
        return Err(ApiError::bad(
            "policy",
            format!("unknown policy `{name}` (one of {})", BUNDLED.join(", ")),
        ));
    }
    let config = cg_policy::PolicyConfig::default();
    let result = match &p.cedar {
        None => cg_policy::Policy::bundled(name, config),
        // Extra Cedar runs on the timeline of regimes; silently dropping a pinned regime would
        // change what runs (a suspended region could become included), so refuse.
        Some(_) if name != "timeline" => {
            return Err(ApiError::bad(
                "cedar",
                format!(
                    "extra Cedar policies run on the `timeline` of regimes and cannot be combined with the pinned regime `{name}`: activate `{name}` alone, or send the Cedar with \"policy\": \"timeline\""
                ),
            ));
        }
        Some(text) => cg_policy::Policy::with_files(
            vec![cg_policy::SourceFile {
                name: "submitted.cedar".into(),
                text: text.clone(),
            }],
            config,
        ),
    };
    result.map_err(|e| {
        ApiError::bad(
            if p.cedar.is_some() { "cedar" } else { "policy" },
            e.to_string(),
        )
    })
}

async fn policy_validate(
    AdminAuth(_): AdminAuth,
    ApiJson(p): ApiJson<PolicyIn>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let policy = build_policy(&p)?;
    Ok(Json(
        serde_json::json!({ "valid": true, "name": policy.name(), "hash": policy.hash() }),
    ))
}

/// `POST /v1/admin/policies/activate`: a policy, and what to do if it admits something the
/// policy in force denies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateIn {
    /// A bundled policy name (default `timeline`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Extra Cedar policies.
    #[serde(default)]
    pub cedar: Option<String>,
    /// Put the policy in force even if it admits something the policy in force denies (or no
    /// proof could be had); needs a `reason`, which is logged with the activation.
    #[serde(default)]
    pub accept_widening: bool,
    /// Why the widening is accepted (1 to 1 000 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Longest accepted `reason`.
const MAX_REASON_CHARS: usize = 1000;

/// What an activation did, beside the policy now in force.
#[derive(Debug, Serialize)]
pub struct Activated {
    /// The policy in force.
    #[serde(flatten)]
    pub view: PolicyView,
    /// `proved` (admits nothing new), `unchanged` (same policy), `widening_accepted` (a
    /// counterexample, accepted with a reason) or `unproven_accepted` (no proof could be had,
    /// accepted with a reason).
    pub proof: &'static str,
    /// The accepted reason, as logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_widening: Option<String>,
    /// The counterexample that was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Box<cg_prove::Counterexample>>,
}

async fn policy_activate(
    AdminAuth(cap): AdminAuth,
    State(s): S,
    ApiJson(a): ApiJson<ActivateIn>,
) -> Result<Json<Activated>, ApiError> {
    s.limits().take(cap.token_id(), Kind::AdminWrite)?;
    let policy = build_policy(&PolicyIn {
        policy: a.policy.clone(),
        cedar: a.cedar.clone(),
    })?;
    let reason = match (a.accept_widening, a.reason.as_deref().map(str::trim)) {
        (false, _) => None,
        (true, Some(r)) if !r.is_empty() && r.chars().count() <= MAX_REASON_CHARS => {
            Some(r.to_owned())
        }
        (true, _) => {
            return Err(ApiError::bad(
                "reason",
                format!(
                    "`accept_widening` needs a `reason` of 1 to {MAX_REASON_CHARS} characters; it is logged with the activation"
                ),
            ));
        }
    };
    let current = s.policy()?.policy.clone();
    let new = std::sync::Arc::new(policy);
    let (proof, counterexample) = if current.hash() == new.hash() {
        ("unchanged", None)
    } else {
        let checks = vec![cg_prove::Check::NothingNewAdmitted];
        match s.prove(current.clone(), new.clone(), None, checks).await {
            Ok(report) => match report
                .checks
                .into_iter()
                .next()
                .and_then(|c| c.counterexample)
            {
                None => ("proved", None),
                Some(cx) if reason.is_some() => ("widening_accepted", Some(cx)),
                Some(cx) => {
                    return Err(ApiError::conflict(format!(
                        "policy `{}` admits what `{}` excludes, e.g. {}; send \"accept_widening\": true with a \"reason\" to put it in force anyway (the reason is logged), or prove it with POST /v1/admin/policies/prove",
                        new.name(),
                        current.name(),
                        describe(&cx)
                    )));
                }
            },
            Err(e)
                if reason.is_some()
                    && e.status == StatusCode::SERVICE_UNAVAILABLE
                    && e.code != "overloaded" =>
            {
                ("unproven_accepted", None)
            }
            Err(mut e) => {
                if e.code != "overloaded" {
                    e.message.push_str(
                        "; without a proof the policy is put in force only with \"accept_widening\": true and a \"reason\"",
                    );
                }
                return Err(e);
            }
        }
    };
    let accepted_widening = match proof {
        "widening_accepted" | "unproven_accepted" => reason,
        _ => None,
    };
    // The proof compared with the policy in force when it started; if another activation
    // happened meanwhile, its answer is about the wrong policy.
    if s.policy()?.policy.hash() != current.hash() {
        return Err(ApiError::conflict(
            "the policy in force changed while the proof ran; send the activation again",
        ));
    }
    s.activate(
        new,
        Some(cap.token_id().to_owned()),
        accepted_widening.clone(),
    )
    .await?;
    Ok(Json(Activated {
        view: policy_view(&s)?,
        proof,
        accepted_widening,
        counterexample,
    }))
}

/// One line naming a counterexample's member and decisions.
fn describe(cx: &cg_prove::Counterexample) -> String {
    let reasons = |e: &cg_policy::Explanation| {
        e.reasons
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "a member in {} as of {}: excluded now ({}), included by the new policy ({})",
        cx.member.country.as_deref().unwrap_or("an unknown country"),
        cx.as_of.date(),
        reasons(&cx.replay.old),
        reasons(&cx.replay.new)
    )
}

/// `POST /v1/admin/policies/prove`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProveIn {
    /// The policy compared against (default: the policy in force).
    #[serde(default)]
    pub old: Option<PolicyIn>,
    /// The proposed policy.
    pub new: PolicyIn,
    /// Only this purpose (default: every purpose).
    #[serde(default)]
    pub purpose: Option<String>,
    /// `widening` (default: does the new policy admit anything the old one excludes?),
    /// `narrowing` (the reverse) or `both`.
    #[serde(default)]
    pub direction: Option<String>,
}

async fn policy_prove(
    AdminAuth(cap): AdminAuth,
    State(s): S,
    ApiJson(p): ApiJson<ProveIn>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.limits().take(cap.token_id(), Kind::AdminWrite)?;
    // A bad policy's 400 names the field under its side (`new.cedar`).
    let side = |p: &PolicyIn, name: &str| {
        build_policy(p).map(std::sync::Arc::new).map_err(|mut e| {
            e.field = e.field.map(|f| format!("{name}.{f}"));
            e
        })
    };
    let old = match &p.old {
        Some(old) => side(old, "old")?,
        None => s.policy()?.policy.clone(),
    };
    let new = side(&p.new, "new")?;
    let checks = match p.direction.as_deref().unwrap_or("widening") {
        "widening" => vec![cg_prove::Check::NothingNewAdmitted],
        "narrowing" => vec![cg_prove::Check::NothingNewExcluded],
        "both" => vec![
            cg_prove::Check::NothingNewAdmitted,
            cg_prove::Check::NothingNewExcluded,
        ],
        other => {
            return Err(ApiError::bad(
                "direction",
                format!("`{other}` is not a direction (widening, narrowing, both)"),
            ));
        }
    };
    let purpose = match &p.purpose {
        None => None,
        Some(name) => Some(
            old.config()
                .purpose(name)
                .map_err(|e| ApiError::bad("purpose", e.to_string()))?,
        ),
    };
    let report = s.prove(old, new, purpose, checks).await?;
    let admits_new = report
        .result(cg_prove::Check::NothingNewAdmitted)
        .map(|c| c.result == cg_prove::Outcome::Counterexample);
    let mut body = serde_json::to_value(&report).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(map) = body.as_object_mut() {
        map.insert("admits_new".into(), serde_json::json!(admits_new));
    }
    Ok(Json(body))
}

/// One published dataset, as lists show it.
#[derive(Debug, Serialize)]
pub struct BuildView {
    /// Id.
    pub dataset_id: String,
    /// Cut-off.
    pub as_of: String,
    /// Purpose.
    pub purpose: String,
    /// Policy name and hash.
    pub policy: serde_json::Value,
    /// Rows by decision.
    pub totals: serde_json::Value,
    /// Rows by decision × reason × region.
    pub counts: serde_json::Value,
    /// Rows by region × decision, each row once (for manifests written before the manifest
    /// recorded it, read from `counts` under each row's headline reason).
    pub rows_by_region: Vec<cg_model::manifest::RegionRows>,
    /// When it was built.
    pub created_at: String,
    /// The parent of a rebuild.
    pub parent: Option<String>,
}

/// Every dataset under the datasets directory, newest first.
pub fn list_builds(s: &AppState) -> Result<Vec<BuildView>, ApiError> {
    let Some(root) = s.datasets() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let entries = std::fs::read_dir(root)
        .map_err(|e| ApiError::internal(format!("datasets directory: {e}")))?;
    for e in entries.flatten() {
        let Ok(bytes) = std::fs::read(e.path().join("manifest.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let rows_by_region = serde_json::from_slice::<cg_model::manifest::Manifest>(&bytes)
            .map(|typed| cg_report::build_report::regions_of(&typed).0)
            .unwrap_or_default();
        out.push(BuildView {
            rows_by_region,
            dataset_id: m["dataset_id"].as_str().unwrap_or_default().to_owned(),
            as_of: m["as_of"].as_str().unwrap_or_default().to_owned(),
            purpose: m["purpose"].as_str().unwrap_or_default().to_owned(),
            policy: m["policy"].clone(),
            totals: m["totals"].clone(),
            counts: m["counts"].clone(),
            created_at: m["created_at"].as_str().unwrap_or_default().to_owned(),
            parent: m["lineage"]["parent"].as_str().map(str::to_owned),
        });
    }
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(a.dataset_id.cmp(&b.dataset_id))
    });
    Ok(out)
}

async fn builds(ReaderAuth(_): ReaderAuth, State(s): S) -> Result<Json<Vec<BuildView>>, ApiError> {
    Ok(Json(list_builds(&s)?))
}

async fn build_manifest(
    ReaderAuth(_): ReaderAuth,
    State(s): S,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dir = dataset_dir(&s, &id, "id")?;
    let bytes =
        std::fs::read(dir.join("manifest.json")).map_err(|e| ApiError::internal(e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn tokens_list(
    AdminAuth(_): AdminAuth,
    State(s): S,
) -> Result<Json<Vec<cg_ledger::tokens::TokenRecord>>, ApiError> {
    Ok(Json(
        s.ledger(Lane::Interactive, |store| Ok(store.tokens()?))
            .await?,
    ))
}

/// `POST /v1/admin/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// member, service, admin, auditor.
    pub role: String,
    /// For member tokens.
    #[serde(default)]
    pub member_id: Option<i64>,
    /// Time to live (`90d`, `12h`, `30m`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// A label.
    #[serde(default)]
    pub label: Option<String>,
}

async fn token_issue(
    AdminAuth(cap): AdminAuth,
    State(s): S,
    ApiJson(t): ApiJson<TokenIn>,
) -> Result<Response, ApiError> {
    s.limits().take(cap.token_id(), Kind::AdminWrite)?;
    if !cg_ledger::tokens::ROLES.contains(&t.role.as_str()) {
        return Err(ApiError::bad(
            "role",
            "one of member, service, admin, auditor",
        ));
    }
    if (t.role == "member") != t.member_id.is_some() {
        return Err(ApiError::bad(
            "member_id",
            "required for member tokens, and only for them",
        ));
    }
    let ttl = t
        .ttl
        .as_deref()
        .map(|x| {
            cg_ledger::tokens::parse_ttl(x)
                .ok_or_else(|| ApiError::bad("ttl", "a duration like 90d, 12h, 30m (a positive number and s, m, h or d; at most 3650d)"))
        })
        .transpose()?;
    let (token, record) = s
        .ledger(Lane::Interactive, move |store| {
            Ok(cg_ledger::tokens::issue(
                store,
                &t.role,
                t.member_id,
                ttl,
                t.label,
            )?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "record": record })),
    )
        .into_response())
}

async fn token_revoke(
    AdminAuth(_): AdminAuth,
    State(s): S,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let revoked_id = id.clone();
    let revoked = s
        .ledger(Lane::Interactive, move |store| {
            Ok(store.token_revoke(&revoked_id, now())?)
        })
        .await?;
    if revoked {
        // Its page sessions end with it.
        s.sessions().end_token(&id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such active token"))
    }
}
