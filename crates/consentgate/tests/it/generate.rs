//! `consentgate generate`: the input contract, determinism, formats, ground truth.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use sha2::{Digest, Sha256};

use crate::util::{consentgate, read_parquet, stderr, stdout};

const FILES: [&str; 7] = [
    "members",
    "residences",
    "consent",
    "notices",
    "erasures",
    "content",
    "pii_spans",
];

fn generate(out: &Path, seed: &str, format: &str) {
    let o = consentgate(&[
        "generate",
        "--members",
        "3000",
        "--content",
        "30000",
        "--seed",
        seed,
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn digests(dir: &Path, ext: &str) -> BTreeMap<String, String> {
    FILES
        .iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(format!("{f}.{ext}"))).unwrap();
            (f.to_string(), format!("{:x}", Sha256::digest(bytes)))
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_bytes_other_seed_differs() {
    let dir = cg_test_support::tempdir();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    generate(&a, "7", "parquet");
    generate(&b, "7", "parquet");
    generate(&c, "8", "parquet");
    assert_eq!(digests(&a, "parquet"), digests(&b, "parquet"));
    assert_ne!(
        digests(&a, "parquet")["content"],
        digests(&c, "parquet")["content"]
    );
    // No temporary files are left behind.
    assert!(std::fs::read_dir(&a).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")
    }));
}

#[test]
fn parquet_follows_the_input_contract() {
    let dir = cg_test_support::tempdir();
    generate(dir.path(), "7", "parquet");
    let cols = |f: &str| -> Vec<String> {
        let batches = read_parquet(&dir.path().join(format!("{f}.parquet")));
        batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    };
    assert_eq!(
        cols("members"),
        [
            "member_id",
            "country",
            "birth_date",
            "created_at",
            "closed_at",
            "display_name",
            "handle"
        ]
    );
    assert_eq!(cols("residences"), ["member_id", "country", "valid_from"]);
    assert_eq!(
        cols("consent"),
        [
            "event_id",
            "member_id",
            "purpose",
            "granted",
            "ts",
            "source",
            "notice_version"
        ]
    );
    assert_eq!(
        cols("notices"),
        ["member_id", "notice_version", "delivered_at"]
    );
    assert_eq!(cols("erasures"), ["member_id", "ts"]);
    assert_eq!(
        cols("content"),
        [
            "content_id",
            "member_id",
            "kind",
            "created_at",
            "text",
            "mentions"
        ]
    );

    let members = read_parquet(&dir.path().join("members.parquet"));
    let n: usize = members.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, 3000);
    // Unique, dense member ids.
    let mut ids: Vec<i64> = members
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3000);
    // Edge cases are present: missing country, missing birth date.
    let nulls: usize = members.iter().map(|b| b.column(1).null_count()).sum();
    let no_birth: usize = members.iter().map(|b| b.column(2).null_count()).sum();
    assert!(nulls > 0 && no_birth > 0, "{nulls} {no_birth}");

    // Every kind of content appears.
    let content = read_parquet(&dir.path().join("content.parquet"));
    let mut kinds = std::collections::BTreeSet::new();
    for b in &content {
        let k = b.column(2).as_string::<i32>();
        kinds.extend(k.iter().flatten().map(str::to_owned));
    }
    for k in [
        "post",
        "comment",
        "article",
        "group_message",
        "profile",
        "message",
        "salary",
        "credential",
        "payment",
        "job_application",
    ] {
        assert!(kinds.contains(k), "{k}");
    }
}

#[test]
fn ground_truth_spans_point_at_pii_in_the_text() {
    let dir = cg_test_support::tempdir();
    generate(dir.path(), "11", "parquet");
    let mut texts = BTreeMap::new();
    for b in read_parquet(&dir.path().join("content.parquet")) {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let text = b.column(4).as_string::<i32>();
        for i in 0..b.num_rows() {
            texts.insert(ids.value(i), text.value(i).to_owned());
        }
    }
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    for b in read_parquet(&dir.path().join("pii_spans.parquet")) {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let start = b.column(1).as_primitive::<Int64Type>();
        let end = b.column(2).as_primitive::<Int64Type>();
        let ty = b.column(3).as_string::<i32>();
        for i in 0..b.num_rows() {
            let chars: Vec<char> = texts[&ids.value(i)].chars().collect();
            let value: String = chars[start.value(i) as usize..end.value(i) as usize]
                .iter()
                .collect();
            match ty.value(i) {
                // Plain, or obfuscated as people write it (`name [at] domain [dot] com`).
                "EMAIL" => assert!(
                    (value.contains('@') && !value.starts_with('@'))
                        || value.contains("[at]")
                        || value.contains("(at)"),
                    "{value}"
                ),
                "MENTION" => assert!(value.starts_with('@'), "{value}"),
                "US_SSN" => assert_eq!(value.len(), 11, "{value}"),
                "URL" => assert!(
                    value.starts_with("http") || value.starts_with("www."),
                    "{value}"
                ),
                _ => assert!(!value.trim().is_empty()),
            }
            *per_type.entry(ty.value(i).to_owned()).or_default() += 1;
        }
    }
    for t in [
        "EMAIL",
        "PHONE",
        "URL",
        "IP_ADDRESS",
        "CREDIT_CARD",
        "IBAN_CODE",
        "UK_NINO",
        "US_SSN",
        "MENTION",
        "PERSON",
    ] {
        assert!(
            per_type.get(t).copied().unwrap_or(0) > 0,
            "no {t} in {per_type:?}"
        );
    }
}

#[test]
fn csv_and_jsonl_are_written_too() {
    let dir = cg_test_support::tempdir();
    for fmt in ["csv", "jsonl"] {
        let out = dir.path().join(fmt);
        generate(&out, "7", fmt);
        let content = std::fs::read_to_string(out.join(format!("content.{fmt}"))).unwrap();
        let rows = content.lines().count() - usize::from(fmt == "csv");
        assert_eq!(rows, 30_000, "{fmt}");
        assert_eq!(digests(&out, fmt).len(), 7);
    }
    let header = std::fs::read_to_string(dir.path().join("csv/members.csv")).unwrap();
    assert!(
        header
            .starts_with("member_id,country,birth_date,created_at,closed_at,display_name,handle\n")
    );
}

#[test]
fn json_summary_reports_throughput() {
    let dir = cg_test_support::tempdir();
    let o = consentgate(&[
        "generate",
        "--members",
        "100",
        "--content",
        "500",
        "--out",
        dir.path().to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["tables"].as_array().unwrap().len(), 7);
    assert!(v["rows_per_second"].as_f64().unwrap() > 0.0);
    assert!(stderr(&o).is_empty(), "quiet: {}", stderr(&o));
}
