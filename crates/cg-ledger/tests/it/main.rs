//! cg-ledger's conformance suite: every test runs on SQLite, and on PostgreSQL when
//! `CG_TEST_DATABASE_URL` is set (each test in its own database, dropped afterwards); and on
//! SQLite behind `open_threaded`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod log;
mod sqlite_only;

use cg_ledger::Store;

/// Runs `test` against every available backend.
pub fn each_backend(test: impl Fn(&mut dyn Store)) {
    let dir = cg_test_support::tempdir();
    let mut sqlite =
        cg_ledger::open(&format!("sqlite:{}", dir.path().join("l.sqlite").display())).unwrap();
    test(sqlite.as_mut());
    // The same store behind its own thread (what the service uses for PostgreSQL).
    let mut threaded =
        cg_ledger::open_threaded(&format!("sqlite:{}", dir.path().join("t.sqlite").display()))
            .unwrap();
    assert_eq!(threaded.backend(), "sqlite");
    test(&mut threaded);
    if let Some(db) = cg_test_support::PgDatabase::create() {
        let mut pg = cg_ledger::open(db.url()).unwrap();
        assert_eq!(pg.backend(), "postgres");
        test(pg.as_mut());
    }
}
