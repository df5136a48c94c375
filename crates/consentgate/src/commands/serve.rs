//! `consentgate serve` and `consentgate token issue|revoke|list`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::commands::consent::StoreArgs;
use crate::commands::keys::KeyArgs;
use crate::commands::policy::PolicyArgs;
use crate::errors::UsageError;
use crate::printer::Printer;

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where published datasets live (builds, manifests, receipts).
    #[arg(long, value_name = "DIR")]
    pub datasets: Option<PathBuf>,
    /// The model registry (TOML or JSON: `[[model]] name, datasets, trained_at`): members'
    /// data-use records name the models trained on their content.
    #[arg(long, value_name = "FILE")]
    pub models: Option<PathBuf>,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Mark session cookies `Secure` (the service is reached over HTTPS terminated in front
    /// of it). Without it, cookies are `Secure` when a request carries
    /// `X-Forwarded-Proto: https`.
    #[arg(long)]
    pub secure_cookies: bool,
    /// Connections served at once; one more is answered 503 and closed.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
    /// Ledger connections for interactive calls (checks, pages); batches, log verification
    /// and tiles use one more of their own.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub ledger_connections: usize,
    /// The cvc5 binary for policy proofs (`/v1/admin/policies/prove` and the check before an
    /// activation); default `$CVC5`, else `cvc5` on `PATH`.
    #[arg(long, value_name = "PATH")]
    pub solver: Option<PathBuf>,
    /// Time limit per solver query, in milliseconds.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub solver_timeout_ms: u64,
}

/// Runs `serve` until SIGINT or SIGTERM, then finishes the requests in flight.
pub fn serve(a: ServeArgs, printer: Printer) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    // The ledger is reached through a pool of connections on their own threads (the service's
    // handlers never block on a database call).
    let url = a.store.store.clone().unwrap_or_else(cg_ledger::default_url);
    let signer = if a.key.path().exists() {
        Some(a.key.load()?.signer)
    } else {
        None
    };
    let cfg = cg_server::ServerConfig {
        store_url: url,
        pool: cg_server::PoolConfig {
            interactive_connections: a.ledger_connections.max(1),
            ..cg_server::PoolConfig::default()
        },
        // A policy named on the command line is put in force (and recorded); otherwise the
        // service restores the latest activation the ledger records.
        policy: if a.policy.is_explicit() {
            Some(a.policy.load()?)
        } else {
            None
        },
        datasets: a.datasets,
        models: a.models,
        signer,
        secure_cookies: a.secure_cookies,
        solver: cg_prove::SolverConfig {
            path: a.solver,
            timeout: std::time::Duration::from_millis(a.solver_timeout_ms.max(1)),
        },
    };
    let state = cg_server::AppState::new(cfg).map_err(|e| anyhow::anyhow!(e.message))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        printer.status("Listening", format!("http://{addr} (privacy page /privacy, dashboard /dashboard, API /v1, /openapi.json)"));
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
        };
        let limits = cg_server::ServeLimits {
            max_connections: a.max_connections.max(1),
            ..cg_server::ServeLimits::default()
        };
        cg_server::serve_with(listener, state, limits, shutdown).await?;
        printer.status("Stopped", "all requests answered");
        Ok::<(), anyhow::Error>(())
    })
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token; prints it once (only its hash is stored).
    Issue(IssueArgs),
    /// Revoke a token by id.
    Revoke(RevokeArgs),
    /// List tokens (never secrets).
    List(ListArgs),
}

/// Arguments of `token issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// member, service, admin or auditor.
    #[arg(long)]
    pub role: String,
    /// For a member token: the member it acts for.
    #[arg(long, allow_negative_numbers = true)]
    pub member: Option<i64>,
    /// Time to live (`90d`, `12h`, `30m`; default: no expiry).
    #[arg(long, value_name = "D")]
    pub ttl: Option<String>,
    /// A label.
    #[arg(long)]
    pub label: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `token revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token id (the 16 hex digits after `cgt_`), or the whole token.
    #[arg(required_unless_present = "id_flag")]
    pub id: Option<String>,
    /// The same, as a flag.
    #[arg(long = "id", value_name = "ID", conflicts_with = "id")]
    pub id_flag: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `token list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `token` subcommand.
pub fn token(cmd: TokenCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Issue(a) => {
            if !cg_ledger::tokens::ROLES.contains(&a.role.as_str()) {
                return Err(UsageError(format!(
                    "--role must be one of {}",
                    cg_ledger::tokens::ROLES.join(", ")
                ))
                .into());
            }
            if (a.role == "member") != a.member.is_some() {
                return Err(UsageError(
                    "a member token needs --member, and only a member token takes one".into(),
                )
                .into());
            }
            let ttl = a
                .ttl
                .as_deref()
                .map(|t| {
                    cg_ledger::tokens::parse_ttl(t).ok_or_else(|| {
                        UsageError(format!(
                            "--ttl `{t}`: use a duration like 90d, 12h, 30m (at most 3650d)"
                        ))
                    })
                })
                .transpose()?;
            let mut store = a.store.open()?;
            let (token, record) =
                cg_ledger::tokens::issue(store.as_mut(), &a.role, a.member, ttl, a.label)?;
            printer.status(
                "Issued",
                format!(
                    "{} token {} (shown once; only its hash is stored)",
                    record.role, record.id
                ),
            );
            let out = serde_json::json!({ "token": token, "record": record });
            Printer {
                json: a.json,
                ..printer
            }
            .data(&out, || format!("{token}\n"))
        }
        TokenCommand::Revoke(a) => {
            let given = a.id.or(a.id_flag).unwrap_or_default();
            // A whole token (`cgt_<id>_<secret>`) names its id too.
            let id = given
                .strip_prefix("cgt_")
                .and_then(|rest| rest.split('_').next())
                .unwrap_or(&given)
                .to_owned();
            let mut store = a.store.open_existing()?;
            let now = cg_model::Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc());
            if store.token_revoke(&id, now)? {
                printer.status("Revoked", &id);
                Ok(())
            } else {
                anyhow::bail!("no active token with id {id}")
            }
        }
        TokenCommand::List(a) => {
            let mut store = a.store.open_existing()?;
            let tokens = store.tokens()?;
            Printer {
                json: a.json,
                ..printer
            }
            .data(&tokens, || {
                let mut s = String::new();
                for t in &tokens {
                    s.push_str(&format!(
                        "{}  {:<8} {:<10} created {}  expires {}  {}\n",
                        t.id,
                        t.role,
                        t.member_id.map_or("-".into(), |m| m.to_string()),
                        t.created_at,
                        t.expires_at.map_or("never".into(), |e| e.to_string()),
                        if t.revoked_at.is_some() {
                            "REVOKED"
                        } else {
                            ""
                        }
                    ));
                }
                s
            })
        }
    }
}
