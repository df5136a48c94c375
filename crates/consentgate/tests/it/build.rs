//! `consentgate build`: determinism, atomic publish, and no excluded content in any shard,
//! checked against the raw inputs with a reference of its own (not the build's decisions).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMicrosecondType};
use cg_model::{Jurisdiction, Timestamp};

use crate::util::{consentgate, read_parquet, stderr, stdout};

pub(crate) fn corpus() -> (cg_test_support::TempDir, BTreeMap<String, PathBuf>) {
    crate::util::corpus_files(3_000, 30_000)
}

pub(crate) fn build(
    files: &BTreeMap<String, PathBuf>,
    as_of: &str,
    out: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let args = build_args(files, as_of, out, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = consentgate(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// The arguments of [`build`]: every input of the corpus, 8 shards, JSON out.
pub(crate) fn build_args(
    files: &BTreeMap<String, PathBuf>,
    as_of: &str,
    out: &Path,
    extra: &[&str],
) -> Vec<String> {
    let p = |t: &str| files[t].to_str().unwrap().to_owned();
    let mut args: Vec<String> = vec![
        "build".into(),
        "--members".into(),
        p("members"),
        "--content".into(),
        p("content"),
        "--consent".into(),
        p("consent"),
        "--residences".into(),
        p("residences"),
        "--notices".into(),
        p("notices"),
        "--erasures".into(),
        p("erasures"),
        "--as-of".into(),
        as_of.into(),
        "--out".into(),
        out.to_str().unwrap().into(),
        "--shards".into(),
        "8".into(),
        "--json".into(),
        "-q".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn same_inputs_give_identical_shards_decisions_and_manifest() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let a = build(&files, "2025-03-01", &out.path().join("a"), &[]);
    // A small memory budget changes where the pass spills, never what it writes.
    let b = build(
        &files,
        "2025-03-01",
        &out.path().join("b"),
        &["--memory-mb", "64"],
    );
    let strip = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("created_at");
        v
    };
    assert_eq!(strip(a.clone()), strip(b));
    let dir = out.path().join("a").join(a["dataset_id"].as_str().unwrap());
    for s in a["shards"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(s["file"].as_str().unwrap())).unwrap();
        assert_eq!(
            format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            s["sha256"].as_str().unwrap()
        );
    }
    // Every content row has exactly one decision.
    let decisions: usize = read_parquet(&dir.join("decisions.parquet"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(decisions, 30_000);
    assert_eq!(
        a["totals"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        30_000
    );
    // Re-publishing the same dataset is refused.
    let o = consentgate(&[
        "build",
        "--members",
        files["members"].to_str().unwrap(),
        "--content",
        files["content"].to_str().unwrap(),
        "--consent",
        files["consent"].to_str().unwrap(),
        "--residences",
        files["residences"].to_str().unwrap(),
        "--notices",
        files["notices"].to_str().unwrap(),
        "--erasures",
        files["erasures"].to_str().unwrap(),
        "--as-of",
        "2025-03-01",
        "--out",
        out.path().join("a").to_str().unwrap(),
        "--shards",
        "8",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

/// The reference: what must never be in a shard, judged from the raw inputs.
/// Country, birth date and closure of a member.
type MemberRow = (Option<String>, Option<time::Date>, Option<Timestamp>);

struct Reference {
    content: HashMap<i64, (i64, String, Timestamp)>,
    members: HashMap<i64, MemberRow>,
    residences: HashMap<i64, Vec<(Timestamp, Option<String>)>>,
    opted_out: HashSet<i64>,
    erased: HashMap<i64, Timestamp>,
}

fn reference(files: &BTreeMap<String, PathBuf>, as_of: Timestamp) -> Reference {
    let mut r = Reference {
        content: HashMap::new(),
        members: HashMap::new(),
        residences: HashMap::new(),
        opted_out: HashSet::new(),
        erased: HashMap::new(),
    };
    for b in read_parquet(&files["content"]) {
        let (id, m, k, t) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_primitive::<TimestampMicrosecondType>(),
        );
        for i in 0..b.num_rows() {
            r.content.insert(
                id.value(i),
                (
                    m.value(i),
                    k.value(i).to_owned(),
                    Timestamp::from_micros(t.value(i)),
                ),
            );
        }
    }
    for b in read_parquet(&files["members"]) {
        let (id, c, bd, closed) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_string::<i32>(),
            b.column(2).as_primitive::<Date32Type>(),
            b.column(4).as_primitive::<TimestampMicrosecondType>(),
        );
        for i in 0..b.num_rows() {
            r.members.insert(
                id.value(i),
                (
                    c.is_valid(i).then(|| c.value(i).to_owned()),
                    bd.is_valid(i)
                        .then(|| cg_model::instant::days_to_date(bd.value(i)).unwrap()),
                    closed
                        .is_valid(i)
                        .then(|| Timestamp::from_micros(closed.value(i))),
                ),
            );
        }
    }
    for b in read_parquet(&files["residences"]) {
        let (id, c, t) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_string::<i32>(),
            b.column(2).as_primitive::<TimestampMicrosecondType>(),
        );
        for i in 0..b.num_rows() {
            r.residences.entry(id.value(i)).or_default().push((
                Timestamp::from_micros(t.value(i)),
                c.is_valid(i).then(|| c.value(i).to_owned()),
            ));
        }
    }
    // Any withdrawal, objection or GPC signal for genai_training up to the cut-off: the member
    // is treated as an objector here (stricter than the fold, so a re-grant may hide nothing).
    let mut last: HashMap<i64, (Timestamp, bool)> = HashMap::new();
    for b in read_parquet(&files["consent"]) {
        let (m, p, g, t) = (
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_boolean(),
            b.column(4).as_primitive::<TimestampMicrosecondType>(),
        );
        for i in 0..b.num_rows() {
            let ts = Timestamp::from_micros(t.value(i));
            if p.value(i) == "genai_training" && ts <= as_of {
                let e = last.entry(m.value(i)).or_insert((ts, g.value(i)));
                if ts >= e.0 {
                    *e = (ts, g.value(i));
                }
                if !g.value(i) {
                    r.opted_out.insert(m.value(i));
                }
            }
        }
    }
    // Members whose latest choice is a grant after an opt-out are not objectors at the cut-off.
    for (m, (_, granted)) in last {
        if granted {
            r.opted_out.remove(&m);
        }
    }
    for b in read_parquet(&files["erasures"]) {
        let (m, t) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<TimestampMicrosecondType>(),
        );
        for i in 0..b.num_rows() {
            r.erased
                .insert(m.value(i), Timestamp::from_micros(t.value(i)));
        }
    }
    r
}

fn suspended_2024_09(code: Option<&str>) -> bool {
    match Jurisdiction::normalize(code) {
        Err(_) => true,
        Ok(j) => {
            let country = j.country();
            let c = country.as_str();
            cg_model::jurisdiction::EU_27.contains(&c)
                || [
                    "IS", "LI", "NO", "CH", "GB", "GI", "JE", "GG", "IM", "CA", "HK",
                ]
                .contains(&c)
        }
    }
}

#[test]
fn no_excluded_content_appears_in_any_shard() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let as_of = Timestamp::parse("2025-03-01").unwrap();
    let m = build(&files, "2025-03-01", out.path(), &[]);
    let dir = out.path().join(m["dataset_id"].as_str().unwrap());
    let r = reference(&files, as_of);
    let excluded_kinds = [
        "message",
        "salary",
        "credential",
        "payment",
        "job_application",
    ];
    let mut checked = 0;
    for s in m["shards"].as_array().unwrap() {
        for b in read_parquet(&dir.join(s["file"].as_str().unwrap())) {
            assert_eq!(
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>(),
                ["content_id", "kind", "created_at", "text"]
            );
            let ids = b.column(0).as_primitive::<Int64Type>();
            let texts = b.column(3).as_string::<i32>();
            for i in 0..b.num_rows() {
                let id = ids.value(i);
                let (member, kind, created) = &r.content[&id];
                let (country, birth, closed) = r
                    .members
                    .get(member)
                    .unwrap_or_else(|| panic!("content {id}: unknown author in a shard"));
                assert!(
                    !excluded_kinds.contains(&kind.as_str()),
                    "content {id}: kind {kind}"
                );
                assert!(*created <= as_of, "content {id}: after the cut-off");
                let at_creation = r
                    .residences
                    .get(member)
                    .and_then(|h| {
                        h.iter()
                            .filter(|(t, _)| t <= created)
                            .max_by_key(|(t, _)| *t)
                            .map(|(_, c)| c.clone())
                    })
                    .unwrap_or(country.clone());
                let at_cutoff = r
                    .residences
                    .get(member)
                    .and_then(|h| {
                        h.iter()
                            .filter(|(t, _)| *t <= as_of)
                            .max_by_key(|(t, _)| *t)
                            .map(|(_, c)| c.clone())
                    })
                    .unwrap_or(country.clone());
                assert!(
                    !suspended_2024_09(at_creation.as_deref())
                        && !suspended_2024_09(at_cutoff.as_deref()),
                    "content {id}: suspended region {at_creation:?}/{at_cutoff:?}"
                );
                assert!(
                    !r.opted_out.contains(member),
                    "content {id}: member {member} opted out"
                );
                let birth =
                    birth.unwrap_or_else(|| panic!("content {id}: author without birth date"));
                assert!(
                    cg_model::age::age_at(birth, *created) >= 18
                        && cg_model::age::age_at(birth, as_of) >= 18,
                    "content {id}: minor"
                );
                assert!(
                    closed.is_none_or(|c| c > as_of)
                        && r.erased.get(member).is_none_or(|e| *e > as_of),
                    "content {id}: erased"
                );
                assert!(
                    !texts.value(i).contains('@') || texts.value(i).contains("<"),
                    "content {id}: unredacted address"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1_000, "only {checked} shard rows");
}

#[test]
fn a_killed_build_publishes_nothing() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let p = |t: &str| files[t].to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .env("CG_DATA_DIR", crate::util::data_dir())
        .args([
            "build",
            "--members",
            &p("members"),
            "--content",
            &p("content"),
            "--consent",
            &p("consent"),
            "--as-of",
            "2025-12-01",
            "--out",
            out.path().to_str().unwrap(),
            "-q",
        ])
        .spawn()
        .unwrap();
    // Kill only once the build is writing its temporary dataset, so the test proves that a
    // half-written build publishes nothing (not merely that an unstarted one doesn't).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let writing = loop {
        let partial = std::fs::read_dir(out.path())
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().contains(".partial-"))
            })
            .unwrap_or(false);
        if partial || std::time::Instant::now() > deadline {
            break partial;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    child.kill().unwrap();
    assert!(writing, "the build never started writing");
    child.wait().unwrap();
    for entry in walk(out.path()) {
        assert!(
            !entry.ends_with("manifest.json"),
            "a killed build left {}",
            entry.display()
        );
        assert!(
            !entry
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("ds-"),
            "a killed build published {}",
            entry.display()
        );
    }
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn missing_columns_and_bad_flags_fail_clearly() {
    let (_c, files) = corpus();
    let dir = cg_test_support::tempdir();
    let bad = dir.path().join("content.csv");
    std::fs::write(
        &bad,
        "content_id,member_id,created_at,text\n1,1,2025-01-01,hi\n",
    )
    .unwrap();
    let o = consentgate(&[
        "build",
        "--members",
        files["members"].to_str().unwrap(),
        "--content",
        bad.to_str().unwrap(),
        "--consent",
        files["consent"].to_str().unwrap(),
        "--as-of",
        "2025-03-01",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("missing column `kind`") && stderr(&o).contains("content.csv"),
        "{}",
        stderr(&o)
    );
    assert!(
        !dir.path()
            .join("o")
            .read_dir()
            .is_ok_and(|mut d| d.any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("ds-")))
    );
    let o = consentgate(&[
        "build",
        "--members",
        "m.parquet",
        "--content",
        "c.parquet",
        "--as-of",
        "never",
        "--out",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let mut args = build_args(&files, "2025-03-01", &dir.path().join("o"), &[]);
    args.extend(["--memory-mb".to_owned(), "10".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = consentgate(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("10 MiB is outside 64..=1048576"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_user_policy_file_drives_the_build() {
    let (_c, files) = corpus();
    let dir = cg_test_support::tempdir();
    let policy = dir.path().join("no-us.cedar");
    std::fs::write(
        &policy,
        "@id(\"no-us/region_suspended\")\n@reason(\"region_suspended\")\nforbid (principal, action == Action::\"train\", resource)\nwhen { principal.country == \"US\" };\n",
    )
    .unwrap();
    let m = build(
        &files,
        "2025-03-01",
        &dir.path().join("o"),
        &["--policy", policy.to_str().unwrap()],
    );
    assert_eq!(m["policy"]["name"], "no-us");
    let default = build(&files, "2025-03-01", &dir.path().join("d"), &[]);
    assert_ne!(m["policy"]["hash"], default["policy"]["hash"]);
    let included = |v: &serde_json::Value| v["totals"]["include"].as_u64().unwrap_or(0);
    assert!(
        included(&m) < included(&default),
        "suspending the US must keep fewer rows"
    );
}

#[test]
fn demo_shows_both_regimes_and_never_clears_a_foreign_directory() {
    let dir = cg_test_support::tempdir();
    let demo = dir.path().join("demo");
    for _ in 0..2 {
        let o = consentgate(&[
            "demo",
            "--members",
            "400",
            "--content",
            "4000",
            "--dir",
            demo.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains("Build as of 2025-03-01") && out.contains("Build as of 2025-12-01"),
            "{out}"
        );
        assert!(out.contains("region_suspended"), "{out}");
        assert!(
            out.contains("<EMAIL>") || out.contains("<PHONE>") || out.contains("<URL>"),
            "{out}"
        );
    }
    let foreign = dir.path().join("mine");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep me").unwrap();
    let o = consentgate(&[
        "demo",
        "--members",
        "10",
        "--content",
        "10",
        "--dir",
        foreign.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(foreign.join("precious.txt").exists());
}

#[test]
fn policy_impact_reports_what_a_resumption_changes() {
    let (_c, files) = corpus();
    let p = |t: &str| files[t].to_str().unwrap().to_owned();
    let o = consentgate(&[
        "policy",
        "impact",
        "--from",
        "li-2024-09",
        "--to",
        "li-2025-11",
        "--members",
        &p("members"),
        "--content",
        &p("content"),
        "--consent",
        &p("consent"),
        "--residences",
        &p("residences"),
        "--notices",
        &p("notices"),
        "--erasures",
        &p("erasures"),
        "--as-of",
        "2025-12-01",
        "--json",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["rows"], 30_000);
    assert!(v["rows_changed"].as_u64().unwrap() > 0);
    assert!(v["kept_to"].as_u64().unwrap() > v["kept_from"].as_u64().unwrap());
    let top = &v["changes"][0];
    assert_eq!(top["from_reason"], "region_suspended");
    assert_eq!(top["to_decision"], "include");
    assert!(!top["examples"].as_array().unwrap().is_empty());
}

#[test]
fn a_missing_or_empty_ledger_never_reads_as_nobody_objected() {
    let (_c, files) = corpus();
    let dir = cg_test_support::tempdir();
    let p = |t: &str| files[t].to_str().unwrap().to_owned();
    let missing = format!("sqlite:{}", dir.path().join("typo.sqlite").display());
    let build = |store: &str| {
        consentgate(&[
            "build",
            "--members",
            &p("members"),
            "--content",
            &p("content"),
            "--store",
            store,
            "--as-of",
            "2025-12-01",
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ])
    };
    let o = build(&missing);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no ledger at"), "{}", stderr(&o));
    assert!(
        !dir.path().join("typo.sqlite").exists(),
        "a read must not create a ledger"
    );
    // An existing but empty ledger is refused too.
    let empty = format!("sqlite:{}", dir.path().join("empty.sqlite").display());
    cg_ledger::open(&empty).unwrap();
    let o = build(&empty);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("holds no member facts or consent events"),
        "{}",
        stderr(&o)
    );
    let o = consentgate(&[
        "consent",
        "get",
        "--member",
        "1",
        "--purpose",
        "genai_training",
        "--store",
        &missing,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("hint:"), "{}", stderr(&o));
}

#[test]
fn a_misspelt_purpose_in_the_consent_file_fails_the_build() {
    let (_c, files) = corpus();
    let dir = cg_test_support::tempdir();
    let consent = dir.path().join("consent.csv");
    std::fs::write(&consent, "member_id,purpose,granted,ts\n1,genai_training,true,2025-01-01\n2,genai_trainin,false,2025-01-01\n").unwrap();
    let o = consentgate(&[
        "build",
        "--members",
        files["members"].to_str().unwrap(),
        "--content",
        files["content"].to_str().unwrap(),
        "--consent",
        consent.to_str().unwrap(),
        "--as-of",
        "2025-12-01",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("consent.csv") && err.contains("row 2") && err.contains("genai_trainin"),
        "{err}"
    );
}

#[test]
fn builds_from_the_same_ledger_are_identical() {
    let (_c, files) = corpus();
    let dir = cg_test_support::tempdir();
    let store = format!("sqlite:{}", dir.path().join("l.sqlite").display());
    let o = consentgate(&[
        "consent",
        "import",
        files["consent"].to_str().unwrap(),
        "--store",
        &store,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = |t: &str| files[t].to_str().unwrap().to_owned();
    let run = |out: &str| -> serde_json::Value {
        let o = consentgate(&[
            "build",
            "--members",
            &p("members"),
            "--content",
            &p("content"),
            "--store",
            &store,
            "--as-of",
            "2025-12-01",
            "--out",
            dir.path().join(out).to_str().unwrap(),
            "--json",
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let (a, b) = (run("a"), run("b"));
    assert_eq!(a["dataset_id"], b["dataset_id"]);
    assert_eq!(a["shards"], b["shards"]);
    assert_eq!(
        a["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["table"] == "ledger_snapshot")
            .unwrap()["source"],
        "sqlite"
    );
}

/// `--timings` names each stage's wall time and how many attribute tuples Cedar decided, on
/// stderr, even with `-q`; stdout still holds the manifest alone.
#[test]
fn timings_name_the_stages_and_the_tuples_cedar_decided() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let args = build_args(&files, "2025-03-01", &out.path().join("t"), &["--timings"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = consentgate(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let manifest: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(manifest["dataset_id"].is_string());
    let err = stderr(&o);
    for stage in ["member facts", "compile members", "decide", "write"] {
        assert!(
            err.contains(&format!("timing: {stage}: ")),
            "{stage}: {err}"
        );
    }
    let tuples: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("figure: attribute tuples decided by Cedar: "))
        .unwrap_or_else(|| panic!("no tuple count: {err}"))
        .parse()
        .unwrap();
    // Every row was decided, and 30 000 rows of 3 000 members meet more than one tuple but
    // far fewer than one a row.
    assert!((2..30_000).contains(&tuples), "{tuples}");
}
