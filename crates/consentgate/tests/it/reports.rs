//! Issue 20: the evidence documents, from a fixed generated corpus built twice (inside the
//! 2024-09 suspension and after the 2025-11 resumption) with the ledger's log recording both.
//! Every number a document states is recomputed here from the files (shards, decision records,
//! the input files), not through the generator's helpers; golden files pin each document's
//! shape (digests and times filtered). Also: the dataset card is pinned by the manifest, and
//! pyarrow and Hugging Face `datasets` (from a venv `scripts/python-venv.sh` makes) read the
//! shards as published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use crate::util::{consentgate, golden, read_parquet, stderr, stdout};

struct World {
    _corpus: cg_test_support::TempDir,
    out: cg_test_support::TempDir,
    files: BTreeMap<String, PathBuf>,
    store: String,
    /// As of 2025-03-01 (li-2024-09: UK, EU, EEA, CH, CA, HK suspended).
    suspended: PathBuf,
    /// As of 2025-12-01 (li-2025-11: everyone opt-out).
    resumed: PathBuf,
}

fn world() -> World {
    let (corpus, files) = crate::util::corpus_files(300, 2_000);
    let out = cg_test_support::tempdir();
    let store = format!("sqlite:{}", out.path().join("ledger.sqlite").display());
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
    let build = |as_of: &str, name: &str, extra: &[&str]| {
        let dir = out.path().join("datasets");
        let mut args = vec![
            "build",
            "--members",
            files["members"].to_str().unwrap(),
            "--content",
            files["content"].to_str().unwrap(),
            "--store",
            &store,
            "--as-of",
            as_of,
            "--out",
            dir.to_str().unwrap(),
            "--shards",
            "4",
            "--json",
            "-q",
        ];
        args.extend_from_slice(extra);
        let o = consentgate(&args);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        dir.join(m["dataset_id"].as_str().unwrap())
    };
    let suspended = build("2025-03-01", "suspended", &[]);
    let resumed = build("2025-12-01", "resumed", &["--license", "cc-by-4.0"]);
    World {
        _corpus: corpus,
        out,
        files,
        store,
        suspended,
        resumed,
    }
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// What the shards hold, read here: rows and text bytes per kind, placeholders per type.
#[derive(Default, Debug)]
struct Kept {
    rows: u64,
    bytes: u64,
    kinds: BTreeMap<String, (u64, u64)>,
    placeholders: BTreeMap<String, u64>,
    content_ids: Vec<i64>,
}

const TYPES: [&str; 10] = [
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
];

fn kept(dir: &Path) -> Kept {
    let mut k = Kept::default();
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir.join("shards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shards.sort();
    for shard in shards {
        for b in read_parquet(&shard) {
            let ids = b
                .column_by_name("content_id")
                .unwrap()
                .as_primitive::<Int64Type>();
            let kinds = b.column_by_name("kind").unwrap().as_string::<i32>();
            let texts = b.column_by_name("text").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                let (kind, text) = (kinds.value(i), texts.value(i));
                k.rows += 1;
                k.bytes += text.len() as u64;
                let e = k.kinds.entry(kind.to_owned()).or_default();
                e.0 += 1;
                e.1 += text.len() as u64;
                for t in TYPES {
                    let n = text.matches(&format!("<{t}>")).count() as u64;
                    if n > 0 {
                        *k.placeholders.entry(t.to_owned()).or_default() += n;
                    }
                }
                k.content_ids.push(ids.value(i));
            }
        }
    }
    k
}

/// Decisions per decision name, from `decisions.parquet`.
fn decisions(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for b in read_parquet(&dir.join("decisions.parquet")) {
        let d = b.column_by_name("decision").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            *out.entry(d.value(i).to_owned()).or_default() += 1;
        }
    }
    out
}

/// Digests, roots and times differ between runs (log salts, keys, clocks): golden files see
/// them as placeholders.
fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            .count();
        if run >= 32 {
            out.push_str("<hex>");
            i += run;
            continue;
        }
        // RFC 3339 times with a clock part that is not midnight come from clocks.
        if chars[i..].len() >= 20
            && chars[i].is_ascii_digit()
            && chars[i + 4] == '-'
            && chars[i + 10] == 'T'
        {
            let t: String = chars[i..]
                .iter()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '<' | '"' | '|' | ')' | ','))
                .collect();
            if !t.contains("T00:00:00") {
                out.push_str("<time>");
                i += t.chars().count();
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[test]
fn the_dataset_card_describes_the_shards_and_is_pinned_by_the_manifest() {
    let w = world();
    let m = manifest(&w.resumed);
    let card = std::fs::read_to_string(w.resumed.join("README.md")).unwrap();
    let k = kept(&w.resumed);
    // The front matter: what hubs and `datasets` read.
    let front = card
        .strip_prefix("---\n")
        .and_then(|c| c.split_once("\n---\n"))
        .unwrap()
        .0
        .to_owned()
        + "\n";
    assert!(front.contains("license: cc-by-4.0\n"), "{front}");
    assert!(front.contains("    path: shards/*.parquet\n"));
    assert!(
        front.contains(&format!("    num_examples: {}\n", k.rows)),
        "{} rows:\n{front}",
        k.rows
    );
    let size = if k.rows < 1_000 { "n<1K" } else { "1K<n<10K" };
    assert!(front.contains(&format!("size_categories:\n- {size}\n")));
    for f in ["content_id", "kind", "created_at", "text"] {
        assert!(front.contains(&format!("  - name: {f}\n")));
    }
    // The body: purpose, cut-off, policy and hash, the counts recomputed from the files.
    assert!(card.contains("`genai_training`") && card.contains("2025-12-01T00:00:00Z"));
    assert!(card.contains(m["policy"]["hash"].as_str().unwrap()));
    let all: u64 = decisions(&w.resumed).values().sum();
    assert!(card.contains(&format!("| content rows decided | {all} |")));
    assert!(card.contains(&format!("| rows in the shards | {} |", k.rows)));
    assert!(card.contains("consentgate dataset verify"));
    assert!(
        !card.contains(m["created_at"].as_str().unwrap()),
        "the card holds no build time"
    );
    // The manifest pins it.
    assert_eq!(m["card"]["file"], "README.md");
    use sha2::Digest as _;
    let sha: String = sha2::Sha256::digest(card.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(m["card"]["sha256"], sha.as_str());
    assert_eq!(m["license"], "cc-by-4.0");
    let ok = consentgate(&["dataset", "verify", w.resumed.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    // An edited card fails verification, naming it.
    std::fs::write(
        w.resumed.join("README.md"),
        card.replace("cc-by-4.0", "mit"),
    )
    .unwrap();
    let bad = consentgate(&["dataset", "verify", w.resumed.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("README.md: SHA-256 differs"),
        "{}",
        stderr(&bad)
    );
    // A licence that is not a plain id is a usage error.
    let o = consentgate(&[
        "build",
        "--content",
        "x",
        "--as-of",
        "2025-01-01",
        "--out",
        "y",
        "--license",
        "MIT License",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn pyarrow_and_hugging_face_datasets_read_the_shards_as_published() {
    let w = world();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/python-venv.sh");
    let venv = std::process::Command::new(script).output().unwrap();
    assert!(
        venv.status.success(),
        "{}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_owned();
    let hf_home = w.out.path().join("hf");
    let program = r#"
import json, sys
import pyarrow.parquet as pq
from datasets import load_dataset
d = sys.argv[1]
by_card = load_dataset(d, split="train")
by_files = load_dataset("parquet", data_files=d + "/shards/*.parquet", split="train")
table = pq.read_table(d + "/shards")
print(json.dumps({
    "card_rows": by_card.num_rows,
    "card_features": {k: str(v) for k, v in by_card.features.items()},
    "files_rows": by_files.num_rows,
    "pyarrow_rows": table.num_rows,
    "pyarrow_columns": table.column_names,
    "ids": sorted(by_card["content_id"]),
}))
"#;
    let o = std::process::Command::new(&python)
        .args(["-c", program, w.resumed.to_str().unwrap()])
        .env("HF_HOME", &hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    let k = kept(&w.resumed);
    assert!(k.rows > 0);
    assert_eq!(got["card_rows"], k.rows);
    assert_eq!(got["files_rows"], k.rows);
    assert_eq!(got["pyarrow_rows"], k.rows);
    assert_eq!(
        got["pyarrow_columns"],
        serde_json::json!(["content_id", "kind", "created_at", "text"])
    );
    assert_eq!(got["card_features"]["text"], "Value('string')");
    let mut ids = k.content_ids.clone();
    ids.sort_unstable();
    assert_eq!(got["ids"], serde_json::json!(ids));
}

#[test]
fn the_build_report_states_what_the_files_hold() {
    let w = world();
    let out = w.out.path().join("report.html");
    let o = consentgate(&[
        "report",
        "build",
        w.resumed.to_str().unwrap(),
        "--compare",
        w.suspended.to_str().unwrap(),
        "--store",
        &w.store,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(!html.contains("<script"), "no JavaScript");
    assert!(html.contains(r#"id="verify" class="ok""#));
    // Totals from the decision record.
    for (decision, n) in decisions(&w.resumed) {
        assert!(
            html.contains(&format!(
                r#"<tr><td>{decision}</td><td class="n">{n}</td></tr>"#
            )),
            "{decision} {n}"
        );
    }
    // Kinds and bytes from the shards.
    let k = kept(&w.resumed);
    for (kind, (rows, bytes)) in &k.kinds {
        assert!(
            html.contains(&format!(
                r#"<tr><td>{kind}</td><td class="n">{rows}</td><td class="n">{bytes}</td><td class="n">{}</td></tr>"#,
                bytes.div_ceil(4)
            )),
            "{kind}"
        );
    }
    // Placeholders from the shards' text.
    assert!(!k.placeholders.is_empty());
    for (t, n) in &k.placeholders {
        assert!(
            html.contains(&format!(
                r#"<tr><td><code>{t}</code></td><td class="n">{n}</td></tr>"#
            )),
            "{t} {n}"
        );
    }
    // The region table adds up to the decision record, row for row.
    let regions = &manifest(&w.resumed)["rows_by_region"];
    let sum = |f: &str| {
        regions
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[f].as_u64().unwrap())
            .sum::<u64>()
    };
    let d = decisions(&w.resumed);
    for f in ["include", "include_redacted", "exclude"] {
        assert_eq!(sum(f), d.get(f).copied().unwrap_or(0), "{f}");
    }
    // The comparison: the suspension's excluded UK rows are kept after the resumption.
    assert!(html.contains(r#"id="compare-regions""#));
    assert!(html.contains("<code>region_suspended</code>"));
    // The log records the manifest.
    assert!(html.contains(r#"id="log-entry" class="ok""#), "{html}");
    golden("report_build.html", &normalise(&html));
}

#[test]
fn the_ai_act_summary_fills_what_the_records_know_and_marks_the_rest() {
    let w = world();
    let provider = w.out.path().join("provider.toml");
    std::fs::write(
        &provider,
        "[provider]\nname = \"Example Networks Ltd, privacy@example.com\"\n\n[sections.\"2.1\"]\ndescription = \"None.\"\n",
    )
    .unwrap();
    let datasets = w.out.path().join("datasets");
    let run = |format: &str| {
        let o = consentgate(&[
            "report",
            "ai-act-summary",
            "--datasets",
            datasets.to_str().unwrap(),
            "--model",
            "example-gen-2",
            "--provider",
            provider.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let field = |section: &str, name: &str| -> serde_json::Value {
        let s = json["sections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == section)
            .unwrap();
        s["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("{section} {name}"))
            .clone()
    };
    // Volumes from the shards of both datasets.
    let (a, b) = (kept(&w.suspended), kept(&w.resumed));
    let size = field("1.3", "Training data size")["value"].clone();
    assert_eq!(size["rows"], a.rows + b.rows);
    assert_eq!(size["text_bytes"], a.bytes + b.bytes);
    assert_eq!(
        size["tokens_estimated"],
        a.bytes.div_ceil(4) + b.bytes.div_ceil(4)
    );
    assert_eq!(size["range"], "Less than 1 billion tokens");
    // Regions and why: the UK was suspended at the first cut-off, not at the second.
    let regions = field("2.4", "Regions included")["value"].clone();
    let basis = |dataset: &Path, region: &str| -> String {
        let id = dataset.file_name().unwrap().to_str().unwrap();
        regions
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dataset_id"] == id && r["region"] == region)
            .map(|r| r["basis"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(basis(&w.suspended, "UK").contains("suspended"), "{regions}");
    assert!(basis(&w.resumed, "UK").contains("Art 6(1)(f)"), "{regions}");
    // Each region's included and excluded rows add up to the decision record.
    for d in [&w.suspended, &w.resumed] {
        let id = d.file_name().unwrap().to_str().unwrap();
        let rows: u64 = regions
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["dataset_id"] == id)
            .map(|r| r["included_rows"].as_u64().unwrap() + r["excluded_rows"].as_u64().unwrap())
            .sum();
        assert_eq!(rows, decisions(d).values().sum::<u64>());
    }
    // Provider fields are the provider's; the rest is marked, never invented.
    assert_eq!(field("1.1", "Provider name")["source"], "provider");
    assert_eq!(field("2.1", "Description")["source"], "provider");
    let missing = field("3.2", "Measures");
    assert_eq!(missing["source"], "missing");
    assert!(
        missing["value"]
            .as_str()
            .unwrap()
            .starts_with("[to be completed")
    );
    assert_eq!(json["datasets"].as_array().unwrap().len(), 2);
    assert!(
        json["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["verified"] == true)
    );
    golden("ai_act_summary.md", &normalise(&run("md")));
}

#[test]
fn the_processing_record_is_regenerated_from_the_ledger_and_the_log() {
    let w = world();
    let models = w.out.path().join("models.toml");
    let id = w.resumed.file_name().unwrap().to_str().unwrap();
    std::fs::write(
        &models,
        format!("[[model]]\nname = \"gen-2\"\ndatasets = [\"{id}\"]\ntrained_at = \"2025-12-05\"\n\n[[model]]\nname = \"other\"\ndatasets = [\"ds-0000000000000000\"]\ntrained_at = \"2025-12-05\"\n"),
    )
    .unwrap();
    let controller = w.out.path().join("controller.toml");
    std::fs::write(&controller, "[controller]\nname = \"Example Networks Ltd\"\n\n[processing]\nretention = \"Shards: 24 months.\"\n").unwrap();
    let run = |format: &str| {
        let o = consentgate(&[
            "report",
            "processing-record",
            "--purpose",
            "genai_training",
            "--store",
            &w.store,
            "--controller",
            controller.to_str().unwrap(),
            "--datasets",
            w.out.path().join("datasets").to_str().unwrap(),
            "--models",
            models.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let r: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    // Data subjects: the members file.
    let members: usize = read_parquet(&w.files["members"])
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(r["data_subjects"]["members_in_ledger"], members);
    // Consent changes per month add up to the consent file.
    let (mut genai, mut other) = (0u64, 0u64);
    for b in read_parquet(&w.files["consent"]) {
        let p = b.column_by_name("purpose").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            if p.value(i) == "genai_training" {
                genai += 1;
            } else {
                other += 1;
            }
        }
    }
    let months = r["consent_changes"].as_array().unwrap();
    let total = |f: &str| months.iter().map(|m| m[f].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        total("grants") + total("objections") + total("gpc_signals"),
        genai
    );
    assert_eq!(total("other_purposes"), other);
    // Both publications, in log order, and only the model trained on one of them.
    let published: Vec<&str> = r["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["dataset_id"].as_str().unwrap())
        .collect();
    let mut expected = vec![
        w.suspended.file_name().unwrap().to_str().unwrap(),
        w.resumed.file_name().unwrap().to_str().unwrap(),
    ];
    expected.sort();
    let mut sorted = published.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    let names: Vec<&str> = r["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gen-2"]);
    // Supplied and missing fields.
    assert_eq!(r["controller"]["name"]["supplied"], true);
    assert_eq!(r["controller"]["dpo"]["supplied"], false);
    assert_eq!(r["retention"]["value"], "Shards: 24 months.");
    assert_eq!(r["transfers"]["supplied"], false);
    // The regimes of the bundled timeline, with their periods.
    let regimes: Vec<&str> = r["regimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["regime"].as_str().unwrap())
        .collect();
    assert!(
        regimes.contains(&"li-2024-09") && regimes.contains(&"li-2025-11"),
        "{regimes:?}"
    );
    golden("processing_record.md", &normalise(&run("md")));
}
