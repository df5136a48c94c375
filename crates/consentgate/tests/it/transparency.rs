//! Issue 7 end to end through the binary: keys, the log, the member commitment, receipts (for
//! included and excluded members, checked against the decision record), and tampering with a
//! receipt, a dataset or the log making verification fail with a message naming what.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::{consentgate, data_dir, decision_rows, stderr, stdout};

struct Built {
    _corpus: cg_test_support::TempDir,
    out: cg_test_support::TempDir,
    dataset: PathBuf,
    store: String,
    vkey: String,
}

/// A corpus imported into a ledger, a key, and one build from the ledger (default key scheme).
fn built() -> Built {
    built_with("roster")
}

/// The same with the member commitment of `scheme` (`roster` or `vrf`).
fn built_with(scheme: &str) -> Built {
    let (corpus, files) = crate::util::corpus_files(1_500, 8_000);
    let out = cg_test_support::tempdir();
    let store = format!("sqlite:{}", out.path().join("ledger.sqlite").display());
    let o = consentgate(&["keys", "init", "--origin", "consentgate.test/log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let vkey = stdout(&o).trim().to_owned();
    assert!(vkey.starts_with("consentgate.test/log+"));
    for t in ["consent", "members"] {
        let o = consentgate(&[
            "consent",
            "import",
            files[t].to_str().unwrap(),
            "--store",
            &store,
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = consentgate(&[
        "build",
        "--members",
        files["members"].to_str().unwrap(),
        "--content",
        files["content"].to_str().unwrap(),
        "--store",
        &store,
        "--as-of",
        "2025-12-01",
        "--out",
        out.path().join("ds").to_str().unwrap(),
        "--shards",
        "4",
        "--key-scheme",
        scheme,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Logged"), "{}", stderr(&o));
    let dataset = std::fs::read_dir(out.path().join("ds"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    Built {
        _corpus: corpus,
        out,
        dataset,
        store,
        vkey,
    }
}

/// Members with content in the decision record: (member, has a row in a shard).
fn members_in(dataset: &Path) -> BTreeMap<i64, bool> {
    let mut m = BTreeMap::new();
    for (_, member, shard) in decision_rows(dataset) {
        if let Some(member) = member {
            *m.entry(member).or_insert(false) |= shard.is_some();
        }
    }
    m
}

fn issue(b: &Built, member: i64) -> PathBuf {
    let path = b.out.path().join(format!("receipt-{member}.json"));
    let o = consentgate(&[
        "receipt",
        "issue",
        "--dataset",
        b.dataset.to_str().unwrap(),
        "--member",
        &member.to_string(),
        "--store",
        &b.store,
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    path
}

fn verify(b: &Built, receipt: &Path, member: Option<i64>) -> std::process::Output {
    let m = member.map(|m| m.to_string());
    let mut args = vec![
        "receipt",
        "verify",
        receipt.to_str().unwrap(),
        "--vkey",
        &b.vkey,
    ];
    if let Some(m) = &m {
        args.extend(["--member", m.as_str()]);
    }
    consentgate(&args)
}

#[test]
fn receipts_state_exactly_what_the_decision_record_says() {
    receipts_match_the_decision_record("roster", cg_proof::roster::ROSTER_SCHEME);
}

#[test]
fn receipts_of_the_vrf_scheme_state_exactly_what_the_decision_record_says() {
    receipts_match_the_decision_record("vrf", cg_proof::member_key::KEY_SCHEME);
}

fn receipts_match_the_decision_record(scheme: &str, key_scheme: &str) {
    let b = built_with(scheme);
    let members = members_in(&b.dataset);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.dataset.join("manifest.json")).unwrap())
            .unwrap();
    let c = &manifest["member_commitment"];
    assert_eq!(c["key_scheme"], key_scheme);
    assert_eq!(
        c["members"].as_u64().unwrap() as usize,
        members.values().filter(|k| **k).count()
    );
    if scheme == "roster" {
        // Every member of the decision record has a leaf, included or not.
        assert_eq!(
            c["roster_members"].as_u64().unwrap() as usize,
            members.len()
        );
    } else {
        assert!(c.get("roster_members").is_none(), "{c}");
    }
    let included: Vec<i64> = members
        .iter()
        .filter(|(_, k)| **k)
        .map(|(m, _)| *m)
        .take(3)
        .collect();
    let excluded: Vec<i64> = members
        .iter()
        .filter(|(_, k)| !**k)
        .map(|(m, _)| *m)
        .take(3)
        .collect();
    assert!(
        included.len() == 3 && excluded.len() == 3,
        "the corpus has both kinds"
    );
    let never_posted = (1..).find(|m| !members.contains_key(m)).unwrap();
    for (member, expected) in included
        .iter()
        .map(|m| (*m, "IS in"))
        .chain(excluded.iter().map(|m| (*m, "is NOT in")))
        .chain([(never_posted, "is NOT in")])
    {
        let r = issue(&b, member);
        let o = verify(&b, &r, Some(member));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).starts_with(&format!("verified: member {member} {expected} dataset ds-")),
            "{}",
            stdout(&o)
        );
        // Another member's id is refused.
        let o = verify(&b, &r, Some(member + 1));
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(&format!("the receipt is for member {member}")),
            "{}",
            stderr(&o)
        );
    }
    // The commitment holds exactly the included members (the operator's check).
    let o = consentgate(&[
        "dataset",
        "verify",
        b.dataset.to_str().unwrap(),
        "--key",
        data_dir().join("log.key").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["members"].as_u64().unwrap() as usize,
        members.values().filter(|k| **k).count()
    );
    assert_eq!(report["commitment_recomputed"], true);
    let o = consentgate(&["log", "verify", "--store", &b.store, "--vkey", &b.vkey]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("1 manifests"), "{}", stdout(&o));
    // The manifest names the ledger's signed log head at the start of the build: every consent
    // event, before the manifest's own entry.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.dataset.join("manifest.json")).unwrap())
            .unwrap();
    let head = &m["ledger_checkpoint"];
    let events = stdout(&consentgate(&[
        "log", "verify", "--store", &b.store, "--vkey", &b.vkey, "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&events).unwrap();
    assert_eq!(head["size"], report["events"], "{head}");
    assert_eq!(head["origin"], "consentgate.test/log");
    assert_eq!(head["root"].as_str().unwrap().len(), 64);
}

/// A change to a receipt's JSON.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn a_tampered_receipt_or_a_foreign_key_fails() {
    tampered_receipts_fail("roster");
}

#[test]
fn a_tampered_receipt_of_the_vrf_scheme_fails() {
    tampered_receipts_fail("vrf");
}

fn tampered_receipts_fail(scheme: &str) {
    let b = built_with(scheme);
    let members = members_in(&b.dataset);
    let excluded = *members.iter().find(|(_, k)| !**k).unwrap().0;
    let included = *members.iter().find(|(_, k)| **k).unwrap().0;
    let r = issue(&b, excluded);
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&r).unwrap()).unwrap();
    assert_eq!(original["included"], false);
    let other = issue(&b, included);
    let other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    let scheme_edits: Vec<(&str, Edit, &str)> = if scheme == "vrf" {
        let other = other.clone();
        vec![
            (
                "another member's key proof",
                Box::new(move |v| {
                    v["member_key"] = other["member_key"].clone();
                    v["member_key_proof"] = other["member_key_proof"].clone();
                }),
                "member key",
            ),
            (
                "a shifted interval",
                Box::new(|v| {
                    v["interval"]["index"] = (v["interval"]["index"].as_u64().unwrap() ^ 1).into()
                }),
                "member commitment",
            ),
        ]
    } else {
        let other = other.clone();
        let other_salt = other["roster"]["salt"].clone();
        vec![
            (
                "another member's position and leaf",
                Box::new(move |v| {
                    v["member_key"] = other["member_key"].clone();
                    v["roster"] = other["roster"].clone();
                }),
                "member key",
            ),
            (
                "another member's salt",
                Box::new(move |v| v["roster"]["salt"] = other_salt.clone()),
                "member commitment",
            ),
            (
                "a shifted leaf",
                Box::new(|v| {
                    let leaf = &mut v["roster"]["leaves"][0];
                    leaf["index"] = (leaf["index"].as_u64().unwrap() ^ 1).into()
                }),
                "member commitment",
            ),
            (
                "the salt withheld (a gap claimed)",
                Box::new(|v| {
                    v["roster"].as_object_mut().unwrap().remove("salt");
                }),
                "member commitment",
            ),
            (
                "no roster proof",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("roster");
                }),
                "roster",
            ),
        ]
    };
    let edits: Vec<(&str, Edit, &str)> = vec![
        (
            "claim inclusion",
            Box::new(|v| v["included"] = true.into()),
            "claims included=true",
        ),
        (
            "another member id",
            Box::new(move |v| v["member_id"] = (excluded + 1).into()),
            "member key",
        ),
        (
            "an edited manifest",
            Box::new(|v| {
                let s = v["manifest"].as_str().unwrap().to_owned();
                v["manifest"] = format!("{}A", &s[..s.len() - 4]).into();
            }),
            "manifest",
        ),
        (
            "an edited log proof",
            Box::new(|v| {
                let s = v["log_proof"]
                    .as_str()
                    .unwrap()
                    .replace("index ", "index 1");
                v["log_proof"] = s.into();
            }),
            "signed log",
        ),
    ];
    for (what, edit, expected) in edits.into_iter().chain(scheme_edits) {
        let mut v = original.clone();
        edit(&mut v);
        let path = b.out.path().join("tampered.json");
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
        let o = verify(&b, &path, None);
        assert!(!o.status.success(), "{what}: verified anyway");
        assert!(stderr(&o).contains(expected), "{what}: {}", stderr(&o));
    }
    // A verifier key of another log.
    let other_key = cg_proof::note::NoteSigner::from_seed("consentgate.test/log", &[1u8; 32])
        .unwrap()
        .verifier_key();
    let o = consentgate(&[
        "receipt",
        "verify",
        r.to_str().unwrap(),
        "--vkey",
        &other_key,
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no valid signature"), "{}", stderr(&o));
}

#[test]
fn dataset_verify_names_the_changed_file() {
    let b = built();
    let d = b.dataset.to_str().unwrap();
    assert!(consentgate(&["dataset", "verify", d]).status.success());
    let flip = |rel: &str, at: usize| {
        let p = b.dataset.join(rel);
        let mut bytes = std::fs::read(&p).unwrap();
        let i = at.min(bytes.len() - 1);
        bytes[i] ^= 1;
        std::fs::write(&p, bytes).unwrap();
    };
    let check = |expected: &str| {
        let o = consentgate(&["dataset", "verify", d]);
        assert!(!o.status.success(), "verified after tampering ({expected})");
        assert!(stderr(&o).contains(expected), "{}", stderr(&o));
    };
    flip("shards/part-00002.parquet", 100);
    check("shards/part-00002.parquet: SHA-256 differs");
    flip("shards/part-00002.parquet", 100);
    flip("members.commitment", 60);
    check("members.commitment: SHA-256 differs");
    flip("members.commitment", 60);
    std::fs::copy(
        b.dataset.join("shards/part-00000.parquet"),
        b.dataset.join("shards/part-00009.parquet"),
    )
    .unwrap();
    check("shards/part-00009.parquet: not listed");
    std::fs::remove_file(b.dataset.join("shards/part-00009.parquet")).unwrap();
    let manifest = std::fs::read_to_string(b.dataset.join("manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    m["shards"][1]["rows"] = (m["shards"][1]["rows"].as_u64().unwrap() + 1).into();
    std::fs::write(
        b.dataset.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
    check("shards/part-00001.parquet: ");
    std::fs::write(b.dataset.join("manifest.json"), &manifest).unwrap();
    assert!(consentgate(&["dataset", "verify", d]).status.success());
    // A changed manifest is no longer the logged one: receipts cannot be issued for it.
    std::fs::write(
        b.dataset.join("manifest.json"),
        manifest.replace("\"quarantine\": false", "\"quarantine\": true"),
    )
    .unwrap();
    let o = consentgate(&[
        "receipt",
        "issue",
        "--dataset",
        d,
        "--member",
        "1",
        "--store",
        &b.store,
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("differs from the manifest logged"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn log_commands_prove_export_and_detect_a_rewritten_checkpoint() {
    let b = built();
    let o = consentgate(&[
        "log", "prove", "--event", "5", "--store", &b.store, "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["index"], 4);
    assert_eq!(v["event"]["seq"], 5);
    assert!(
        v["proof"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1\nindex 4\n")
    );
    // The proof checks out against the event's canonical form, offline.
    let canonical = serde_json::to_string(&v["event"]).unwrap();
    let leaf = cg_proof::leaves::Entry::Event {
        seq: 5,
        commitment: sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            canonical.as_bytes(),
        ))
        .into(),
    };
    let proof = cg_proof::tlog_proof::LogProof::parse(v["proof"].as_str().unwrap()).unwrap();
    proof.verify(&leaf.leaf_hash(), &b.vkey).unwrap();

    let tiles = b.out.path().join("tiles");
    let o = consentgate(&[
        "log",
        "export-tiles",
        tiles.to_str().unwrap(),
        "--store",
        &b.store,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = r["size"].as_u64().unwrap();
    assert!(tiles.join("checkpoint").exists());
    let first = if n >= 256 {
        "tile/0/000".to_owned()
    } else {
        format!("tile/0/000.p/{n}")
    };
    assert_eq!(
        std::fs::read(tiles.join(first)).unwrap().len() as u64,
        n.min(256) * 32
    );

    // New events, a second checkpoint, then one checkpoint's note rewritten in the database.
    let o = consentgate(&[
        "consent",
        "set",
        "--member",
        "1",
        "--purpose",
        "genai_training",
        "--granted",
        "false",
        "--store",
        &b.store,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        consentgate(&["log", "checkpoint", "--store", &b.store])
            .status
            .success()
    );
    let path = b.store.strip_prefix("sqlite:").unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("DROP TRIGGER log_checkpoints_no_update; UPDATE log_checkpoints SET note = replace(note, 'consentgate.test/log' || char(10), 'consentgate.test/log' || char(10) || ' ') WHERE size = (SELECT MIN(size) FROM log_checkpoints);").unwrap();
    drop(conn);
    let o = consentgate(&["log", "verify", "--store", &b.store, "--vkey", &b.vkey]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checkpoint at size"), "{}", stderr(&o));
}

#[test]
fn keys_init_is_private_and_never_overwrites() {
    let o = consentgate(&["keys", "init", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let path = PathBuf::from(info["key_file"].as_str().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // The data directory it made for the key is private too.
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
    let before = std::fs::read(&path).unwrap();
    let o = consentgate(&["keys", "init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let o = consentgate(&["keys", "show"]);
    assert_eq!(stdout(&o).trim(), info["verifier_key"].as_str().unwrap());
}

#[test]
fn the_exported_member_key_is_private_never_overwritten_and_cannot_sign() {
    let o = consentgate(&["keys", "init", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dir = cg_test_support::tempdir();
    let out = dir.path().join("exec/member.key");
    let o = consentgate(&[
        "keys",
        "export-member-key",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(exported["vrf_public_key"], info["vrf_public_key"]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("consentgate/member-key-secret/v1\n"),
        "{text}"
    );
    // It is not a log key: nothing that signs checkpoints takes it.
    let o = consentgate(&["keys", "show", "--key", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let o = consentgate(&["keys", "export-member-key", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    // An executor refuses a member key others can read, before it connects anywhere.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = consentgate(&[
            "executor",
            "--scheduler",
            "127.0.0.1:1",
            "--member-key",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    }
}

/// A receipt signs a checkpoint only when the latest one does not cover its manifest: new
/// consent events after the build do not make every receipt request sign another.
#[test]
fn receipts_after_new_events_reuse_the_checkpoint_that_covers_the_manifest() {
    let b = built();
    let checkpoints = || -> i64 {
        let path = b.store.strip_prefix("sqlite:").unwrap();
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM log_checkpoints", [], |r| r.get(0))
            .unwrap()
    };
    let first = issue(&b, 1);
    let after_first = checkpoints();
    assert!(after_first >= 1);
    for (member, granted) in [(1, "false"), (2, "true"), (3, "false")] {
        let o = consentgate(&[
            "consent",
            "set",
            "--member",
            &member.to_string(),
            "--purpose",
            "genai_training",
            "--granted",
            granted,
            "--store",
            &b.store,
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let receipt = issue(&b, member + 10);
        assert!(verify(&b, &receipt, Some(member + 10)).status.success());
    }
    assert_eq!(checkpoints(), after_first, "no checkpoint per receipt");
    assert!(verify(&b, &first, Some(1)).status.success());
}
