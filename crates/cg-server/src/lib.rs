//! # cg-server — the consentgate service
//!
//! The part people touch: members change their setting, other services ask "may I use this?",
//! the privacy team manages policies, builds and tokens, auditors read the log and the
//! datasets. One axum [`Router`]:
//!
//! - `/v1/...`: the JSON API ([`api`]), every call authenticated by a bearer token and
//!   authorised by role in one place ([`auth`]: capability handles per role);
//! - `/privacy`, `/dashboard`, `/login`: server-rendered pages ([`pages`]) with embedded
//!   assets (no CDN), usable without JavaScript, SVG charts rendered on the server;
//! - `/openapi.json`: the API description, generated from the route table ([`openapi`]) the
//!   authorisation matrix test also walks.
//!
//! Requests carry an `x-request-id`; logs (tracing) name the route, status, latency and role,
//! never a token or a member id. Bodies are limited to 2 MiB. [`serve`] shuts down gracefully.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod check;
pub mod error;
pub mod openapi;
pub mod pages;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use cg_ledger::Store;
use cg_policy::Policy;
use cg_proof::member_key::MemberKeySecret;
use cg_proof::note::NoteSigner;

use crate::error::ApiError;

fn now() -> cg_model::Timestamp {
    cg_model::Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

/// Records a policy activation in the ledger (who, when, name, hash and recipe).
fn record_activation(
    store: &mut dyn Store,
    policy: &Policy,
    actor: Option<&str>,
) -> Result<(), ApiError> {
    let recipe = serde_json::to_string(policy.recipe())
        .map_err(|e| ApiError::internal(format!("policy recipe: {e}")))?;
    store.policy_activation_record(&cg_ledger::PolicyActivation {
        activated_at: now(),
        actor: actor.map(str::to_owned),
        name: policy.name().to_owned(),
        hash: policy.hash().to_owned(),
        recipe,
    })?;
    Ok(())
}

/// The policy of a recorded activation, made again from its recipe. Its hash must be the one
/// recorded: a policy that changed since (another version's bundled policies) is refused, not
/// silently put in force.
fn restore(a: &cg_ledger::PolicyActivation) -> Result<check::ActivePolicy, ApiError> {
    let recipe: cg_policy::PolicyRecipe = serde_json::from_str(&a.recipe).map_err(|e| {
        ApiError::internal(format!("the recorded policy activation is unreadable: {e}"))
    })?;
    let policy = Policy::from_recipe(&recipe).map_err(|e| {
        ApiError::internal(format!(
            "the recorded policy `{}` cannot be made: {e}",
            a.name
        ))
    })?;
    if policy.hash() != a.hash {
        return Err(ApiError::internal(format!(
            "the recorded policy `{}` now has hash {} (recorded {}): start with --policy to put a policy in force explicitly",
            a.name,
            policy.hash(),
            a.hash
        )));
    }
    Ok(check::ActivePolicy::restored(
        policy,
        a.activated_at,
        a.actor.clone(),
    ))
}

/// What the service runs with.
pub struct ServerConfig {
    /// The ledger.
    pub store: Box<dyn Store>,
    /// The policy to put in force at start (recorded as an activation); `None`: the latest
    /// activation the ledger records (the `timeline` when there is none).
    pub policy: Option<Policy>,
    /// Where published datasets live (for builds, manifests and receipts).
    pub datasets: Option<PathBuf>,
    /// The log key (checkpoints, receipts), if this service holds it.
    pub signer: Option<NoteSigner>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("datasets", &self.datasets)
            .finish_non_exhaustive()
    }
}

/// When a full log verification ran, and its outcome (the report, or what is wrong).
pub type Verification = (Instant, Result<cg_ledger::log::LogReport, String>);

/// The shared state of all handlers.
pub struct AppState {
    store: Mutex<Box<dyn Store>>,
    policy: RwLock<Arc<check::ActivePolicy>>,
    datasets: Option<PathBuf>,
    signer: Option<NoteSigner>,
    member_keys: Option<MemberKeySecret>,
    next_request: AtomicU64,
    /// The dashboard's last full log verification: (latest checkpoint size, when, outcome).
    last_verify: Mutex<Option<(u64, Verification)>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// State from a config.
    pub fn new(cfg: ServerConfig) -> Result<Arc<AppState>, ApiError> {
        let member_keys = match &cfg.signer {
            Some(s) => Some(
                MemberKeySecret::from_seed(&s.seed())
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            ),
            None => None,
        };
        let mut store = cfg.store;
        let active = match cfg.policy {
            Some(policy) => {
                let latest = store.policy_activation_latest()?;
                if latest.is_none_or(|a| a.hash != policy.hash()) {
                    record_activation(store.as_mut(), &policy, Some("serve --policy"))?;
                }
                check::ActivePolicy::restored(policy, now(), Some("serve --policy".into()))
            }
            None => match store.policy_activation_latest()? {
                Some(a) => restore(&a)?,
                None => check::ActivePolicy::new(
                    Policy::bundled("timeline", cg_policy::PolicyConfig::default())
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                ),
            },
        };
        Ok(Arc::new(AppState {
            store: Mutex::new(store),
            policy: RwLock::new(Arc::new(active)),
            datasets: cfg.datasets,
            signer: cfg.signer,
            member_keys,
            next_request: AtomicU64::new(1),
            last_verify: Mutex::new(None),
        }))
    }

    /// The ledger. A poisoned lock (a handler panicked mid-call) is an internal error: the
    /// store's transactions make a half-done write impossible, but we do not guess.
    pub fn store(&self) -> Result<MutexGuard<'_, Box<dyn Store>>, ApiError> {
        self.store
            .lock()
            .map_err(|_| ApiError::internal("the ledger lock is poisoned"))
    }

    /// The policy in force.
    pub fn policy(&self) -> Result<Arc<check::ActivePolicy>, ApiError> {
        self.policy
            .read()
            .map(|p| p.clone())
            .map_err(|_| ApiError::internal("the policy lock is poisoned"))
    }

    /// Puts another policy in force, recorded in the ledger with who and when (it survives a
    /// restart).
    pub fn activate(
        &self,
        policy: Policy,
        actor: Option<String>,
    ) -> Result<Arc<check::ActivePolicy>, ApiError> {
        // Recorded first: a policy is never in force without its record.
        record_activation(self.store()?.as_mut(), &policy, actor.as_deref())?;
        tracing::info!(
            policy = policy.name(),
            hash = policy.hash(),
            "policy activated"
        );
        let active = Arc::new(check::ActivePolicy::restored(policy, now(), actor));
        let mut slot = self
            .policy
            .write()
            .map_err(|_| ApiError::internal("the policy lock is poisoned"))?;
        *slot = active.clone();
        Ok(active)
    }

    /// Where datasets live.
    pub fn datasets(&self) -> Option<&PathBuf> {
        self.datasets.as_ref()
    }

    /// The log key and the member-key secret, if the service holds them.
    pub fn keys(&self) -> Option<(&NoteSigner, &MemberKeySecret)> {
        self.signer.as_ref().zip(self.member_keys.as_ref())
    }

    /// The outcome of a full log verification, at most one per new checkpoint or five minutes
    /// (a verification reads every entry and event; pages must not hold the ledger that long on
    /// every load). `None` when the service does not hold the log key.
    pub fn log_verification(&self) -> Result<Option<Verification>, ApiError> {
        let Some(vkey) = self.verifier_key() else {
            return Ok(None);
        };
        let mut store = self.store()?;
        let size = store.log_checkpoints()?.last().map_or(0, |c| c.size);
        let mut cache = self
            .last_verify
            .lock()
            .map_err(|_| ApiError::internal("the verification cache lock is poisoned"))?;
        if let Some((s, v)) = cache.as_ref()
            && *s == size
            && v.0.elapsed() < std::time::Duration::from_secs(300)
        {
            return Ok(Some(v.clone()));
        }
        let outcome = cg_ledger::log::verify(store.as_mut(), &vkey).map_err(|e| e.to_string());
        let v = (Instant::now(), outcome);
        *cache = Some((size, v.clone()));
        Ok(Some(v))
    }

    /// The log's verifier key, if the service holds the log key.
    pub fn verifier_key(&self) -> Option<String> {
        self.signer.as_ref().map(NoteSigner::verifier_key)
    }
}

/// Request ids and one structured log line per request (route, status, latency, role; never
/// tokens, bodies or member ids).
async fn request_log(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = format!(
        "req-{:08x}",
        state.next_request.fetch_add(1, Ordering::Relaxed)
    );
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "-".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let slot = auth::RoleSlot::default();
    let mut req = req;
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).await;
    let role = slot.0.lock().ok().and_then(|r| *r).unwrap_or("-");
    tracing::info!(
        request_id = %id,
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        role,
        "request"
    );
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The whole application.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .route("/openapi.json", axum::routing::get(openapi::document))
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_log,
        ))
        .layer(DefaultBodyLimit::max(2 << 20))
        .with_state(state)
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
