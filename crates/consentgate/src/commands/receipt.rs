//! `consentgate receipt issue|verify`: a member's proof, checkable offline with only the log's
//! verifier key, that their content is or is not in a dataset.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cg_ledger::Store;
use cg_proof::commitment::{Commitment, Membership, verify_interval};
use cg_proof::receipt::{FORMAT, IntervalJson, Receipt, statement, verify};
use clap::{Args, Subcommand};
use serde::Serialize;
use sha2::{Digest, Sha256};

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
    /// The dataset directory (`…/<dataset_id>/`).
    #[arg(long, value_name = "DIR")]
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

/// Issues a receipt for `member` in the dataset at `dir`, signing a new checkpoint if the latest
/// does not cover the dataset's manifest yet.
pub fn issue(
    dir: &Path,
    member: i64,
    store: &mut dyn Store,
    key: &LogKey,
) -> anyhow::Result<Receipt> {
    let manifest_path = dir.join("manifest.json");
    let manifest_bytes = std::fs::read(&manifest_path)
        .with_context(|| format!("cannot read `{}`", manifest_path.display()))?;
    let manifest: cg_build::Manifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("`{}` is not a dataset manifest", manifest_path.display()))?;
    let c = manifest.member_commitment.as_ref().ok_or_else(|| Hinted {
        message: format!(
            "the dataset {} has no member commitment",
            manifest.dataset_id
        ),
        hint: "it was built before receipts existed; rebuild it".into(),
    })?;
    if c.vrf_public_key != cg_proof::hex(&key.member_keys.public_key()) {
        return Err(Hinted {
            message: format!(
                "the dataset {} was committed with another key",
                manifest.dataset_id
            ),
            hint: "pass the log key the dataset was built with (--key)".into(),
        }
        .into());
    }
    let commitment_path = dir.join(&c.file);
    let tree = Commitment::decode(
        &std::fs::read(&commitment_path)
            .with_context(|| format!("cannot read `{}`", commitment_path.display()))?,
    )
    .with_context(|| format!("`{}`", commitment_path.display()))?;
    if cg_proof::hex(&tree.root()) != c.root {
        anyhow::bail!(
            "`{}` does not match the manifest's commitment root (run `consentgate dataset verify`)",
            commitment_path.display()
        );
    }
    let (member_key, key_proof) = key.member_keys.prove(&c.key_domain, member);
    let interval = tree.prove(&member_key);
    let included = verify_interval(&interval, &member_key, &tree.root())? == Membership::Present;

    let sha: [u8; 32] = Sha256::digest(&manifest_bytes).into();
    let (index, logged) = store
        .log_index_of_manifest(&manifest.dataset_id)?
        .ok_or_else(|| Hinted {
            message: format!("the dataset {} is not in the log", manifest.dataset_id),
            hint: format!(
                "append it: consentgate log append --manifest {}",
                manifest_path.display()
            ),
        })?;
    if logged != sha {
        anyhow::bail!(
            "`{}` differs from the manifest logged for {}",
            manifest_path.display(),
            manifest.dataset_id
        );
    }
    let covered = store
        .log_checkpoints()?
        .last()
        .is_some_and(|cp| cp.size > index);
    if !covered {
        cg_ledger::log::checkpoint(store, &key.signer)?;
    }
    let log_proof = cg_ledger::log::prove(store, index)?;
    Ok(Receipt {
        format: FORMAT.into(),
        statement: statement(member, &manifest.dataset_id, included),
        member_id: member,
        dataset_id: manifest.dataset_id,
        included,
        member_key: cg_proof::hex(&member_key),
        member_key_proof: cg_proof::hex(&key_proof),
        interval: IntervalJson::from(&interval),
        manifest: B64.encode(&manifest_bytes),
        log_proof: log_proof.to_text(),
    })
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
