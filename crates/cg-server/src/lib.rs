//! # cg-server — the consentgate service
//!
//! The part people touch: members change their setting, other services ask "may I use this?",
//! the privacy team manages policies, builds and tokens, auditors read the log and the
//! datasets. One axum [`Router`]:
//!
//! - `/v1/...`: the JSON API ([`api`], one module per resource), every call authenticated by a
//!   bearer token and authorised by role in one place ([`auth`]: capability handles per role);
//! - `/privacy`, `/dashboard`, `/login`: server-rendered pages ([`pages`]) with embedded
//!   assets (no CDN), usable without JavaScript, SVG charts rendered on the server, signed in
//!   by a server-side session ([`sessions`]);
//! - `/openapi.json`: the API description, generated from the route table ([`openapi`]) the
//!   authorisation matrix test also walks.
//!
//! The ledger is reached through a [`storage::StorePool`]: connections on their own threads,
//! an interactive lane and a bulk lane, bounded queues and waits — a handler never blocks a
//! Tokio worker and never holds a lock across a request. [`serve`] bounds connections and their
//! header-read, request and idle times ([`ServeLimits`]).
//!
//! Requests carry an `x-request-id`; logs (tracing) name the route, status, latency and role,
//! never a token or a member id. Bodies are limited to 2 MiB. [`serve`] shuts down gracefully.

#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod check;
pub mod error;
pub mod extract;
pub mod limits;
pub mod openapi;
pub mod pages;
mod server;
pub mod sessions;
pub mod storage;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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

pub use server::{ServeLimits, serve, serve_with};
pub use storage::{Lane, PoolConfig, StorePool};

use crate::error::ApiError;

fn now() -> cg_model::Timestamp {
    cg_model::Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

/// The ledger record of putting `policy` in force now (who, when, name, hash and recipe).
fn activation_record(
    policy: &Policy,
    actor: Option<&str>,
) -> Result<cg_ledger::PolicyActivation, ApiError> {
    let recipe = serde_json::to_string(policy.recipe())
        .map_err(|e| ApiError::internal(format!("policy recipe: {e}")))?;
    Ok(cg_ledger::PolicyActivation {
        activated_at: now(),
        actor: actor.map(str::to_owned),
        name: policy.name().to_owned(),
        hash: policy.hash().to_owned(),
        recipe,
        accepted_widening: None,
    })
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
    /// The ledger's URL (what [`cg_ledger::open`] takes); the service opens a pool of
    /// connections to it.
    pub store_url: String,
    /// The pool's sizes and waits.
    pub pool: PoolConfig,
    /// The policy to put in force at start (recorded as an activation); `None`: the latest
    /// activation the ledger records (the `timeline` when there is none).
    pub policy: Option<Policy>,
    /// Where published datasets live (for builds, manifests and receipts).
    pub datasets: Option<PathBuf>,
    /// The log key (checkpoints, receipts), if this service holds it.
    pub signer: Option<NoteSigner>,
    /// The model registry (which models were trained on which datasets), for members'
    /// data-use records.
    pub models: Option<PathBuf>,
    /// Mark session cookies `Secure` on every response (the service is reached over TLS
    /// terminated elsewhere). Without it they are `Secure` when a request says it came over
    /// HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// The SMT solver for policy proofs (`/v1/admin/policies/prove`, and the check before an
    /// activation).
    pub solver: cg_prove::SolverConfig,
}

impl ServerConfig {
    /// A configuration with defaults for everything but the ledger.
    pub fn new(store_url: impl Into<String>) -> ServerConfig {
        ServerConfig {
            store_url: store_url.into(),
            pool: PoolConfig::default(),
            policy: None,
            datasets: None,
            signer: None,
            models: None,
            secure_cookies: false,
            solver: cg_prove::SolverConfig::default(),
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("datasets", &self.datasets)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

/// When a full log verification ran, and its outcome (the report, or what is wrong).
pub type Verification = (Instant, Result<cg_ledger::log::LogReport, String>);

/// The shared state of all handlers.
pub struct AppState {
    ledger: StorePool,
    policy: RwLock<Arc<check::ActivePolicy>>,
    datasets: Option<PathBuf>,
    models: Option<PathBuf>,
    signer: Option<NoteSigner>,
    member_keys: Option<MemberKeySecret>,
    next_request: AtomicU64,
    sessions: sessions::Sessions,
    limits: limits::RateLimits,
    secure_cookies: bool,
    solver: cg_prove::SolverConfig,
    /// One policy proof at a time (a proof holds a solver process and a blocking thread).
    proving: Arc<tokio::sync::Semaphore>,
    /// The dashboard's last full log verification: (latest checkpoint size, when, outcome).
    /// The lock is held only to read or replace the value, never while verifying.
    last_verify: Mutex<Option<(u64, Verification)>>,
    /// A background verification is running.
    verifying: AtomicBool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    /// State from a config: opens the ledger pool and puts the policy in force.
    pub fn new(cfg: ServerConfig) -> Result<Arc<AppState>, ApiError> {
        let member_keys = match &cfg.signer {
            Some(s) => Some(
                MemberKeySecret::from_seed(&s.seed())
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            ),
            None => None,
        };
        let ledger = StorePool::open(&cfg.store_url, &cfg.pool)
            .map_err(|e| ApiError::unavailable(format!("cannot open the ledger: {e}")))?;
        let latest =
            ledger.run_blocking(Lane::Interactive, |s| Ok(s.policy_activation_latest()?))?;
        let active = match cfg.policy {
            Some(policy) => {
                if latest.is_none_or(|a| a.hash != policy.hash()) {
                    let record = activation_record(&policy, Some("serve --policy"))?;
                    ledger.run_blocking(Lane::Interactive, move |s| {
                        Ok(s.policy_activation_record(&record)?)
                    })?;
                }
                check::ActivePolicy::restored(policy, now(), Some("serve --policy".into()))
            }
            None => match latest {
                Some(a) => restore(&a)?,
                None => check::ActivePolicy::new(
                    Policy::bundled("timeline", cg_policy::PolicyConfig::default())
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                ),
            },
        };
        Ok(Arc::new(AppState {
            ledger,
            policy: RwLock::new(Arc::new(active)),
            datasets: cfg.datasets,
            models: cfg.models,
            signer: cfg.signer,
            member_keys,
            next_request: AtomicU64::new(1),
            sessions: sessions::Sessions::default(),
            limits: limits::RateLimits::default(),
            secure_cookies: cfg.secure_cookies,
            solver: cfg.solver,
            proving: Arc::new(tokio::sync::Semaphore::new(1)),
            last_verify: Mutex::new(None),
            verifying: AtomicBool::new(false),
        }))
    }

    /// Runs `f` with a ledger connection of `lane`, off the async workers, bounded in time.
    pub async fn ledger<R: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&mut dyn Store) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        self.ledger.run(lane, f).await
    }

    /// Runs a read-only `f` against the ledger, on this worker's own connection where the
    /// backend allows it ([`StorePool::read`]), else on the interactive lane.
    pub async fn ledger_read<R: Send + 'static>(
        &self,
        f: impl Fn(&mut dyn Store) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        self.ledger.read(f).await
    }

    /// The policy in force.
    pub fn policy(&self) -> Result<Arc<check::ActivePolicy>, ApiError> {
        self.policy
            .read()
            .map(|p| p.clone())
            .map_err(|_| ApiError::internal("the policy lock is poisoned"))
    }

    /// Puts another policy in force, recorded in the ledger with who and when (it survives a
    /// restart) and logged in the transparency log, with the reason a widening change was
    /// accepted if it was one.
    pub async fn activate(
        &self,
        policy: Arc<Policy>,
        actor: Option<String>,
        accepted_widening: Option<String>,
    ) -> Result<Arc<check::ActivePolicy>, ApiError> {
        // Recorded first: a policy is never in force without its record.
        let mut record = activation_record(&policy, actor.as_deref())?;
        record.accepted_widening = accepted_widening;
        self.ledger(Lane::Interactive, move |s| {
            Ok(s.policy_activation_record(&record)?)
        })
        .await?;
        tracing::info!(
            policy = policy.name(),
            hash = policy.hash(),
            "policy activated"
        );
        let active = Arc::new(check::ActivePolicy::shared(policy, now(), actor));
        let mut slot = self
            .policy
            .write()
            .map_err(|_| ApiError::internal("the policy lock is poisoned"))?;
        *slot = active.clone();
        Ok(active)
    }

    /// Compares two policies with the solver, off the async workers and one at a time (a
    /// second proof while one runs is 503 with `Retry-After`). Every failure to get an answer
    /// is an error: nothing is ever reported as proved without the solver's answer.
    pub async fn prove(
        &self,
        old: Arc<Policy>,
        new: Arc<Policy>,
        purpose: Option<cg_model::Purpose>,
        checks: Vec<cg_prove::Check>,
    ) -> Result<cg_prove::Report, ApiError> {
        // The permit moves into the proof's thread: it is released when the proof ends, not
        // when this request gives up waiting, so at most one solver runs at a time.
        let permit = self
            .proving
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::overloaded("another policy proof is running"))?;
        let solver = self.solver.clone();
        let wall = solver.timeout * 4 + std::time::Duration::from_secs(10);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            cg_prove::Comparison {
                old: &old,
                new: &new,
                purpose: purpose.as_ref(),
                checks: &checks,
            }
            .run(&solver)
        });
        match tokio::time::timeout(wall, task).await {
            Err(_) => Err(ApiError::unavailable(
                "the policy proof did not finish in time",
            )),
            Ok(Err(e)) => Err(ApiError::internal(format!("the policy proof failed: {e}"))),
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %e, "policy proof without an answer");
                Err(ApiError::unavailable(format!(
                    "no proof: {e}{}",
                    e.hint().map(|h| format!(" ({h})")).unwrap_or_default()
                )))
            }
            Ok(Ok(Ok(report))) => Ok(report),
        }
    }

    /// Where datasets live.
    pub fn datasets(&self) -> Option<&PathBuf> {
        self.datasets.as_ref()
    }

    /// The model registry, if configured.
    pub fn models(&self) -> Option<&PathBuf> {
        self.models.as_ref()
    }

    /// The log key and the member-key secret, if the service holds them.
    pub fn keys(&self) -> Option<(&NoteSigner, &MemberKeySecret)> {
        self.signer.as_ref().zip(self.member_keys.as_ref())
    }

    /// The page sessions.
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.sessions
    }

    /// The per-token rate limits.
    pub fn limits(&self) -> &limits::RateLimits {
        &self.limits
    }

    /// Whether session cookies are `Secure` on every response.
    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    /// The latest full log verification for the dashboard, at most one per new checkpoint or
    /// five minutes. A stale or missing result starts one in the background (bulk lane) and
    /// waits a moment for it; a verification that takes longer shows up on a later load. `None`
    /// when the service does not hold the log key or no verification has finished yet.
    pub async fn log_verification(self: &Arc<Self>) -> Result<Option<Verification>, ApiError> {
        let Some(vkey) = self.verifier_key() else {
            return Ok(None);
        };
        let size = self
            .ledger(Lane::Interactive, |s| {
                Ok(s.log_checkpoints()?.last().map_or(0, |c| c.size))
            })
            .await?;
        let cached = || -> Option<(u64, Verification)> {
            self.last_verify.lock().ok().and_then(|c| c.clone())
        };
        let fresh = |c: &Option<(u64, Verification)>| {
            c.as_ref().is_some_and(|(s, v)| {
                *s == size && v.0.elapsed() < std::time::Duration::from_secs(300)
            })
        };
        let current = cached();
        if fresh(&current) {
            return Ok(current.map(|(_, v)| v));
        }
        if !self.verifying.swap(true, Ordering::SeqCst) {
            let state = self.clone();
            tokio::spawn(async move {
                let outcome = state
                    .ledger(Lane::Bulk, move |s| {
                        Ok(cg_ledger::log::verify(s, &vkey).map_err(|e| e.to_string()))
                    })
                    .await;
                if let Ok(outcome) = outcome
                    && let Ok(mut slot) = state.last_verify.lock()
                {
                    *slot = Some((size, (Instant::now(), outcome)));
                }
                state.verifying.store(false, Ordering::SeqCst);
            });
        }
        // Wait a moment for it; otherwise show the last outcome known.
        let deadline = Instant::now() + std::time::Duration::from_secs(3);
        while Instant::now() < deadline {
            let c = cached();
            if fresh(&c) {
                return Ok(c.map(|(_, v)| v));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(cached().map(|(_, v)| v))
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
        .fallback(extract::not_found)
        .method_not_allowed_fallback(extract::method_not_allowed)
        .layer(axum::middleware::from_fn(pages::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_log,
        ))
        .layer(DefaultBodyLimit::max(2 << 20))
        .with_state(state)
}
