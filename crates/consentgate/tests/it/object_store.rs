//! Issue 21, object storage: a build reads its inputs from, and publishes its dataset to, an
//! S3-compatible store (moto's server on loopback, started per test) and equals the build from
//! local paths, embedded and on a loopback Ballista cluster; `dataset verify` reads a dataset
//! through the store and catches a damaged object; receipts are issued from a dataset on the
//! store; a published dataset is never overwritten;
//! errors name the object, never a local copy, and a URL with a secret in it is refused without
//! echoing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cg_test_support::S3Server;

use crate::build::{build, build_args, corpus, walk};
use crate::util::{consentgate, consentgate_with, decision_rows, stderr, stdout};

const BUCKET: &str = "cg-datasets";

/// Copies each input file to `inputs/<file name>` on the store; returns the tables' URLs.
fn upload_inputs(s3: &S3Server, files: &BTreeMap<String, PathBuf>) -> BTreeMap<String, PathBuf> {
    files
        .iter()
        .map(|(table, path)| {
            let key = format!("inputs/{}", path.file_name().unwrap().to_str().unwrap());
            s3.put(&key, std::fs::read(path).unwrap());
            (table.clone(), PathBuf::from(s3.url(&key)))
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes))
}

/// A dataset directory's files by relative path with their digests.
fn local_files(dataset: &Path) -> BTreeMap<String, String> {
    walk(dataset)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.strip_prefix(dataset).unwrap().display().to_string(),
                sha256(&std::fs::read(&p).unwrap()),
            )
        })
        .collect()
}

/// A published dataset's objects by path relative to `prefix`, with their digests.
fn remote_files(s3: &S3Server, prefix: &str) -> BTreeMap<String, String> {
    s3.list(prefix)
        .into_iter()
        .map(|key| {
            let bytes = s3.get(&key).unwrap();
            (
                key.strip_prefix(&format!("{prefix}/")).unwrap().to_owned(),
                sha256(&bytes),
            )
        })
        .collect()
}

fn without_created_at(mut manifest: serde_json::Value) -> serde_json::Value {
    let m = manifest.as_object_mut().unwrap();
    m.remove("created_at");
    m.remove("engine");
    manifest
}

/// Builds from the store's inputs to `s3://BUCKET/<out>`, staging in `staging`.
fn build_on_store(
    s3: &S3Server,
    inputs: &BTreeMap<String, PathBuf>,
    out: &str,
    staging: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut extra = extra.to_vec();
    extra.extend(["--staging", staging.to_str().unwrap()]);
    let args = build_args(inputs, "2025-12-01", Path::new(&s3.url(out)), &extra);
    // Not quiet: the build's `Uploaded` line says what it put and copied.
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "-q")
        .collect();
    consentgate_with(&args, &s3.env())
}

/// The published dataset equals the local one object for object (its operator's note of the
/// inputs apart, which names where they were read from), and holds nothing else.
fn assert_same_dataset(
    s3: &S3Server,
    remote: &serde_json::Value,
    local: &serde_json::Value,
    local_out: &Path,
    out: &str,
) {
    assert_eq!(
        without_created_at(remote.clone()),
        without_created_at(local.clone())
    );
    let id = remote["dataset_id"].as_str().unwrap();
    let prefix = format!("{out}/{id}");
    let mut objects = remote_files(s3, &prefix);
    let mut files = local_files(&local_out.join(id));
    // Both manifests differ only in `created_at` (compared above); the store's is the one the
    // build printed.
    let manifest: serde_json::Value =
        serde_json::from_slice(&s3.get(&format!("{prefix}/manifest.json")).unwrap()).unwrap();
    assert_eq!(&manifest, remote);
    let inputs: serde_json::Value =
        serde_json::from_slice(&s3.get(&format!("{prefix}/inputs.json")).unwrap()).unwrap();
    assert_eq!(
        inputs["content"].as_str().unwrap(),
        format!("s3://{BUCKET}/inputs/content.{}", ext_of(local)),
        "{inputs}"
    );
    for name in ["manifest.json", "inputs.json"] {
        assert!(objects.remove(name).is_some(), "{name} not published");
        assert!(
            files.remove(name).is_some(),
            "{name} not in the local dataset"
        );
    }
    assert_eq!(objects, files);
}

/// The build's `Uploaded` line: files this process put, shards copied on the store.
fn uploaded(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("Uploaded "))
        .unwrap_or_else(|| panic!("no `Uploaded` line in {stderr}"));
    let number_before = |what: &str| -> u64 {
        let head = &line[..line.find(what).unwrap_or_else(|| panic!("{line}"))];
        head.split_whitespace().last().unwrap().parse().unwrap()
    };
    (number_before(" files ("), number_before(" shards ("))
}

fn ext_of(manifest: &serde_json::Value) -> String {
    let content = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["table"] == "content")
        .unwrap();
    let source = content["source"].as_str().unwrap();
    source.rsplit('.').next().unwrap().to_owned()
}

#[test]
fn a_build_from_and_to_an_object_store_equals_the_build_from_local_paths() {
    let (_c, files) = corpus();
    let local_out = cg_test_support::tempdir();
    let local = build(&files, "2025-12-01", local_out.path(), &[]);

    let s3 = S3Server::start(BUCKET);
    let inputs = upload_inputs(&s3, &files);
    let staging = cg_test_support::tempdir();
    let o = build_on_store(&s3, &inputs, "datasets", staging.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let remote: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_same_dataset(&s3, &remote, &local, local_out.path(), "datasets");
    // The staging directory is left empty; the inputs' local copies are gone too.
    assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);
    // An embedded build put every file itself, shards included: nothing was copied. (The
    // line counts the files put before the manifest.)
    let (put, copied) = uploaded(&stderr(&o));
    let id = remote["dataset_id"].as_str().unwrap();
    assert_eq!(
        put,
        local_files(&local_out.path().join(id)).len() as u64 - 1
    );
    assert_eq!(copied, 0);

    let dataset = s3.url(&format!("datasets/{id}"));
    let o = consentgate_with(&["dataset", "verify", &dataset], &s3.env());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("dataset {id} verifies")),
        "{}",
        stdout(&o)
    );
    // The build logged the manifest; appending it again from the store finds the same entry.
    let manifest = format!("{dataset}/manifest.json");
    let o = consentgate_with(
        &["log", "append", "--manifest", &manifest, "--json"],
        &s3.env(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let appended: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        appended["manifest_sha256"].as_str().unwrap(),
        sha256(&s3.get(&format!("datasets/{id}/manifest.json")).unwrap())
    );

    // A receipt is issued from the dataset on the store (its manifest and commitment), and
    // verifies offline: for a member with rows in the shards, and for one without.
    let rows = decision_rows(&local_out.path().join(id));
    let included = rows.iter().find_map(|r| r.2.and(r.1)).unwrap();
    let in_shards: std::collections::BTreeSet<i64> =
        rows.iter().filter_map(|r| r.2.and(r.1)).collect();
    let excluded = rows
        .iter()
        .filter_map(|r| r.1)
        .find(|m| !in_shards.contains(m))
        .unwrap();
    let o = consentgate(&["keys", "show"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let vkey = stdout(&o).trim().to_owned();
    for (member, in_it) in [(included, true), (excluded, false)] {
        let receipt = staging.path().join("receipt.json");
        let o = consentgate_with(
            &[
                "receipt",
                "issue",
                "--dataset",
                &dataset,
                "--member",
                &member.to_string(),
                "--out",
                receipt.to_str().unwrap(),
            ],
            &s3.env(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let o = consentgate(&[
            "receipt",
            "verify",
            receipt.to_str().unwrap(),
            "--vkey",
            &vkey,
            "--member",
            &member.to_string(),
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let verified: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(verified["included"], in_it, "member {member}: {verified}");
        assert_eq!(verified["dataset_id"], id);
        std::fs::remove_file(&receipt).unwrap();
    }
    // No dataset at a prefix: the error names it.
    let nowhere = s3.url("datasets/no-such-dataset");
    let o = consentgate_with(
        &[
            "receipt",
            "issue",
            "--dataset",
            &nowhere,
            "--member",
            &included.to_string(),
        ],
        &s3.env(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&nowhere), "{}", stderr(&o));

    // Datasets are immutable: a second build of the same inputs is refused, and nothing it
    // staged or uploaded is left.
    let before = remote_files(&s3, "datasets");
    let o = build_on_store(&s3, &inputs, "datasets", staging.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&dataset), "{}", stderr(&o));
    assert_eq!(remote_files(&s3, "datasets"), before);
    assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);

    // A shard changed on the store fails verification, which names the object.
    let shard = format!("datasets/{id}/shards/part-00000.parquet");
    let mut bytes = s3.get(&shard).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    s3.put(&shard, bytes);
    let o = consentgate_with(&["dataset", "verify", &dataset], &s3.env());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(said.contains("part-00000.parquet"), "{said}");
    assert!(said.contains(&dataset), "{said}");
    assert!(
        !said.contains("consentgate-verify"),
        "names a local copy: {said}"
    );
}

#[test]
fn bad_objects_and_urls_fail_clearly_naming_the_object() {
    let (_c, files) = cg_test_support::small_corpus(200, 1_000, cg_io::Format::Csv);
    let files: BTreeMap<String, PathBuf> = files
        .tables
        .iter()
        .map(|t| (t.table.to_owned(), t.path.clone()))
        .collect();
    let s3 = S3Server::start(BUCKET);
    let inputs = upload_inputs(&s3, &files);
    let staging = cg_test_support::tempdir();

    // A member row that breaks the contract: the error names the object and the row.
    let mut members = std::fs::read_to_string(&files["members"]).unwrap();
    let header = members.lines().next().unwrap().to_owned();
    let columns = header.split(',').count();
    members.push_str(&format!("not-a-number{}\n", ",".repeat(columns - 1)));
    s3.put("inputs/bad-members.csv", members.into_bytes());
    let mut bad = inputs.clone();
    bad.insert(
        "members".into(),
        PathBuf::from(s3.url("inputs/bad-members.csv")),
    );
    let o = build_on_store(&s3, &bad, "datasets", staging.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(
        said.contains("s3://cg-datasets/inputs/bad-members.csv"),
        "{said}"
    );
    assert!(said.contains("member_id"), "{said}");
    assert!(
        !said.contains("consentgate-input"),
        "names a local copy: {said}"
    );

    // CSV content that is not UTF-8, checked as it streams from the store.
    let mut content = std::fs::read(&files["content"]).unwrap();
    content.extend_from_slice(b"999999,1,post,2025-01-01T00:00:00Z,caf\xe9\n");
    s3.put("inputs/latin1.csv", content);
    let mut bad = inputs.clone();
    bad.insert("content".into(), PathBuf::from(s3.url("inputs/latin1.csv")));
    let o = build_on_store(&s3, &bad, "datasets", staging.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(
        said.contains("s3://cg-datasets/inputs/latin1.csv"),
        "{said}"
    );
    assert!(said.contains("not valid UTF-8"), "{said}");

    // A missing object.
    let mut bad = inputs.clone();
    bad.insert("consent".into(), PathBuf::from(s3.url("inputs/nope.csv")));
    let o = build_on_store(&s3, &bad, "datasets", staging.path(), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("s3://cg-datasets/inputs/nope.csv"),
        "{}",
        stderr(&o)
    );

    // Credentials belong in the environment, never in a URL (nor in the error).
    let o = build_on_store(&s3, &inputs, "datasets", staging.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let args = build_args(
        &inputs,
        "2025-12-01",
        Path::new("s3://AKIAEXAMPLE:hunter2@cg-datasets/other"),
        &[],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = consentgate_with(&args, &s3.env());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("AWS_SECRET_ACCESS_KEY"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));

    // Nothing but the one good build was published; no staging is left behind.
    let published: Vec<String> = s3
        .list("datasets")
        .into_iter()
        .filter(|k| k.ends_with("/manifest.json"))
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);
}

#[cfg(feature = "ballista")]
#[test]
fn a_ballista_cluster_reads_and_publishes_through_the_store_like_the_embedded_engine() {
    use crate::distributed::{ExecutorKey, cluster_in};
    let (_c, files) = corpus();
    let local_out = cg_test_support::tempdir();
    let local = build(&files, "2025-12-01", local_out.path(), &[]);

    let s3 = S3Server::start(BUCKET);
    let inputs = upload_inputs(&s3, &files);
    // The executors read the content from the store with their own credentials and put the
    // shards on it; the decision records go into the staging directory (shared with the
    // client: one machine here).
    let cluster = cluster_in(2, ExecutorKey::Builds, &s3.env());
    let staging = cg_test_support::tempdir();
    let o = build_on_store(
        &s3,
        &inputs,
        "cluster",
        staging.path(),
        &["--engine", &cluster.url],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let remote: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(remote["engine"], "ballista");
    assert_same_dataset(&s3, &remote, &local, local_out.path(), "cluster");
    assert_eq!(std::fs::read_dir(staging.path()).unwrap().count(), 0);
    // The executors put every shard with rows on the store; the client copied them in place
    // there and put only the other files (an empty shard is the client's own).
    let id = remote["dataset_id"].as_str().unwrap();
    let with_rows = remote["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["rows"].as_u64().unwrap() > 0)
        .count() as u64;
    assert!(with_rows > 0);
    let (put, copied) = uploaded(&stderr(&o));
    assert_eq!(copied, with_rows, "{}", stderr(&o));
    assert_eq!(
        put,
        local_files(&local_out.path().join(id)).len() as u64 - 1 - with_rows
    );
    // Nothing of the attempts is left on the store: every object is the dataset's.
    let stray: Vec<String> = s3
        .list("cluster")
        .into_iter()
        .filter(|k| !k.starts_with(&format!("cluster/{id}/")))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[cfg(feature = "ballista")]
#[test]
fn an_executor_killed_while_putting_shards_leaves_no_partial_dataset_on_the_store() {
    use std::process::{Command, Stdio};

    use crate::distributed::{ExecutorKey, cluster_in};
    let (_c, files) = crate::util::corpus_files(20_000, 200_000);
    let local_out = cg_test_support::tempdir();
    let local = build(&files, "2025-12-01", local_out.path(), &[]);
    let s3 = S3Server::start(BUCKET);
    let inputs = upload_inputs(&s3, &files);
    // The executors' temporary directory: a task writes the shards it puts on the store in a
    // private directory `consentgate-shards-<pid>-…` there, which names the process to kill.
    let tmp = cg_test_support::tempdir();
    let mut env = s3.env();
    env.push(("TMPDIR".into(), tmp.path().to_str().unwrap().into()));
    let mut cluster = cluster_in(2, ExecutorKey::Builds, &env);
    let putting = || -> Option<u32> {
        std::fs::read_dir(tmp.path()).ok()?.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("consentgate-shards-")?
                .split('-')
                .next()?
                .parse()
                .ok()
        })
    };
    // Each build goes to a prefix of its own (a build that ends before any executor was seen
    // putting a shard is run again).
    let cluster_url = cluster.url.clone();
    let (result, out) = cluster.kill_the_writer(
        |attempt| {
            let out = format!("killed-{attempt}");
            let staging = tmp.path().join(format!("staging-{attempt}"));
            std::fs::create_dir(&staging).unwrap();
            let args = build_args(
                &inputs,
                "2025-12-01",
                Path::new(&s3.url(&out)),
                &[
                    "--engine",
                    &cluster_url,
                    "--staging",
                    staging.to_str().unwrap(),
                ],
            );
            let child = Command::new(env!("CARGO_BIN_EXE_consentgate"))
                .env("NO_COLOR", "1")
                .env("CG_DATA_DIR", crate::util::data_dir())
                .envs(s3.env())
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        },
        |_| putting(),
    );
    let objects = s3.list(&out);
    if result.status.success() {
        // Finished on the surviving executor: the embedded build's dataset, and nothing else
        // under the prefix (the killed attempt's objects went with the attempts' prefix).
        let remote: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        assert_same_dataset(&s3, &remote, &local, local_out.path(), &out);
        let id = remote["dataset_id"].as_str().unwrap();
        let stray: Vec<&String> = objects
            .iter()
            .filter(|k| !k.starts_with(&format!("{out}/{id}/")))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    } else {
        // Failed: with an error, and nothing on the store at all.
        let err = String::from_utf8_lossy(&result.stderr);
        assert!(err.contains("error"), "{err}");
        assert!(objects.is_empty(), "a failed build left {objects:?}");
    }
}
