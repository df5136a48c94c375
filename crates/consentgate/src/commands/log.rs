//! `consentgate log append|checkpoint|verify|prove|export-tiles`: the transparency log of consent
//! changes and dataset manifests, kept in the ledger.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::commands::consent::StoreArgs;
use crate::commands::keys::KeyArgs;
use crate::errors::UsageError;
use crate::printer::Printer;

/// `log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Append a dataset manifest's entry (builds do this themselves; idempotent).
    Append(AppendArgs),
    /// Sign a checkpoint of the log as it is now.
    Checkpoint(CheckpointArgs),
    /// Recompute every entry and check every checkpoint's signature and their consistency.
    Verify(VerifyArgs),
    /// Print an inclusion proof (C2SP tlog-proof) against the latest checkpoint.
    Prove(ProveArgs),
    /// Write the log as C2SP tlog-tiles (static files) up to the latest checkpoint.
    ExportTiles(TilesArgs),
}

/// Arguments of `log append`.
#[derive(Debug, Args)]
pub struct AppendArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The dataset's manifest.json (a path, or `s3://bucket/…/manifest.json`).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `log checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `log verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The log's verifier key (text or a file holding it); default: from the log key file.
    #[arg(long, value_name = "KEY")]
    pub vkey: Option<String>,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `log prove`.
#[derive(Debug, Args)]
pub struct ProveArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The consent event's `seq` (as `consent history` shows it).
    #[arg(long, value_name = "ID", conflicts_with = "index")]
    pub event: Option<i64>,
    /// The log index.
    #[arg(long, value_name = "N")]
    pub index: Option<u64>,
    /// Print JSON (the proof text, plus the event's canonical form for --event).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `log export-tiles`.
#[derive(Debug, Args)]
pub struct TilesArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output directory.
    pub dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A verifier key given as text, or the path of a file holding it.
pub fn read_vkey(arg: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(arg);
    if !arg.contains('+') || path.is_file() {
        return std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .with_context(|| format!("`{arg}` is neither a verifier key nor a readable file"));
    }
    Ok(arg.trim().to_owned())
}

#[derive(Serialize)]
struct Appended {
    index: u64,
    dataset_id: String,
    manifest_sha256: String,
}

#[derive(Serialize)]
struct Proved {
    index: u64,
    proof: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<serde_json::Value>,
}

/// Runs a `log` subcommand.
pub fn run(cmd: LogCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        LogCommand::Append(a) => {
            // Through the store for a dataset published to one (`s3://…/manifest.json`).
            let bytes = cg_build::store::read_bytes(&a.manifest)
                .with_context(|| format!("cannot read `{}`", a.manifest.display()))?;
            let m: cg_build::Manifest = serde_json::from_slice(&bytes)
                .with_context(|| format!("`{}` is not a dataset manifest", a.manifest.display()))?;
            let sha: [u8; 32] = Sha256::digest(&bytes).into();
            let mut store = a.store.open()?;
            let index = store.log_append_manifest(&m.dataset_id, &sha)?;
            let out = Appended {
                index,
                dataset_id: m.dataset_id,
                manifest_sha256: cg_proof::hex(&sha),
            };
            Printer {
                json: a.json,
                ..printer
            }
            .data(&out, || {
                format!("{} logged at index {}\n", out.dataset_id, out.index)
            })
        }
        LogCommand::Checkpoint(a) => {
            let key = a.key.load()?;
            let mut store = a.store.open_existing()?;
            let cp = cg_ledger::log::checkpoint(store.as_mut(), &key.signer)?;
            printer.status("Signed", format!("checkpoint at size {}", cp.size));
            Printer {
                json: a.json,
                ..printer
            }
            .data(&cp, || cp.note.clone())
        }
        LogCommand::Verify(a) => {
            let vkey = match &a.vkey {
                Some(v) => read_vkey(v)?,
                None => a.key.load()?.signer.verifier_key(),
            };
            let mut store = a.store.open_existing()?;
            let report = cg_ledger::log::verify(store.as_mut(), &vkey)?;
            Printer { json: a.json, ..printer }.data(&report, || {
                format!(
                    "log verifies: {} entries ({} consent events, {} manifests), {} checkpoints, latest at size {}, root {}\n",
                    report.size,
                    report.events,
                    report.manifests,
                    report.checkpoints,
                    report.latest_checkpoint_size.map_or("-".into(), |s| s.to_string()),
                    report.root
                )
            })
        }
        LogCommand::Prove(a) => {
            let mut store = a.store.open_existing()?;
            let (index, event) = match (a.event, a.index) {
                (Some(seq), _) => {
                    let index = store
                        .log_index_of_event(seq)?
                        .ok_or_else(|| anyhow::anyhow!("no consent event with seq {seq}"))?;
                    let (e, salt) = store
                        .event_by_seq(seq)?
                        .ok_or_else(|| anyhow::anyhow!("no consent event with seq {seq}"))?;
                    let canonical = cg_ledger::log::canonical_event(&e, salt.as_deref());
                    (index, Some(serde_json::from_str(&canonical)?))
                }
                (None, Some(i)) => (i, None),
                (None, None) => {
                    return Err(UsageError("give --event ID or --index N".into()).into());
                }
            };
            let proof = cg_ledger::log::prove(store.as_mut(), index)?.to_text();
            let out = Proved {
                index,
                proof,
                event,
            };
            Printer {
                json: a.json,
                ..printer
            }
            .data(&out, || out.proof.clone())
        }
        LogCommand::ExportTiles(a) => {
            let mut store = a.store.open_existing()?;
            std::fs::create_dir_all(&a.dir)
                .with_context(|| format!("cannot create `{}`", a.dir.display()))?;
            let r = cg_ledger::log::export_tiles(store.as_mut(), &a.dir)?;
            Printer {
                json: a.json,
                ..printer
            }
            .data(&r, || {
                format!(
                    "{} hash tiles and {} entry bundles for a tree of size {} in {}\n",
                    r.tiles,
                    r.bundles,
                    r.size,
                    a.dir.display()
                )
            })
        }
    }
}
