//! The transparency log in the ledger: entries written with their events, checkpoints, proofs,
//! tiles — and tampering with any stored byte makes `verify` fail naming what.

use cg_ledger::log::{checkpoint, export_tiles, prove, verify};
use cg_ledger::{LedgerError, NewEvent, Store};
use cg_model::{EventId, MemberId, Purpose};
use cg_proof::leaves::Entry;
use cg_proof::note::NoteSigner;
use cg_test_support::instant;

use crate::each_backend;

fn signer() -> NoteSigner {
    NoteSigner::from_seed("consentgate.test/log", &[9u8; 32]).unwrap()
}

fn ev(member: i64, granted: bool, at: &str) -> NewEvent {
    let mut e = NewEvent::new(
        MemberId(member),
        Purpose::genai_training(),
        granted,
        instant(at),
    );
    e.metadata = Some(serde_json::json!({"channel": "web", "weight": 1.5, "gpc": false}));
    e
}

fn problems(e: LedgerError) -> String {
    match e {
        LedgerError::LogInvalid { problems } => problems.join("\n"),
        other => panic!("expected LogInvalid, got {other}"),
    }
}

#[test]
fn every_event_and_manifest_is_logged_checkpointed_and_provable() {
    each_backend(|s: &mut dyn Store| {
        let vkey = signer().verifier_key();
        let stored = s
            .append(&[ev(1, true, "2025-01-01"), ev(2, false, "2025-01-02")])
            .unwrap();
        let mut retry = ev(3, false, "2025-01-03");
        retry.event.event_id = Some(EventId(77));
        s.append(std::slice::from_ref(&retry)).unwrap();
        s.append(std::slice::from_ref(&retry)).unwrap();
        assert_eq!(
            s.log_leaf_hashes().unwrap().len(),
            3,
            "an idempotent retry adds no entry"
        );
        // A conflicting event id writes nothing: neither the event nor its entry.
        let mut conflict = retry.clone();
        conflict.event.granted = true;
        assert!(s.append(&[ev(4, true, "2025-01-04"), conflict]).is_err());
        assert_eq!(s.log_leaf_hashes().unwrap().len(), 3);
        assert_eq!(s.log_unlogged_events().unwrap(), 0);

        let first = checkpoint(s, &signer()).unwrap();
        assert_eq!(first.size, 3);
        assert_eq!(
            checkpoint(s, &signer()).unwrap(),
            first,
            "no growth, no new checkpoint"
        );
        let m = s.log_append_manifest("ds-aa", &[5u8; 32]).unwrap();
        assert_eq!(
            s.log_append_manifest("ds-aa", &[5u8; 32]).unwrap(),
            m,
            "idempotent"
        );
        assert_eq!(
            s.log_manifest_entries("ds-aa").unwrap(),
            vec![(m, [5u8; 32])]
        );
        assert!(s.log_manifest_entries("ds-bb").unwrap().is_empty());
        let second = checkpoint(s, &signer()).unwrap();
        assert_eq!(second.size, 4);
        let report = verify(s, &vkey).unwrap();
        assert_eq!(
            (
                report.size,
                report.events,
                report.manifests,
                report.checkpoints
            ),
            (4, 3, 1, 2)
        );

        // Each event's entry commits to the stored event with its salt; each proof verifies.
        for e in &stored {
            let index = s.log_index_of_event(e.seq).unwrap().unwrap();
            let (back, salt) = s.event_by_seq(e.seq).unwrap().unwrap();
            assert_eq!(&back, e);
            assert_eq!(salt.as_ref().map(Vec::len), Some(16));
            let entry = cg_ledger::log::event_entry(&back, salt.as_deref());
            let proof = prove(s, index).unwrap();
            let cp = proof.verify(&entry.leaf_hash(), &vkey).unwrap();
            assert_eq!(cp.size, 4);
        }
        let proof = prove(s, m).unwrap();
        let manifest = Entry::Manifest {
            dataset_id: "ds-aa".into(),
            sha256: [5u8; 32],
        };
        assert!(proof.verify(&manifest.leaf_hash(), &vkey).is_ok());
        assert!(
            proof
                .verify(
                    &Entry::Manifest {
                        dataset_id: "ds-ab".into(),
                        sha256: [5u8; 32]
                    }
                    .leaf_hash(),
                    &vkey
                )
                .is_err()
        );
        s.append(&[ev(5, true, "2025-01-05")]).unwrap();
        let e = prove(s, 4).unwrap_err().to_string();
        assert!(e.contains("not covered by the latest checkpoint"), "{e}");
        // Another key does not verify the log.
        let other = NoteSigner::from_seed("consentgate.test/log", &[8u8; 32]).unwrap();
        assert!(
            problems(verify(s, &other.verifier_key()).unwrap_err())
                .contains("checkpoint at size 3")
        );
    });
}

#[test]
fn a_dataset_published_twice_has_an_entry_per_manifest() {
    each_backend(|s: &mut dyn Store| {
        let first = s.log_append_manifest("ds-aa", &[5u8; 32]).unwrap();
        let second = s.log_append_manifest("ds-aa", &[6u8; 32]).unwrap();
        s.log_append_manifest("ds-bb", &[7u8; 32]).unwrap();
        assert_eq!(
            s.log_manifest_entries("ds-aa").unwrap(),
            vec![(first, [5u8; 32]), (second, [6u8; 32])]
        );
        assert!(s.log_manifest_entries("ds-cc").unwrap().is_empty());
    });
}

#[test]
fn tiles_hold_every_hash_and_entry_up_to_the_checkpoint() {
    each_backend(|s: &mut dyn Store| {
        let events: Vec<NewEvent> = (0..300).map(|m| ev(m, m % 2 == 0, "2025-02-01")).collect();
        s.append(&events).unwrap();
        let cp = checkpoint(s, &signer()).unwrap();
        let dir = cg_test_support::tempdir();
        let report = export_tiles(s, dir.path()).unwrap();
        assert_eq!((report.size, report.tiles, report.bundles), (300, 3, 2));
        let note = std::fs::read_to_string(dir.path().join("checkpoint")).unwrap();
        assert_eq!(note, cp.note);
        let t0 = std::fs::read(dir.path().join("tile/0/000")).unwrap();
        let t1 = std::fs::read(dir.path().join("tile/0/001.p/44")).unwrap();
        let hashes = s.log_leaf_hashes().unwrap();
        assert_eq!(t0.len(), 256 * 32);
        assert_eq!(&t1[..32], &hashes[256][..]);
        let top = std::fs::read(dir.path().join("tile/1/000.p/1")).unwrap();
        assert_eq!(&top[..], &cg_proof::root(&hashes[..256])[..]);
        // The first entry bundle decodes into 256 valid entries.
        let bundle = std::fs::read(dir.path().join("tile/entries/000")).unwrap();
        let (mut at, mut n) = (0usize, 0);
        while at < bundle.len() {
            let len = usize::from(u16::from_be_bytes([bundle[at], bundle[at + 1]]));
            assert!(Entry::decode(&bundle[at + 2..at + 2 + len]).is_some());
            at += 2 + len;
            n += 1;
        }
        assert_eq!(n, 256);
    });
}

/// A SQLite ledger with 3 events, a manifest and two checkpoints; then `tamper` runs raw SQL
/// (with the immutability triggers dropped, as an attacker with file access would).
fn tampered(tamper: &str) -> String {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("l.sqlite");
    let mut s = cg_ledger::open(path.to_str().unwrap()).unwrap();
    s.append(&[ev(1, true, "2025-01-01"), ev(2, false, "2025-01-02")])
        .unwrap();
    checkpoint(s.as_mut(), &signer()).unwrap();
    s.append(&[ev(3, false, "2025-01-03")]).unwrap();
    s.log_append_manifest("ds-aa", &[5u8; 32]).unwrap();
    checkpoint(s.as_mut(), &signer()).unwrap();
    verify(s.as_mut(), &signer().verifier_key()).unwrap();
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER consent_events_no_update; DROP TRIGGER consent_events_no_delete;
         DROP TRIGGER log_entries_no_update; DROP TRIGGER log_entries_no_delete;
         DROP TRIGGER log_checkpoints_no_update; DROP TRIGGER log_checkpoints_no_delete;",
    )
    .unwrap();
    conn.execute_batch(tamper).unwrap();
    drop(conn);
    let mut s = cg_ledger::open(path.to_str().unwrap()).unwrap();
    problems(verify(s.as_mut(), &signer().verifier_key()).unwrap_err())
}

#[test]
fn tampering_with_any_stored_byte_is_named() {
    let cases = [
        // One byte of an entry's data (its stored hash now disagrees).
        (
            "UPDATE log_entries SET data = CAST(replace(CAST(data AS TEXT), 'seq 2', 'seq 9') AS BLOB) WHERE idx = 1",
            "entry 1: the stored leaf hash does not match",
        ),
        // The stored leaf hash.
        (
            "UPDATE log_entries SET hash = zeroblob(32) WHERE idx = 2",
            "entry 2: the stored leaf hash does not match",
        ),
        // A consent event rewritten after the fact (objection turned into consent).
        (
            "UPDATE consent_events SET granted = 1 WHERE member_id = 2",
            "entry 1: does not match consent event seq 2",
        ),
        // An event's salt.
        (
            "UPDATE consent_events SET salt = zeroblob(16) WHERE member_id = 3",
            "entry 2: does not match consent event seq 3",
        ),
        // An event deleted with its entry: the checkpoints no longer match.
        (
            "DELETE FROM log_entries WHERE idx = 3",
            "checkpoint at size 4: the log has only 3 entries",
        ),
        // An event inserted without an entry.
        (
            "INSERT INTO consent_events (member_id, purpose, granted, ts, source, recorded_at) VALUES (9, 'genai_training', 1, 0, 'settings', 0)",
            "1 consent event(s) have no log entry",
        ),
        // A checkpoint's note.
        (
            "UPDATE log_checkpoints SET note = replace(note, char(10) || '4' || char(10), char(10) || '5' || char(10)) WHERE size = 4",
            "checkpoint at size 4: no valid signature",
        ),
        // A checkpoint's stored root.
        (
            "UPDATE log_checkpoints SET root = zeroblob(32) WHERE size = 2",
            "checkpoint at size 2: the signed size or root differs",
        ),
    ];
    for (sql, expected) in cases {
        let got = tampered(sql);
        assert!(
            got.contains(expected),
            "after `{sql}`:\n{got}\nexpected: {expected}"
        );
    }
}

#[test]
fn tokens_are_stored_hashed_and_checked() {
    use cg_ledger::tokens::{TokenError, authenticate, issue, parse_ttl};
    each_backend(|s: &mut dyn Store| {
        let (secret, rec) = issue(s, "member", Some(42), None, Some("web".into())).unwrap();
        assert!(secret.starts_with(&format!("cgt_{}_", rec.id)));
        assert_eq!(authenticate(s, &secret).unwrap().member_id, Some(42));
        // Only the hash is stored.
        let stored = s.token_get(&rec.id).unwrap().unwrap();
        assert!(!secret.contains(&cg_proof::hex(&stored.hash)));
        // A changed secret, an unknown id, garbage: all the same error.
        let mut wrong = secret.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(authenticate(s, &wrong), Err(TokenError::Invalid));
        assert_eq!(
            authenticate(s, "cgt_0000000000000000_AAAA"),
            Err(TokenError::Invalid)
        );
        assert_eq!(authenticate(s, "Bearer nonsense"), Err(TokenError::Invalid));
        // Revoked, expired.
        assert!(s.token_revoke(&rec.id, instant("2025-01-01")).unwrap());
        assert!(!s.token_revoke(&rec.id, instant("2025-01-01")).unwrap());
        assert_eq!(authenticate(s, &secret), Err(TokenError::Invalid));
        // An expired token (issued with a lifetime that has run out).
        let secret_bytes = [7u8; 32];
        let old = cg_ledger::tokens::TokenRecord {
            id: "00000000000000aa".into(),
            hash: <sha2::Sha256 as sha2::Digest>::digest(secret_bytes).into(),
            role: "service".into(),
            member_id: None,
            label: None,
            created_at: instant("2025-01-01"),
            expires_at: Some(instant("2025-01-02")),
            revoked_at: None,
        };
        s.token_insert(&old).unwrap();
        let expired = format!(
            "cgt_{}_{}",
            old.id,
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                secret_bytes
            )
        );
        assert_eq!(authenticate(s, &expired), Err(TokenError::Invalid));
        assert_eq!(
            cg_ledger::tokens::valid_record(s, &old.id),
            Err(TokenError::Invalid)
        );
        // Lifetimes out of bounds are refused, not stored.
        assert!(issue(s, "service", None, Some(-1), None).is_err());
        assert!(
            issue(
                s,
                "service",
                None,
                Some(cg_ledger::tokens::MAX_TTL_SECONDS + 1),
                None
            )
            .is_err()
        );
        let (ok, _) = issue(s, "auditor", None, parse_ttl("1d"), None).unwrap();
        assert_eq!(authenticate(s, &ok).unwrap().role, "auditor");
        // Roles and member binding are checked.
        assert!(issue(s, "root", None, None, None).is_err());
        assert!(issue(s, "member", None, None, None).is_err());
        assert!(issue(s, "admin", Some(1), None, None).is_err());
        assert_eq!(s.tokens().unwrap().len(), 3);
        assert_eq!(
            (
                parse_ttl("90d"),
                parse_ttl("12h"),
                parse_ttl("0d"),
                parse_ttl("x")
            ),
            (Some(7_776_000), Some(43_200), None, None)
        );
    });
}

/// `verify` while another connection appends and checkpoints: never a false tamper alarm (a
/// checkpoint signed between reading the entries and reading the checkpoints used to look like
/// "a checkpoint beyond the log").
#[test]
fn verification_during_concurrent_writes_never_reports_a_false_problem() {
    let dir = cg_test_support::tempdir();
    let mut urls = vec![format!("sqlite:{}", dir.path().join("l.sqlite").display())];
    let pg = cg_test_support::PgDatabase::create();
    if let Some(db) = &pg {
        urls.push(db.url().to_owned());
    }
    for url in urls {
        let mut reader = cg_ledger::open(&url).unwrap();
        let vkey = signer().verifier_key();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (url, done) = (url.clone(), done.clone());
            std::thread::spawn(move || {
                let mut w = cg_ledger::open(&url).unwrap();
                for i in 0..150 {
                    w.append(&[ev(i, i % 2 == 0, "2025-01-01")]).unwrap();
                    checkpoint(w.as_mut(), &signer()).unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let mut runs = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || runs == 0 {
            if let Err(e) = verify(reader.as_mut(), &vkey) {
                panic!("run {runs} on {}: {}", reader.backend(), problems(e));
            }
            runs += 1;
        }
        writer.join().unwrap();
        let report = verify(reader.as_mut(), &vkey).unwrap();
        assert_eq!((report.size, report.checkpoints), (150, 150));
    }
}
