//! # cg-test-support — helpers shared by consentgate's tests (dev-only)
//!
//! - [`instant`]: a [`Timestamp`] from a literal, for readable tests;
//! - [`small_corpus`]: a generated corpus in a temporary directory;
//! - [`tempdir`]: a temporary directory removed on drop.
//!
//! Database guards (a uniquely named PostgreSQL database per test) join when the ledger does.

#![deny(missing_docs)]
#![expect(
    clippy::expect_used,
    reason = "test support: a broken fixture should stop the test at once"
)]

use cg_model::Timestamp;
pub use tempfile::TempDir;

/// A [`Timestamp`] from RFC 3339 or a date; panics on a typo (tests only).
pub fn instant(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("test timestamp")
}

/// A fresh temporary directory.
pub fn tempdir() -> TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// A generated corpus of `members` members and `content` items (seed 7) in a temporary
/// directory, in `format`.
pub fn small_corpus(
    members: u64,
    content: u64,
    format: cg_io::Format,
) -> (TempDir, cg_synth::CorpusSummary) {
    let dir = tempdir();
    let cfg = cg_synth::CorpusConfig {
        members,
        content,
        seed: 7,
        format,
    };
    let summary = cg_synth::generate(&cfg, dir.path(), &cg_model::progress::NoProgress)
        .expect("generate corpus");
    (dir, summary)
}
