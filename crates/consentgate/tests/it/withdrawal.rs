//! Issue 9 end to end: after members withdraw or ask for erasure, `impact` names exactly the
//! datasets and shards that held their content (checked against the content input and the shard
//! files), `rebuild` equals a fresh full build and rewrites only the shards that differ, erased
//! members leave no trace in new decision records, and `watch` streams changes with log indices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;

use crate::util::{consentgate, data_dir, decision_rows, read_parquet, stderr, stdout};

const T1: &str = "2027-01-01";
const T2: &str = "2027-02-01";

struct World {
    _corpus: cg_test_support::TempDir,
    out: cg_test_support::TempDir,
    files: BTreeMap<String, PathBuf>,
    store: String,
    erasures: PathBuf,
}

fn world() -> World {
    let (corpus, files) = crate::util::corpus_files(1_200, 9_000);
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
    let erasures = out.path().join("erasures.csv");
    std::fs::write(&erasures, "member_id,ts\n").unwrap();
    World {
        _corpus: corpus,
        out,
        files,
        store,
        erasures,
    }
}

fn build(w: &World, as_of: &str, out: &str) -> PathBuf {
    let f = |t: &str| w.files[t].to_str().unwrap().to_owned();
    let dir = w.out.path().join(out);
    let o = consentgate(&[
        "build",
        "--members",
        &f("members"),
        "--content",
        &f("content"),
        "--store",
        &w.store,
        "--erasures",
        w.erasures.to_str().unwrap(),
        "--as-of",
        as_of,
        "--out",
        dir.to_str().unwrap(),
        "--shards",
        "8",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    only_dataset(&dir)
}

fn only_dataset(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("manifest.json").exists())
        .unwrap()
}

fn rebuild(w: &World, parent: &Path, as_of: &str, out: &str) -> (PathBuf, serde_json::Value) {
    rebuild_with(w, parent, as_of, out, &[])
}

fn rebuild_with(
    w: &World,
    parent: &Path,
    as_of: &str,
    out: &str,
    extra: &[&str],
) -> (PathBuf, serde_json::Value) {
    let f = |t: &str| w.files[t].to_str().unwrap().to_owned();
    let dir = w.out.path().join(out);
    let (members, content) = (f("members"), f("content"));
    let mut args = vec![
        "rebuild",
        "--dataset",
        parent.to_str().unwrap(),
        "--members",
        &members,
        "--content",
        &content,
        "--store",
        &w.store,
        "--erasures",
        w.erasures.to_str().unwrap(),
        "--as-of",
        as_of,
        "--out",
        dir.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = consentgate(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (
        only_dataset(&dir),
        serde_json::from_slice(&o.stdout).unwrap(),
    )
}

/// member → (rows in shards, shards) from a decision record.
fn kept_by_member(dataset: &Path) -> BTreeMap<i64, (u64, BTreeSet<i32>)> {
    let mut m: BTreeMap<i64, (u64, BTreeSet<i32>)> = BTreeMap::new();
    for (_, member, shard) in decision_rows(dataset) {
        if let (Some(member), Some(shard)) = (member, shard) {
            let e = m.entry(member).or_default();
            e.0 += 1;
            e.1.insert(shard);
        }
    }
    m
}

fn shard_hashes(dataset: &Path) -> BTreeMap<String, String> {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dataset.join("manifest.json")).unwrap())
            .unwrap();
    m["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["file"].as_str().unwrap().to_owned(),
                s["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Content ids of a member, from the content input.
fn content_of(w: &World, member: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    for b in read_parquet(&w.files["content"]) {
        let ids = b
            .column_by_name("content_id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        let m = b
            .column_by_name("member_id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        for i in 0..b.num_rows() {
            if m.is_valid(i) && m.value(i) == member {
                out.insert(ids.value(i));
            }
        }
    }
    out
}

fn shard_content_ids(path: &Path) -> BTreeSet<i64> {
    read_parquet(path)
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

#[test]
fn impact_and_rebuild_after_withdrawals_and_an_erasure() {
    let w = world();
    let parent = build(&w, T1, "t1");
    let kept = kept_by_member(&parent);
    // Three members with content in the dataset withdraw between T1 and T2; one asks for erasure.
    let movers: Vec<i64> = kept.keys().copied().step_by(97).take(4).collect();
    for m in &movers[..3] {
        let o = consentgate(&[
            "consent",
            "set",
            "--member",
            &m.to_string(),
            "--purpose",
            "genai_training",
            "--granted",
            "false",
            "--source",
            "objection_form",
            "--at",
            "2027-01-10",
            "--store",
            &w.store,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let erased = movers[3];
    std::fs::write(
        &w.erasures,
        format!("member_id,ts\n{erased},2027-01-15T00:00:00.000000Z\n"),
    )
    .unwrap();

    // impact: exactly the shards holding each member's content, checked against the inputs.
    let o = consentgate(&[
        "impact",
        "--datasets",
        w.out.path().join("t1").to_str().unwrap(),
        "--store",
        &w.store,
        "--key",
        data_dir().join("log.key").to_str().unwrap(),
        "--json",
        "--member",
        &movers[0].to_string(),
        "--member",
        &movers[1].to_string(),
        "--member",
        &movers[2].to_string(),
        "--member",
        &erased.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &report["datasets"][0];
    assert_eq!(d["affected"], true);
    for h in d["members"].as_array().unwrap() {
        let m = h["member_id"].as_i64().unwrap();
        assert!(movers.contains(&m));
        assert_eq!(h["in_commitment"], true);
        let shards: Vec<&str> = h["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(shards.len(), 1, "one member, one shard");
        let held: BTreeSet<i64> = shard_content_ids(&parent.join(shards[0]))
            .intersection(&content_of(&w, m))
            .copied()
            .collect();
        assert_eq!(
            held.len() as u64,
            h["rows"].as_u64().unwrap(),
            "member {m}: rows in {}",
            shards[0]
        );
        assert_eq!(h["rows"].as_u64().unwrap(), kept[&m].0);
        // No other shard holds any of their content.
        for (file, _) in shard_hashes(&parent) {
            if file != shards[0] {
                assert!(shard_content_ids(&parent.join(&file)).is_disjoint(&content_of(&w, m)));
            }
        }
    }
    assert_eq!(d["members"].as_array().unwrap().len(), 4);
    let withdrew: Vec<&serde_json::Value> = report["withdrawals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| !x["withdrew_at"].is_null())
        .collect();
    assert_eq!(withdrew.len(), 3);

    // rebuild as of T2 == full build as of T2, touching only the shards that differ.
    let (rebuilt, manifest) = rebuild(&w, &parent, T2, "t2-rebuild");
    // The same rebuild on a Ballista cluster (its shard filter travels to the executors too)
    // writes the same files; the manifests differ in created_at, engine, and the ledger's log
    // head, which grew by the first rebuild's entry.
    #[cfg(feature = "ballista")]
    {
        let cluster = crate::distributed::cluster(2);
        let (dist, dist_manifest) =
            rebuild_with(&w, &parent, T2, "t2-ballista", &["--engine", &cluster.url]);
        let strip = |m: &serde_json::Value| {
            let mut m = crate::distributed::comparable(m.clone());
            m.as_object_mut().unwrap().remove("ledger_checkpoint");
            m
        };
        assert_eq!(dist_manifest["engine"], "ballista");
        assert_eq!(strip(&dist_manifest), strip(&manifest));
        assert_eq!(
            crate::distributed::files_of(&dist),
            crate::distributed::files_of(&rebuilt)
        );
    }
    let full = build(&w, T2, "t2-full");
    assert_eq!(
        std::fs::read(rebuilt.join("decisions.parquet")).unwrap(),
        std::fs::read(full.join("decisions.parquet")).unwrap()
    );
    let (p, r, f) = (
        shard_hashes(&parent),
        shard_hashes(&rebuilt),
        shard_hashes(&full),
    );
    assert_eq!(r, f, "the same shard contents as a full build");
    let differing: Vec<String> = p
        .iter()
        .filter(|(k, v)| f[*k] != **v)
        .map(|(k, _)| k.clone())
        .collect();
    let changed: Vec<String> = manifest["lineage"]["changed_shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        changed, differing,
        "exactly the shards whose content changed are rewritten"
    );
    for m in &movers {
        let s = format!(
            "shards/part-{:05}.parquet",
            kept[m].1.iter().next().unwrap()
        );
        assert!(changed.contains(&s), "member {m}'s shard {s} is rewritten");
    }
    assert!(changed.len() < p.len(), "some shards are carried over");
    for (file, _) in p.iter().filter(|(k, _)| !changed.contains(k)) {
        assert_eq!(
            std::fs::read(parent.join(file)).unwrap(),
            std::fs::read(rebuilt.join(file)).unwrap(),
            "{file} carried byte for byte"
        );
    }
    assert_eq!(
        manifest["lineage"]["parent"],
        serde_json::Value::String(parent.file_name().unwrap().to_str().unwrap().to_owned())
    );
    // The rebuilt dataset verifies, its commitment recomputed from its decisions.
    let o = consentgate(&[
        "dataset",
        "verify",
        rebuilt.to_str().unwrap(),
        "--key",
        data_dir().join("log.key").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The movers are gone from the rebuilt shards; receipts say so, and say they were in the parent.
    let vkey = stdout(&consentgate(&["keys", "show"])).trim().to_owned();
    for m in &movers {
        let in_rebuilt: BTreeSet<i64> = r
            .keys()
            .flat_map(|f| shard_content_ids(&rebuilt.join(f)))
            .collect();
        assert!(
            in_rebuilt.is_disjoint(&content_of(&w, *m)),
            "member {m} still in the rebuilt shards"
        );
        for (dataset, expected) in [(&rebuilt, "is NOT in"), (&parent, "IS in")] {
            let path = w.out.path().join("r.json");
            let o = consentgate(&[
                "receipt",
                "issue",
                "--dataset",
                dataset.to_str().unwrap(),
                "--member",
                &m.to_string(),
                "--store",
                &w.store,
                "--out",
                path.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            let o = consentgate(&[
                "receipt",
                "verify",
                path.to_str().unwrap(),
                "--vkey",
                &vkey,
                "--member",
                &m.to_string(),
            ]);
            assert!(
                stdout(&o).contains(expected),
                "member {m} in {}: {}{}",
                dataset.display(),
                stdout(&o),
                stderr(&o)
            );
        }
    }
    // The erased member is not in the new decision records at all, by member or content id.
    let erased_content = content_of(&w, erased);
    for dataset in [&rebuilt, &full] {
        for (content, member, _) in decision_rows(dataset) {
            assert_ne!(member, Some(erased));
            assert!(!content.is_some_and(|c| erased_content.contains(&c)));
        }
    }
    // ...while impact still lists the earlier dataset that holds them.
    let o = consentgate(&[
        "impact",
        "--member",
        &erased.to_string(),
        "--datasets",
        w.out.path().join("t1").to_str().unwrap(),
        w.out.path().join("t2-full").to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["affected_datasets"],
        serde_json::json!([parent.file_name().unwrap().to_str().unwrap()])
    );
    assert!(
        report["withdrawals"][0]["erasure_requested_at"].is_null(),
        "the erasure came from a file, not the ledger"
    );
}

#[test]
fn models_trained_before_and_after_a_withdrawal() {
    let w = world();
    let parent = build(&w, T1, "t1");
    let id = parent.file_name().unwrap().to_str().unwrap().to_owned();
    let member = *kept_by_member(&parent).keys().next().unwrap();
    let o = consentgate(&[
        "consent",
        "set",
        "--member",
        &member.to_string(),
        "--purpose",
        "genai_training",
        "--granted",
        "false",
        "--at",
        "2027-01-10",
        "--store",
        &w.store,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let registry = w.out.path().join("models.toml");
    std::fs::write(&registry, format!(
        "[[model]]\nname = \"before\"\ndatasets = [\"{id}\"]\ntrained_at = \"2027-01-05\"\n\n[[model]]\nname = \"after\"\ndatasets = [\"{id}\"]\ntrained_at = \"2027-01-20\"\n\n[[model]]\nname = \"unrelated\"\ndatasets = [\"ds-0000000000000000\"]\ntrained_at = \"2027-01-20\"\n"
    )).unwrap();
    let o = consentgate(&[
        "impact",
        "--member",
        &member.to_string(),
        "--datasets",
        w.out.path().join("t1").to_str().unwrap(),
        "--models",
        registry.to_str().unwrap(),
        "--store",
        &w.store,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "the unrelated model is not listed");
    assert_eq!(models[0]["name"], "before");
    assert_eq!(
        models[0]["withdrawn_before_training"],
        serde_json::json!([])
    );
    assert_eq!(models[1]["name"], "after");
    assert_eq!(
        models[1]["withdrawn_before_training"],
        serde_json::json!([member])
    );
    // A member-ids file works like --member; a bad line is a usage error naming it.
    let ids = w.out.path().join("ids.txt");
    std::fs::write(&ids, format!("member_id\n{member}\n")).unwrap();
    let o = consentgate(&[
        "impact",
        "--members-file",
        ids.to_str().unwrap(),
        "--datasets",
        parent.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A parent built by another consentgate version is not rebuilt incrementally.
    let manifest = parent.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            &format!("\"tool_version\": \"{}\"", env!("CARGO_PKG_VERSION")),
            "\"tool_version\": \"0.0.1\"",
        ),
    )
    .unwrap();
    let out = w.out.path().join("x");
    let rebuild_parent = || {
        consentgate(&[
            "rebuild",
            "--dataset",
            parent.to_str().unwrap(),
            "--as-of",
            T2,
            "--store",
            &w.store,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = rebuild_parent();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("built by consentgate 0.0.1"),
        "{}",
        stderr(&o)
    );
    // Nor one whose member commitment is of a scheme this version does not make.
    let scheme = format!("\"key_scheme\": \"{}\"", cg_proof::roster::ROSTER_SCHEME);
    assert!(text.contains(&scheme), "{text}");
    std::fs::write(
        &manifest,
        text.replace(&scheme, "\"key_scheme\": \"example.org/unknown\""),
    )
    .unwrap();
    let o = rebuild_parent();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("key scheme `example.org/unknown`"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&ids, "12\nabc\n").unwrap();
    let o = consentgate(&[
        "impact",
        "--members-file",
        ids.to_str().unwrap(),
        "--datasets",
        parent.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn watch_streams_changes_with_their_log_index() {
    let w = world();
    let o = consentgate(&["watch", "--once", "--from-index", "0", "--store", &w.store]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["log_index"], i as u64);
        assert_eq!(l["kind"], "consent");
    }
    let end = lines.len();
    let o = consentgate(&[
        "consent",
        "set",
        "--member",
        "7",
        "--purpose",
        "genai_training",
        "--granted",
        "false",
        "--store",
        &w.store,
    ]);
    assert!(o.status.success());
    let o = consentgate(&[
        "watch",
        "--once",
        "--from-index",
        &end.to_string(),
        "--store",
        &w.store,
    ]);
    let l: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (
            l["log_index"].as_u64(),
            l["member_id"].as_i64(),
            l["granted"].as_bool()
        ),
        (Some(end as u64), Some(7), Some(false))
    );
    // Following: a change made while watching appears.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(["watch", "--store", &w.store, "--interval-ms", "50"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = consentgate(&[
        "consent",
        "set",
        "--member",
        "8",
        "--purpose",
        "genai_training",
        "--granted",
        "true",
        "--store",
        &w.store,
    ]);
    assert!(o.status.success());
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let l: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(
        (l["log_index"].as_u64(), l["member_id"].as_i64()),
        (Some(end as u64 + 1), Some(8))
    );
}
