//! # cg-build — the dataset build on Apache DataFusion
//!
//! Turns a platform's member content into a training dataset that contains only what the policy
//! allows, with personal data removed, and a record of every decision:
//!
//! 1. member facts (members, residences, notices, erasures, and consent from a file or the
//!    ledger's as-of snapshot) are loaded once;
//! 2. content streams through a DataFusion plan whose UDF decides each row (`cg_gate`: Cedar once
//!    per distinct attribute tuple, then lookups; mentions of excluded members make a row
//!    `include_redacted`), one stream per core, no global sort; the thread reading a stream
//!    fixes each row's verdict and redacts the text of the rows it keeps (the pass: `pass.rs`);
//! 3. kept rows go to `shards/part-NNNNN.parquet` by a keyed hash of the member (one member, one
//!    shard), through per-shard spools that sort by `content_id` and spill past a budget
//!    (`spool.rs`); every row goes to `decisions.parquet` in `content_id` order; the manifest is
//!    written last and the dataset directory is renamed into place (atomic publish).
//!
//! 4. the member commitment (`members.commitment`: by default a roster of salted bits of every
//!    member in the decision record, or with [`KeyScheme::Vrf`] a sorted-interval Merkle tree
//!    over VRF member keys) is written before the manifest, which names its root;
//!    [`verify_dataset`] re-checks every digest and the commitment.
//!
//! Fail closed: a malformed row fails the build (or, with quarantine, is `invalid_record`); an
//! unknown author is `member_unknown`; a Cedar error is `policy_error`.

#![deny(missing_docs)]

pub mod card;
mod cluster;
mod commit_runs;
mod commitment;
mod config;
pub mod decisions;
mod direct;
#[cfg(feature = "ballista")]
pub mod distributed;
mod facts;
pub mod facts_data;
mod facts_runs;
mod gate;
mod impact;
mod key_run;
mod layout;
mod mention_join;
/// The manifest's types (defined in `cg-model`, where every crate that reads datasets finds them).
pub use cg_model::manifest;
mod pass;
mod publish;
mod rebuild;
mod run;
pub mod sink;
pub mod spec;
mod spool;
pub mod store;
mod udf;
mod verify;
mod withdrawal;

use std::path::{Path, PathBuf};

/// A dataset's manifest, written last: a dataset without one is not a dataset.
pub const MANIFEST_FILE: &str = "manifest.json";

pub use commitment::{KeyScheme, MemberCommitment, member_commitment};
pub use config::{
    BuildConfig, ConsentSourceArg, DEFAULT_EXECUTOR_MEMORY_MB, DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_SECS, Engine, FactInputs, MAX_TIMEOUT_SECS, ShardWrites,
};
pub use gate::RowError;
pub use impact::{Change, ImpactConfig, ImpactReport, impact};
pub use layout::{decisions_schema, sha256_file};
pub use manifest::Manifest;
pub use publish::{BuildOutput, INPUTS_FILE, Received};
pub use rebuild::{RebuildOutput, rebuild};
pub use run::build;
pub use verify::{DatasetReport, included_members, verify_dataset};
pub use withdrawal::{DatasetHolding, MemberHolding, dataset_holding};

/// Times from any timestamp or RFC 3339 text (shared by the UDFs and the writer).
pub(crate) fn udf_times(
    a: &arrow::array::ArrayRef,
) -> datafusion::common::Result<Vec<Option<cg_model::Timestamp>>> {
    udf::times_pub(a)
}

/// Why a build stopped. Nothing is published when it does.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An input file violates the contract.
    #[error(transparent)]
    Read(#[from] cg_io::ReadError),
    /// A content file could not be scanned.
    #[error("`{file}`: {message}")]
    Source {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A required column is missing.
    #[error("`{file}`: missing column `{column}`")]
    MissingColumn {
        /// The file.
        file: String,
        /// The column.
        column: String,
    },
    /// A row is malformed.
    #[error("`{file}`: {}column `{column}`: {message}", if *row > 0 { format!("row {row}, ") } else { String::new() })]
    BadRow {
        /// The file.
        file: String,
        /// 1-based row, or 0 when only the content id is known.
        row: u64,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// Anything else about the inputs.
    #[error("{0}")]
    Input(String),
    /// The dataset already exists.
    #[error("the dataset `{}` already exists", .0.display())]
    Exists(PathBuf),
    /// An object on an S3-compatible store could not be read or written.
    #[error("`{url}`: {message}")]
    Store {
        /// The object (or bucket) URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A file-system error.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file could not be recognised, read or written (the cause is kept).
    #[error(transparent)]
    File(#[from] cg_io::IoError),
    /// A member-commitment file (a parent dataset's) could not be decoded.
    #[error("`{}`: {source}", path.display())]
    Commitment {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: cg_proof::commitment::CommitmentError,
    },
    /// The member commitment could not be built or checked.
    #[error("engine: member commitment: {0}")]
    MemberCommitment(#[source] cg_proof::commitment::CommitmentError),
    /// The redaction engine could not be made.
    #[error("engine: {0}")]
    Redact(#[source] cg_redact::RedactError),
    /// The pass's async runtime could not be started.
    #[error("engine: cannot start the pass's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The consent ledger could not be opened or read.
    #[error("ledger: {0}")]
    Ledger(#[source] cg_ledger::LedgerError),
    /// The content could not be scanned by the engine (DataFusion's error, kept as the cause).
    #[error("`{file}`: {source}")]
    Scan {
        /// The content file.
        file: String,
        /// The cause.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// DataFusion failed while planning or running the pass.
    #[error("engine: {0}")]
    DataFusion(#[source] datafusion::error::DataFusionError),
    /// An Arrow kernel failed on the pass's batches.
    #[error("engine: {0}")]
    Arrow(#[source] arrow::error::ArrowError),
    /// A Parquet file of the dataset could not be written or read.
    #[error("engine: {0}")]
    Parquet(#[source] datafusion::parquet::errors::ParquetError),
    /// A JSON document of the dataset (manifest, inputs record) could not be written.
    #[error("engine: {0}")]
    Json(#[source] serde_json::Error),
    /// The Ballista cluster failed or refused the job.
    #[cfg(feature = "ballista")]
    #[error("engine: {0}")]
    Ballista(#[source] ballista_core::error::BallistaError),
    /// The Ballista scheduler could not be reached.
    #[cfg(feature = "ballista")]
    #[error("engine: cannot reach the Ballista scheduler at {url}: {source}")]
    Unreachable {
        /// The scheduler's URL.
        url: String,
        /// The cause.
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// A shard's kept rows could not be assembled (a kept row without a creation time: the
    /// gate never keeps one).
    #[error("engine: kept rows of shard {shard}: {source}")]
    KeptRows {
        /// The shard.
        shard: u32,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// An invariant of the pass did not hold (a bug, never bad input): nothing is published.
    #[error("engine: {0}")]
    Engine(String),
    /// The gate could not be made (a distributed build's executor, or a damaged spec).
    #[error(transparent)]
    Gate(#[from] Box<spec::SpecError>),
    /// A content row the gate cannot decide.
    #[error(transparent)]
    Row(#[from] gate::RowError),
    /// A spill run of the pass could not be written or read back.
    #[error("spill run `{}`: {source}", path.display())]
    Spill {
        /// The run file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// `dataset verify` found problems; each names the file and what is wrong.
    #[error("the dataset `{}` does not verify:\n  - {}", dir.display(), problems.join("\n  - "))]
    Invalid {
        /// The dataset directory.
        dir: PathBuf,
        /// What is wrong, one line each.
        problems: Vec<String>,
    },
}

impl From<datafusion::error::DataFusionError> for BuildError {
    fn from(e: datafusion::error::DataFusionError) -> BuildError {
        BuildError::DataFusion(e)
    }
}

impl From<arrow::error::ArrowError> for BuildError {
    fn from(e: arrow::error::ArrowError) -> BuildError {
        BuildError::Arrow(e)
    }
}

impl From<datafusion::parquet::errors::ParquetError> for BuildError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> BuildError {
        BuildError::Parquet(e)
    }
}

impl From<cg_proof::commitment::CommitmentError> for BuildError {
    fn from(e: cg_proof::commitment::CommitmentError) -> BuildError {
        BuildError::MemberCommitment(e)
    }
}

impl From<cg_redact::RedactError> for BuildError {
    fn from(e: cg_redact::RedactError) -> BuildError {
        BuildError::Redact(e)
    }
}

impl From<serde_json::Error> for BuildError {
    fn from(e: serde_json::Error) -> BuildError {
        BuildError::Json(e)
    }
}

#[cfg(feature = "ballista")]
impl From<ballista_core::error::BallistaError> for BuildError {
    fn from(e: ballista_core::error::BallistaError) -> BuildError {
        BuildError::Ballista(e)
    }
}

impl BuildError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> BuildError {
        BuildError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The same error, naming `to` wherever it named `from` or a file under it (a local copy
    /// of an object, or of a dataset on a store, names the object).
    pub(crate) fn renamed(self, from: &Path, to: &Path) -> BuildError {
        let swap = |p: PathBuf| match p.strip_prefix(from) {
            Ok(rest) if rest.as_os_str().is_empty() => to.to_owned(),
            Ok(rest) => to.join(rest),
            Err(_) => p,
        };
        let swap_text =
            |s: String| s.replace(&from.display().to_string(), &to.display().to_string());
        match self {
            BuildError::Read(e) => BuildError::Read(e.renamed(from, to)),
            BuildError::Io { path, source } => BuildError::Io {
                path: swap(path),
                source,
            },
            BuildError::Source { file, message } => BuildError::Source {
                file: swap_text(file),
                message: swap_text(message),
            },
            BuildError::MissingColumn { file, column } => BuildError::MissingColumn {
                file: swap_text(file),
                column,
            },
            BuildError::BadRow {
                file,
                row,
                column,
                message,
            } => BuildError::BadRow {
                file: swap_text(file),
                row,
                column,
                message: swap_text(message),
            },
            BuildError::Input(m) => BuildError::Input(swap_text(m)),
            BuildError::Invalid { dir, problems } => BuildError::Invalid {
                dir: swap(dir),
                problems: problems.into_iter().map(swap_text).collect(),
            },
            other => other,
        }
    }
}

pub(crate) fn engine_error(file: &Path, e: datafusion::error::DataFusionError) -> BuildError {
    BuildError::Scan {
        file: file.display().to_string(),
        source: e,
    }
}
