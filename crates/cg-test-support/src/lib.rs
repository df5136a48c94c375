//! # cg-test-support — helpers shared by consentgate's tests (dev-only)
//!
//! - [`instant`]: a [`Timestamp`] from a literal, for readable tests;
//! - [`small_corpus`]: a generated corpus in a temporary directory;
//! - [`tempdir`]: a temporary directory removed on drop.
//!
//! - [`install_solver`]: makes sure cvc5 runs (policy proofs), installing it if needed;
//! - [`PgDatabase`]: a uniquely named PostgreSQL database for one test, dropped afterwards
//!   (from `CG_TEST_DATABASE_URL`);
//! - [`S3Server`]: moto's S3-compatible server on loopback with a bucket, for object storage.

#![deny(missing_docs)]
#![expect(
    clippy::expect_used,
    reason = "test support: a broken fixture should stop the test at once"
)]

mod s3;

use cg_model::Timestamp;
pub use s3::S3Server;
pub use tempfile::TempDir;

/// A [`Timestamp`] from RFC 3339 or a date; panics on a typo (tests only).
pub fn instant(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("test timestamp")
}

/// Runs `scripts/install-solver.sh` once per test process, which installs Debian's cvc5 when it
/// is missing and checks it runs; panics (the test fails, never skips) when it cannot.
pub fn install_solver() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/install-solver.sh");
        let status = std::process::Command::new("bash")
            .arg(script)
            .status()
            .expect("run scripts/install-solver.sh");
        assert!(
            status.success(),
            "scripts/install-solver.sh failed: policy proofs need cvc5"
        );
    });
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

/// A uniquely named PostgreSQL database, created from `CG_TEST_DATABASE_URL` and dropped (with
/// `FORCE`) when the guard goes out of scope.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// `None` when `CG_TEST_DATABASE_URL` is not set (the caller skips PostgreSQL); panics when
    /// it is set but the server cannot be reached (a CI misconfiguration must fail, not skip).
    pub fn create() -> Option<PgDatabase> {
        let admin_url = std::env::var("CG_TEST_DATABASE_URL").ok()?;
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "cg_test_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)
            .expect("CG_TEST_DATABASE_URL reachable");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url.as_str(), String::new()),
        };
        let prefix = match base.rfind('/') {
            Some(i) if i > base.find("//").map_or(0, |j| j + 1) => &base[..i],
            _ => base,
        };
        let url = format!("{prefix}/{name}{query}");
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// The connection URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
