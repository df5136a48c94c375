//! `consentgate receipt issue|verify`: a member's proof, checkable offline with only the log's
//! verifier key, that their content is or is not in a dataset.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cg_ledger::Store;
use cg_proof::receipt::{Receipt, verify};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::commands::consent::StoreArgs;
use crate::commands::keys::{KeyArgs, LogKey};
use crate::commands::log::read_vkey;
use crate::errors::Hinted;
use crate::printer::Printer;

/// `receipt` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Issue a member's receipt for a dataset (needs the log key and the ledger).
    Issue(IssueArgs),
    /// Verify a receipt offline: "member M IS / is NOT in dataset D", or an error.
    Verify(VerifyArgs),
}

/// Arguments of `receipt issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The dataset directory (`…/<dataset_id>/`), or its prefix on an object store
    /// (`s3://bucket/…/<dataset_id>`: only the manifest and the member commitment are read).
    #[arg(long, value_name = "DIR|URL")]
    pub dataset: PathBuf,
    /// The member.
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub member: i64,
    /// Write the receipt here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Arguments of `receipt verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The receipt (JSON).
    pub file: PathBuf,
    /// The log's verifier key (text, or a file holding it).
    #[arg(long, value_name = "KEY")]
    pub vkey: String,
    /// Check that the receipt is this member's.
    #[arg(long, value_name = "M", allow_negative_numbers = true)]
    pub member: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Issues a receipt for `member` in the dataset at `dataset` (a directory or an object-store
/// prefix), signing a new checkpoint if the latest does not cover the dataset's manifest yet.
pub fn issue(
    dataset: &Path,
    member: i64,
    store: &mut dyn Store,
    key: &LogKey,
) -> anyhow::Result<Receipt> {
    use cg_ledger::receipts::ReceiptIssueError as E;
    // A receipt reads the manifest and the member commitment, never the shards.
    let local = cg_build::store::LocalDataset::open(dataset, |m| {
        m.member_commitment.iter().map(|c| c.file.clone()).collect()
    })?;
    cg_ledger::receipts::issue(local.dir(), member, store, &key.signer, &key.member_keys).map_err(
        |e| match e {
            E::OtherKey(id) => anyhow::Error::new(Hinted {
                message: format!("the dataset {id} was committed with another key"),
                hint: "pass the log key the dataset was built with (--key)".into(),
            }),
            E::NotLogged(m) => anyhow::Error::new(Hinted {
                message: local.rename(&m),
                hint: format!(
                    "a dataset's manifest must be in the log: consentgate log append --manifest {}",
                    dataset.join("manifest.json").display()
                ),
            }),
            E::Dataset(m) => anyhow::Error::new(E::Dataset(local.rename(&m))),
            other => anyhow::Error::new(other),
        },
    )
}

/// Reads and verifies a receipt file.
pub fn verify_file(
    path: &Path,
    vkey: &str,
    member: Option<i64>,
) -> anyhow::Result<cg_proof::receipt::Verified> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let receipt: Receipt = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a consentgate receipt", path.display()))?;
    verify(&receipt, vkey, member)
        .with_context(|| format!("the receipt `{}` does not verify", path.display()))
}

#[derive(Serialize)]
struct VerifiedJson {
    verified: bool,
    statement: String,
    member_id: i64,
    dataset_id: String,
    included: bool,
    checkpoint_origin: String,
    checkpoint_size: u64,
    manifest_sha256: String,
    commitment_root: String,
}

/// Runs a `receipt` subcommand.
pub fn run(cmd: ReceiptCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        ReceiptCommand::Issue(a) => {
            let key = a.key.load()?;
            let mut store = a.store.open_existing()?;
            let receipt = issue(&a.dataset, a.member, store.as_mut(), &key)?;
            let json = serde_json::to_string_pretty(&receipt)? + "\n";
            match &a.out {
                Some(path) => {
                    std::fs::write(path, json)
                        .with_context(|| format!("cannot write `{}`", path.display()))?;
                    printer.status(
                        "Issued",
                        format!("{} → {}", receipt.statement, path.display()),
                    );
                    Ok(())
                }
                None => {
                    print!("{json}");
                    Ok(())
                }
            }
        }
        ReceiptCommand::Verify(a) => {
            let vkey = read_vkey(&a.vkey)?;
            let v = verify_file(&a.file, &vkey, a.member)?;
            let out = VerifiedJson {
                verified: true,
                statement: v.statement(),
                member_id: v.member_id,
                dataset_id: v.dataset_id.clone(),
                included: v.included,
                checkpoint_origin: v.checkpoint.origin.clone(),
                checkpoint_size: v.checkpoint.size,
                manifest_sha256: cg_proof::hex(&v.manifest_sha256),
                commitment_root: cg_proof::hex(&v.commitment_root),
            };
            Printer { json: a.json, ..printer }.data(&out, || {
                format!(
                    "verified: {}\n  (manifest {} in checkpoint {} at size {}; member commitment {})\n",
                    out.statement, &out.manifest_sha256[..16], out.checkpoint_origin, out.checkpoint_size, &out.commitment_root[..16]
                )
            })
        }
    }
}
