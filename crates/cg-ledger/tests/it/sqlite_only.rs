//! SQLite specifics: immutability enforced by triggers under raw SQL, durability settings.

#[test]
fn raw_updates_and_deletes_are_refused() {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("l.sqlite");
    let mut s = cg_ledger::open(path.to_str().unwrap()).unwrap();
    s.append(&[cg_ledger::NewEvent::new(
        cg_model::MemberId(1),
        cg_model::Purpose::genai_training(),
        true,
        cg_test_support::instant("2025-01-01"),
    )])
    .unwrap();
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let e = conn
        .execute("UPDATE consent_events SET granted = 0", [])
        .unwrap_err()
        .to_string();
    assert!(e.contains("immutable"), "{e}");
    let e = conn
        .execute("DELETE FROM consent_events", [])
        .unwrap_err()
        .to_string();
    assert!(e.contains("immutable"), "{e}");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
