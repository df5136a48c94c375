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

#[test]
fn concurrent_writers_keep_the_log_gap_free() {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("l.sqlite");
    drop(cg_ledger::open(path.to_str().unwrap()).unwrap());
    let threads: Vec<_> = (0..4i64)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut s = cg_ledger::open(path.to_str().unwrap()).unwrap();
                for i in 0..50 {
                    s.append(&[cg_ledger::NewEvent::new(
                        cg_model::MemberId(t * 1000 + i),
                        cg_model::Purpose::genai_training(),
                        i % 2 == 0,
                        cg_test_support::instant("2025-01-01"),
                    )])
                    .unwrap();
                    if i % 10 == 0 {
                        s.log_append_manifest(&format!("ds-{t}{i}"), &[t as u8; 32])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut s = cg_ledger::open(path.to_str().unwrap()).unwrap();
    let signer = cg_proof::note::NoteSigner::from_seed("consentgate.test/log", &[1u8; 32]).unwrap();
    cg_ledger::log::checkpoint(s.as_mut(), &signer).unwrap();
    let report = cg_ledger::log::verify(s.as_mut(), &signer.verifier_key()).unwrap();
    assert_eq!(
        (report.size, report.events, report.manifests),
        (220, 200, 20)
    );
}

#[test]
fn a_stored_purpose_that_does_not_parse_is_an_error_never_a_default() {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("l.sqlite");
    drop(cg_ledger::open(path.to_str().unwrap()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO consent_events (member_id, purpose, granted, ts, source, recorded_at) VALUES (1, 'Not A Purpose', 0, 0, 'settings', 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let mut s = cg_ledger::open(path.to_str().unwrap()).unwrap();
    let purpose = cg_model::Purpose::genai_training();
    let as_of = cg_test_support::instant("2025-01-01");
    let err = s.facts_as_of(&purpose, as_of).unwrap_err().to_string();
    assert!(err.contains("Not A Purpose"), "{err}");
    let err = s
        .facts_by_member(&purpose, as_of, &mut |_, _| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Not A Purpose"), "{err}");
    let err = s
        .snapshot(&purpose, as_of, &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Not A Purpose"), "{err}");
    assert!(s.history(cg_model::MemberId(1)).is_err());
}

#[cfg(unix)]
#[test]
fn a_new_ledger_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("data/ledger/l.sqlite");
    let mut s = cg_ledger::open(path.to_str().unwrap()).unwrap();
    s.append(&[cg_ledger::NewEvent::new(
        cg_model::MemberId(1),
        cg_model::Purpose::genai_training(),
        true,
        cg_test_support::instant("2025-01-01"),
    )])
    .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "the ledger file");
    assert_eq!(
        mode(path.parent().unwrap()),
        0o700,
        "the directory made for it"
    );
    assert_eq!(
        mode(&dir.path().join("data")),
        0o700,
        "its parent made for it"
    );
    let wal = path.with_extension("sqlite-wal");
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600, "the write-ahead log");
}
