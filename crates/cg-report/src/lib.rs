//! # cg-report — the documents people ask for, generated from consentgate's records
//!
//! Regulators, members and model teams ask the same questions after every pause and resumption:
//! what was trained on, on which basis, for whom, and what happened to objections. Every fact
//! needed is already recorded (manifests, decision counts by region, policies with their
//! regimes, the ledger and its signed log); this crate assembles them:
//!
//! - [`build_report`]: one self-contained HTML page per dataset (SVG charts, no JavaScript),
//!   optionally compared with another dataset;
//! - [`ai_act`]: the part of the European Commission's template for the public summary of
//!   training content (AI Act Art 53(1)(d)) that consentgate's records can fill, with the
//!   provider's own fields taken from a TOML file and never invented;
//! - [`processing`]: a GDPR Art 30 record of processing for one purpose;
//! - [`export`]: a member's own data-use record (GDPR Art 15/20) with receipts.
//!
//! Documents never hold a member id other than the requesting member's own (the export), and
//! every number in them is read from a manifest, a shard or the ledger, not estimated, except
//! the token estimate, which says how it was made.

#![deny(missing_docs)]

pub mod ai_act;
pub mod build_report;
pub mod dataset;
pub mod export;
pub mod html;
pub mod processing;
pub mod registry;

use std::path::PathBuf;

pub use dataset::{DatasetFacts, KeptContent};

/// Errors making a document.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("`{path}`: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] cg_ledger::LedgerError),
    /// A policy cannot be made again.
    #[error(transparent)]
    Policy(#[from] cg_policy::PolicyError),
}

impl ReportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> ReportError {
        ReportError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
