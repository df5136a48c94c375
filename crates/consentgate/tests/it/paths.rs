//! Every path that decides agrees, on the same facts: a build from input files, a build from
//! the ledger alone (`--store`, no member files), the service's decision
//! ([`cg_server::check::decide_as_of`], the code behind `/v1/check` and the auditors'
//! `/v1/audit/decision`) and direct Cedar evaluation of the ledger's facts — over random corpora
//! (residence moves, birthdays around the cut-off, erasures, closures, notices, GPC, other
//! purposes, withdrawals before and after the cut-off) and cut-offs. Plus regression tests for
//! the seams where a path once assembled facts by itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use cg_model::{MemberId, Purpose, ReasonCode, Timestamp, Verdict};
use cg_policy::{Engine, Policy, PolicyConfig};
use cg_server::check::{ActivePolicy, AuditDecisionRequest, decide_as_of};

use crate::util::{consentgate, read_parquet, stderr, stdout};

/// `content_id → (decision, reasons)` of a dataset, and the rows recorded without an id.
fn decisions(dataset: &Path) -> (BTreeMap<i64, (String, Vec<String>)>, usize) {
    let mut out = BTreeMap::new();
    let mut anonymous = 0;
    for b in read_parquet(&dataset.join("decisions.parquet")) {
        let id = b.column(0).as_primitive::<Int64Type>();
        let d = b.column(2).as_string::<i32>();
        let r = b.column(3).as_list::<i32>();
        for i in 0..b.num_rows() {
            if !id.is_valid(i) {
                anonymous += 1;
                continue;
            }
            let reasons = r
                .value(i)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect();
            out.insert(id.value(i), (d.value(i).to_owned(), reasons));
        }
    }
    (out, anonymous)
}

fn build(args: &[&str]) -> (serde_json::Value, PathBuf) {
    let o = consentgate(args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let out = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    let dir = Path::new(out).join(m["dataset_id"].as_str().unwrap());
    (m, dir)
}

/// A verdict without what only the build knows (mentions of excluded members).
fn without_mentions(decision: &str, reasons: &[String]) -> (String, Vec<String>) {
    let rs: Vec<ReasonCode> = reasons
        .iter()
        .filter(|r| *r != "mention_redacted")
        .map(|r| r.parse().unwrap())
        .collect();
    if rs.len() == reasons.len() {
        return (decision.to_owned(), reasons.to_vec());
    }
    let v = Verdict::from_reasons(rs);
    (
        v.decision().as_str().to_owned(),
        v.reasons().iter().map(|r| r.to_string()).collect(),
    )
}

fn run(seed: u64, as_of: &str) {
    let dir = cg_test_support::tempdir();
    let summary = cg_synth::generate(
        &cg_synth::CorpusConfig {
            members: 400,
            content: 3_000,
            seed,
            format: cg_io::Format::Parquet,
        },
        &dir.path().join("c"),
        &cg_model::progress::NoProgress,
    )
    .unwrap();
    let files: BTreeMap<&str, String> = summary
        .tables
        .iter()
        .map(|t| (t.table, t.path.to_str().unwrap().to_owned()))
        .collect();
    let ledger = dir.path().join("ledger.sqlite");
    let url = format!("sqlite:{}", ledger.display());
    {
        let mut store = cg_ledger::open(&url).unwrap();
        for t in ["members", "residences", "notices", "erasures", "consent"] {
            cg_ledger::import_file(
                store.as_mut(),
                Path::new(&files[t]),
                &cg_model::progress::NoProgress,
            )
            .unwrap();
        }
    }
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let common = [
        "--content",
        &files["content"],
        "--as-of",
        as_of,
        "--out",
        out,
        "--shards",
        "4",
        "--json",
        "-q",
    ];
    let mut from_files = vec![
        "build",
        "--members",
        &files["members"],
        "--consent",
        &files["consent"],
    ];
    from_files.extend([
        "--residences",
        &files["residences"],
        "--notices",
        &files["notices"],
    ]);
    from_files.extend(["--erasures", &files["erasures"]]);
    from_files.extend(common);
    let (fm, fdir) = build(&from_files);
    let mut from_ledger = vec!["build", "--store", &url];
    from_ledger.extend(common);
    let (lm, ldir) = build(&from_ledger);

    // 1. File build == ledger build: every decision, every shard byte.
    let (fd, fa) = decisions(&fdir);
    let (ld, la) = decisions(&ldir);
    assert_eq!(fd, ld, "seed {seed}: file and ledger builds decide alike");
    assert_eq!(fa, la);
    assert_eq!(fm["shards"], lm["shards"], "seed {seed}: identical shards");
    assert_eq!(lm["member_sources"]["ledger_only"], 400);

    // 2. The service and direct Cedar on the ledger's facts, row by row.
    let mut store = cg_ledger::open(&url).unwrap();
    let policy = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
    let active = ActivePolicy::new(Policy::bundled("timeline", PolicyConfig::default()).unwrap());
    let as_of_t = Timestamp::parse(as_of).unwrap();
    let engine = Engine::new(
        std::sync::Arc::new(Policy::bundled("timeline", PolicyConfig::default()).unwrap()),
        Purpose::genai_training(),
        as_of_t,
    );
    let mut compared = 0;
    for b in read_parquet(Path::new(&files["content"])) {
        let (id, mem, kind) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
        );
        let created = b.column(3).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let created_at = Timestamp::from_micros(created.value(i));
            let service = decide_as_of(
                store.as_mut(),
                &active,
                &AuditDecisionRequest {
                    member_id: mem.value(i),
                    purpose: "genai_training".into(),
                    as_of: as_of.into(),
                    kind: Some(kind.value(i).to_owned()),
                    created_at: Some(created_at.to_string()),
                },
            )
            .unwrap();
            let facts = store
                .member_facts(MemberId(mem.value(i)), &Purpose::genai_training(), as_of_t)
                .unwrap();
            let direct = policy
                .evaluate_direct(
                    &engine.item(facts.as_ref(), kind.value(i), created_at),
                    &engine.context(),
                )
                .verdict;
            let direct = (
                direct.decision().as_str().to_owned(),
                direct
                    .reasons()
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>(),
            );
            let service = (service.decision, service.reasons);
            assert_eq!(service, direct, "seed {seed}, content {}", id.value(i));
            match fd.get(&id.value(i)) {
                Some((d, r)) => assert_eq!(
                    without_mentions(d, r),
                    direct,
                    "seed {seed}, content {}",
                    id.value(i)
                ),
                // Rows of members who asked for erasure are recorded without an id (whatever
                // else excludes them, e.g. `after_cutoff`).
                None => {
                    let asked = facts
                        .as_ref()
                        .and_then(|f| f.erasure_requested_at)
                        .is_some_and(|t| t <= as_of_t);
                    assert!(
                        asked && direct.0 == "exclude",
                        "content {}: {direct:?}",
                        id.value(i)
                    );
                }
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 3_000);
}

#[test]
fn file_build_ledger_build_service_and_cedar_agree() {
    for (seed, as_of) in [(7, "2025-12-01"), (11, "2025-03-01"), (23, "2026-06-30")] {
        run(seed, as_of);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

/// A tiny corpus as CSV: three US members, one post each.
fn tiny(dir: &Path) -> (String, String) {
    let members = write(
        dir,
        "members.csv",
        "member_id,country,birth_date\n1,US,1990-01-01\n2,US,1990-01-01\n3,GB,1990-01-01\n",
    );
    let content = write(
        dir,
        "content.csv",
        "content_id,member_id,kind,created_at,text\n10,1,post,2025-06-01T00:00:00Z,hello\n20,2,post,2025-06-01T00:00:00Z,hi\n30,3,post,2025-06-01T00:00:00Z,hey\n",
    );
    (members, content)
}

#[test]
fn a_ledger_build_takes_erasures_closures_residences_and_notices_from_the_ledger() {
    let dir = cg_test_support::tempdir();
    let (members, content) = tiny(dir.path());
    let url = format!("sqlite:{}", dir.path().join("l.sqlite").display());
    let mut store = cg_ledger::open(&url).unwrap();
    cg_ledger::import_file(
        store.as_mut(),
        Path::new(&members),
        &cg_model::progress::NoProgress,
    )
    .unwrap();
    // What POST /v1/me/erasure records; a residence move of member 2 into a suspended region
    // before the content was made; a GPC-free grant for member 3 (GB resumes in 2025-11).
    store
        .import(
            &mut [
                Ok(cg_ledger::Record::Erasure(cg_ledger::Erasure {
                    member_id: MemberId(1),
                    ts: Timestamp::parse("2025-09-01").unwrap(),
                })),
                Ok(cg_ledger::Record::Residence(cg_ledger::Residence {
                    member_id: MemberId(2),
                    country: Some("FR".into()),
                    valid_from: Timestamp::parse("2025-01-01").unwrap(),
                })),
            ]
            .into_iter(),
            &cg_model::progress::NoProgress,
        )
        .unwrap();
    drop(store);
    let out = dir.path().join("out");
    // The member file alone says nothing about the erasure or the move: the ledger does.
    let (m, ds) = build(&[
        "build",
        "--members",
        &members,
        "--content",
        &content,
        "--store",
        &url,
        "--as-of",
        "2025-10-01",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    let (d, anonymous) = decisions(&ds);
    assert_eq!(
        anonymous, 1,
        "the erased member's row is recorded without an id: {d:?}"
    );
    assert_eq!(
        d[&20],
        ("exclude".to_owned(), vec!["region_suspended".to_owned()])
    );
    assert_eq!(
        d[&30],
        ("exclude".to_owned(), vec!["region_suspended".to_owned()])
    );
    assert_eq!(m["member_sources"]["merged"], 3, "{m}");
    assert!(
        m["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["table"] == "ledger_snapshot")
    );
}

#[test]
fn other_purposes_are_counted_and_a_misspelt_purpose_fails_naming_both() {
    let dir = cg_test_support::tempdir();
    let (members, content) = tiny(dir.path());
    let consent = write(
        dir.path(),
        "consent.csv",
        "member_id,purpose,granted,ts\n1,ads_personalization,true,2025-01-01T00:00:00Z\n1,research,false,2025-01-01T00:00:00Z\n2,marketing_email,true,2025-01-01T00:00:00Z\n2,genai_training,false,2025-02-01T00:00:00Z\n",
    );
    let out = dir.path().join("out");
    let (m, ds) = build(&[
        "build",
        "--members",
        &members,
        "--content",
        &content,
        "--consent",
        &consent,
        "--as-of",
        "2025-12-01",
        "--out",
        out.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert_eq!(m["ignored_purposes"]["ads_personalization"], 1, "{m}");
    assert_eq!(m["ignored_purposes"]["marketing_email"], 1);
    assert_eq!(m["ignored_purposes"]["research"], 1);
    let (d, _) = decisions(&ds);
    assert_eq!(d[&10].0, "include", "other purposes never decide: {d:?}");
    assert_eq!(d[&20], ("exclude".to_owned(), vec!["opted_out".to_owned()]));

    let typo = write(
        dir.path(),
        "consent2.csv",
        "member_id,purpose,granted,ts\n1,genai_training,true,2025-01-01T00:00:00Z\n2,genai_trainng,false,2025-02-01T00:00:00Z\n",
    );
    let o = consentgate(&[
        "build",
        "--members",
        &members,
        "--content",
        &content,
        "--consent",
        &typo,
        "--as-of",
        "2025-12-01",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("genai_trainng") && err.contains("genai_training") && err.contains("row 2"),
        "{err}"
    );
}
