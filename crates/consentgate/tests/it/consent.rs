//! `consentgate consent ...` on SQLite and PostgreSQL; durability under SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::util::{consentgate, stderr, stdout};

/// Store URLs to test against: a fresh SQLite file, and PostgreSQL when configured.
fn stores(dir: &std::path::Path) -> (Vec<String>, Option<cg_test_support::PgDatabase>) {
    let mut urls = vec![format!("sqlite:{}", dir.join("ledger.sqlite").display())];
    let pg = cg_test_support::PgDatabase::create();
    if let Some(db) = &pg {
        urls.push(db.url().to_owned());
    }
    (urls, pg)
}

#[test]
fn get_as_of_before_between_and_after_on_every_backend() {
    let dir = cg_test_support::tempdir();
    let (urls, _pg) = stores(dir.path());
    for url in &urls {
        for (granted, at) in [("true", "2025-01-10"), ("false", "2025-06-10")] {
            let o = consentgate(&[
                "consent",
                "set",
                "--member",
                "1",
                "--purpose",
                "genai_training",
                "--granted",
                granted,
                "--at",
                at,
                "--store",
                url,
            ]);
            assert_eq!(o.status.code(), Some(0), "{url}: {}", stderr(&o));
        }
        for (as_of, want) in [
            ("2025-01-01", serde_json::Value::Null),
            ("2025-03-01", true.into()),
            ("2025-07-01", false.into()),
        ] {
            let o = consentgate(&[
                "consent",
                "get",
                "--member",
                "1",
                "--purpose",
                "genai_training",
                "--as-of",
                as_of,
                "--store",
                url,
                "--json",
            ]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert_eq!(v["member"], 1);
            assert_eq!(v["purpose"], "genai_training");
            assert_eq!(v["granted"], want, "{url} as of {as_of}");
            assert_eq!(v["event"].is_null(), want.is_null());
        }
        let o = consentgate(&[
            "consent", "history", "--member", "1", "--store", url, "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
    }
}

#[test]
fn bad_input_is_rejected_and_nothing_is_written() {
    let dir = cg_test_support::tempdir();
    let url = format!("sqlite:{}", dir.path().join("l.sqlite").display());
    for args in [
        &[
            "--member",
            "abc",
            "--purpose",
            "genai_training",
            "--granted",
            "true",
        ][..],
        &[
            "--member",
            "1",
            "--purpose",
            "genai-training",
            "--granted",
            "true",
        ],
        &[
            "--member",
            "1",
            "--purpose",
            "genai_trainin",
            "--granted",
            "true",
        ],
        &[
            "--member",
            "1",
            "--purpose",
            "genai_training",
            "--granted",
            "yes",
        ],
        &[
            "--member",
            "1",
            "--purpose",
            "genai_training",
            "--granted",
            "true",
            "--at",
            "2025-13-01",
        ],
    ] {
        let mut full = vec!["consent", "set"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--store", &url]);
        let o = consentgate(&full);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
    // Usage errors stop before the store is opened: no ledger was even created, and reading
    // a missing ledger is an error, not an empty answer.
    assert!(!dir.path().join("l.sqlite").exists());
    let o = consentgate(&[
        "consent", "history", "--member", "1", "--store", &url, "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn import_and_export_round_trip() {
    let (corpus, summary) = cg_test_support::small_corpus(1_000, 10, cg_io::Format::Csv);
    let dir = cg_test_support::tempdir();
    let (urls, _pg) = stores(dir.path());
    for url in &urls {
        let files: Vec<String> = summary.tables[..5]
            .iter()
            .map(|t| t.path.display().to_string())
            .collect();
        let mut args = vec!["consent", "import", "--store", url, "--json"];
        args.extend(files.iter().map(String::as_str));
        let o = consentgate(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = dir.path().join(format!("snap-{}.parquet", url.len()));
        let o = consentgate(&[
            "consent",
            "export",
            "--purpose",
            "genai_training",
            "--as-of",
            "2025-12-01",
            "--out",
            out.to_str().unwrap(),
            "--store",
            url,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let rows: usize = crate::util::read_parquet(&out)
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(rows > 50, "{rows}");
    }
    drop(corpus);
}

/// Kills a writer with SIGKILL mid-stream: every acknowledged event is present and the store
/// opens cleanly.
#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = cg_test_support::tempdir();
    let path = dir.path().join("crash.sqlite");
    let url = format!("sqlite:{}", path.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args([
            "consent",
            "stress-write",
            "--count",
            "100000",
            "--store",
            &url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        acked = line.trim_start_matches("ack ").parse().unwrap();
        if acked >= 300 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(acked >= 300);
    let store = cg_ledger::SqliteStore::open(&path).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let mut store: Box<dyn cg_ledger::Store> = Box::new(store);
    for id in 1..=acked as i64 {
        assert_eq!(
            store.history(cg_model::MemberId(id)).unwrap().len(),
            1,
            "acknowledged event {id} lost"
        );
    }
}
