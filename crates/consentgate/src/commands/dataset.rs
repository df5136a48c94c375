//! `consentgate dataset verify`: a published dataset against its manifest.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::commands::keys::KeyArgs;
use crate::printer::Printer;

/// `dataset` subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Check every shard's hash and row count, the decision record and the member commitment
    /// against the manifest (with --key, also recompute the commitment from the decisions).
    Verify(VerifyArgs),
}

/// Arguments of `dataset verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The dataset directory, or a dataset on an S3-compatible store
    /// (`s3://bucket/prefix/<dataset_id>`, read through it).
    pub dir: PathBuf,
    /// Recompute the member commitment with this log key (the operator's check).
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `dataset` subcommand.
pub fn run(cmd: DatasetCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        DatasetCommand::Verify(a) => {
            let key = KeyArgs::load_optional(&a.key)?;
            let report = cg_build::verify_dataset(&a.dir, key.as_ref().map(|k| &k.member_keys))?;
            Printer {
                json: a.json,
                ..printer
            }
            .data(&report, || {
                format!(
                    "dataset {} verifies: {} shards, {} rows, {} members committed{}\n",
                    report.dataset_id,
                    report.shards,
                    report.rows,
                    report.members,
                    if report.commitment_recomputed {
                        " (recomputed from the decisions)"
                    } else {
                        ""
                    }
                )
            })
        }
    }
}
