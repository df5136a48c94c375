//! Issues 10 and 21: a Ballista scheduler and two executors on loopback, started from the built
//! binary, build the same dataset as the embedded engine (shards, decisions, commitment and
//! manifest equal except its creation time and engine), the executors writing the shards and the
//! client receiving only their summaries; an executor killed while it writes a shard either
//! leaves the build to finish on the other (task retry) with the same output, or fails it
//! cleanly with nothing published and no partial file left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::build::{build, build_args, corpus, walk};
use crate::util::{corpus_files, data_dir, free_port};

/// A scheduler and its executors; every process is killed on drop.
pub(crate) struct Cluster {
    scheduler: Child,
    executors: Vec<Child>,
    pub(crate) url: String,
    work: cg_test_support::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `consentgate ARGS` with `env` added; its stderr (the log) goes to `log`, or nowhere.
fn spawn(args: &[&str], log: Option<&Path>, env: &[(String, String)]) -> Child {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(args)
        .env("CG_DATA_DIR", data_dir())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The member-key secret a cluster's executors hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecutorKey {
    /// The one the tests' builds derive member keys with (exported from their log key).
    Builds,
    /// None: the client derives every member key.
    Without,
    /// Another log key's.
    Other,
}

/// A scheduler and `executors` executors holding the builds' member key.
pub(crate) fn cluster(executors: usize) -> Cluster {
    cluster_with(executors, ExecutorKey::Builds)
}

/// Exports the member key of the log key at `log_key` (the builds' when `None`, created if
/// missing) to `out`.
fn export_member_key(log_key: Option<&Path>, out: &Path) {
    let key_args: Vec<&str> = match log_key {
        Some(path) => vec!["--key", path.to_str().unwrap()],
        None => Vec::new(),
    };
    let exists = match log_key {
        Some(path) => path.exists(),
        None => crate::util::consentgate(&["keys", "show"]).status.success(),
    };
    if !exists {
        let mut args = vec!["keys", "init"];
        args.extend(&key_args);
        let o = crate::util::consentgate(&args);
        assert!(o.status.success(), "{}", crate::util::stderr(&o));
    }
    let mut args = vec!["keys", "export-member-key", "--out", out.to_str().unwrap()];
    args.extend(&key_args);
    let o = crate::util::consentgate(&args);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
}

pub(crate) fn cluster_with(executors: usize, key: ExecutorKey) -> Cluster {
    cluster_in(executors, key, &[])
}

/// A cluster whose processes have `env` added to their environment (an object store's).
pub(crate) fn cluster_in(executors: usize, key: ExecutorKey, env: &[(String, String)]) -> Cluster {
    let work = cg_test_support::tempdir();
    let member_key = work.path().join("member.key");
    match key {
        ExecutorKey::Builds => export_member_key(None, &member_key),
        ExecutorKey::Other => {
            export_member_key(Some(&work.path().join("other-log.key")), &member_key)
        }
        ExecutorKey::Without => {}
    }
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let scheduler = spawn(
        &[
            "scheduler",
            "--bind",
            &bind,
            "--executor-timeout",
            "10",
            "--round-robin",
        ],
        Some(&work.path().join("scheduler.log")),
        env,
    );
    wait_listening(port, "the scheduler");
    let executors = (0..executors)
        .map(|i| {
            let (flight, grpc) = (free_port(), free_port());
            let dir = work.path().join(format!("executor-{i}"));
            let log = work.path().join(format!("executor-{i}.log"));
            let (flight_bind, grpc) = (format!("127.0.0.1:{flight}"), grpc.to_string());
            let mut args = vec![
                "executor",
                "--scheduler",
                &bind,
                "--bind",
                &flight_bind,
                "--grpc-port",
                &grpc,
                "--concurrency",
                "2",
                "--work-dir",
                dir.to_str().unwrap(),
                "--heartbeat",
                "1",
            ];
            if key != ExecutorKey::Without {
                args.extend(["--member-key", member_key.to_str().unwrap()]);
            }
            let child = spawn(&args, Some(&log), env);
            wait_listening(flight, "an executor");
            child
        })
        .collect();
    Cluster {
        scheduler,
        executors,
        url: format!("ballista://{bind}"),
        work,
    }
}

impl Cluster {
    /// Kills the executor with process id `pid` (which must be one of the cluster's).
    pub(crate) fn kill_executor(&mut self, pid: u32) {
        let at = self
            .executors
            .iter()
            .position(|c| c.id() == pid)
            .unwrap_or_else(|| panic!("process {pid} is not an executor"));
        let mut victim = self.executors.remove(at);
        victim.kill().unwrap();
        victim.wait().unwrap();
    }

    /// Runs builds (`start(attempt)`: the build's process, and what `writer` looks at) until
    /// `writer` names the executor writing a shard while the build runs — a build that ends
    /// first (a fast machine) is run again, at most five — kills that executor, and waits for
    /// the build to end: bounded, since a build that neither finishes nor fails within 180 s
    /// of losing an executor is a hang (Ballista 55's adaptive planner did that; the client
    /// runs the static one). Says on stderr whether the build completed or failed.
    pub(crate) fn kill_the_writer<T>(
        &mut self,
        mut start: impl FnMut(u32) -> (std::process::Child, T),
        writer: impl Fn(&T) -> Option<u32>,
    ) -> (std::process::Output, T) {
        let mut attempt = 0;
        let (child, watched, killed) = loop {
            attempt += 1;
            let (mut child, watched) = start(attempt);
            let deadline = Instant::now() + Duration::from_secs(120);
            let seen = loop {
                if let Some(pid) = writer(&watched) {
                    break Some(pid);
                }
                if child.try_wait().unwrap().is_some() {
                    break None;
                }
                assert!(
                    Instant::now() < deadline,
                    "the build neither wrote a shard nor ended in 120 s"
                );
                std::thread::sleep(Duration::from_millis(1));
            };
            match seen {
                Some(pid) => break (child, watched, pid),
                None => assert!(
                    attempt < 5,
                    "no executor was seen writing a shard in {attempt} builds"
                ),
            }
        };
        self.kill_executor(killed);
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(180)) {
            Ok(result) => {
                let result = result.unwrap();
                let ended = if result.status.success() {
                    "completed"
                } else {
                    "failed"
                };
                eprintln!("after the executor was killed the build {ended}");
                (result, watched)
            }
            Err(_) => {
                let _ = Command::new("kill").arg(pid.to_string()).status();
                let client = rx
                    .recv_timeout(Duration::from_secs(10))
                    .ok()
                    .and_then(Result::ok)
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .unwrap_or_default();
                panic!(
                    "the build neither finished nor failed within 180 s of losing executor {killed}\n\
                     --- the client's stderr\n{client}{}",
                    self.log_tails(60)
                );
            }
        }
    }

    /// The shards whose member facts each executor compiled, with the member counts its log
    /// gives (`compiled the member facts of shard N: M members`).
    fn facts_loaded(&self) -> Vec<BTreeMap<u32, u64>> {
        self.logged("compiled the member facts of shard ")
    }

    /// The number each executor's log says right after `said`, on every line that has it.
    fn said_numbers(&self, said: &str) -> Vec<u64> {
        (0..self.executors.len())
            .flat_map(|i| {
                let log = self.work.path().join(format!("executor-{i}.log"));
                let text = std::fs::read_to_string(log).unwrap_or_default();
                text.lines()
                    .filter_map(|line| line.split(said).nth(1))
                    .map(|rest| rest.split_once(' ').unwrap().0.parse().unwrap())
                    .collect::<Vec<u64>>()
            })
            .collect()
    }

    /// What each executor's log says after `said` on each line that has it (`said N: M ...`),
    /// as N → M; an N said twice by one executor fails the test.
    fn logged(&self, said: &str) -> Vec<BTreeMap<u32, u64>> {
        (0..self.executors.len())
            .map(|i| {
                let log = self.work.path().join(format!("executor-{i}.log"));
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let mut loaded = BTreeMap::new();
                for line in text.lines() {
                    let Some(rest) = line.split(said).nth(1) else {
                        continue;
                    };
                    let (n, rest) = rest.split_once(": ").unwrap();
                    let m = rest.split_once(' ').unwrap().0;
                    let before = loaded.insert(n.parse().unwrap(), m.parse().unwrap());
                    assert!(before.is_none(), "`{said}{n}` twice by one executor");
                }
                loaded
            })
            .collect()
    }

    /// The last `lines` lines of the scheduler's and each executor's log, for a failure
    /// message.
    pub(crate) fn log_tails(&self, lines: usize) -> String {
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.work.path())
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        let mut out = String::new();
        for log in logs {
            let name = log.file_name().unwrap_or_default().to_string_lossy();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {name} (last {lines} lines)\n"));
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Every file of a dataset by path relative to it, with its SHA-256 (the manifest apart).
pub(crate) fn files_of(dataset: &Path) -> BTreeMap<String, String> {
    walk(dataset)
        .into_iter()
        .filter(|p| p.is_file() && !p.ends_with("manifest.json"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (
                p.strip_prefix(dataset).unwrap().display().to_string(),
                format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            )
        })
        .collect()
}

/// The manifest without the fields a distributed build may change.
pub(crate) fn comparable(mut manifest: serde_json::Value) -> serde_json::Value {
    let m = manifest.as_object_mut().unwrap();
    m.remove("created_at");
    m.remove("engine");
    manifest
}

fn dataset_dir(out: &Path, manifest: &serde_json::Value) -> PathBuf {
    out.join(manifest["dataset_id"].as_str().unwrap())
}

#[test]
fn a_ballista_cluster_builds_the_same_dataset_as_the_embedded_engine() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let embedded = build(&files, "2025-12-01", &out.path().join("embedded"), &[]);
    assert_eq!(embedded["engine"], "datafusion");
    let cluster = cluster(2);
    let distributed = build(
        &files,
        "2025-12-01",
        &out.path().join("ballista"),
        &["--engine", &cluster.url],
    );
    assert_eq!(distributed["engine"], "ballista");
    assert_eq!(
        comparable(distributed.clone()),
        comparable(embedded.clone())
    );
    // Without -q the client says what it received from the cluster: one summary row per file
    // the executors wrote (a shard, or a task's decision records), never the content rows.
    let o = build_loud(
        &files,
        &out.path().join("ballista-loud"),
        &["--engine", &cluster.url],
    );
    let rows: u64 = embedded["totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let said = crate::util::stderr(&o);
    let received: u64 = said
        .lines()
        .find(|l| l.contains("Received"))
        .and_then(|l| l.split(" in ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    let shards = embedded["shard_count"].as_u64().unwrap();
    // Without `?partitions=N` the stages are sized from the content: a small file gets the
    // least, four tasks.
    let tasks: u64 = said
        .lines()
        .find(|l| l.contains("Received"))
        .and_then(|l| l.split("; ").nth(2))
        .and_then(|l| l.strip_suffix(" tasks per stage"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert_eq!(tasks, 4, "{said}");
    // A shard, and per task its records (a roster is made from the decision record: no task
    // derives member keys).
    assert!(
        received > 0 && received <= shards + tasks && received < rows,
        "{received} summary rows for {rows} content rows: {said}"
    );
    assert_eq!(keys_by_executors(&said), 0, "{said}");
    assert_eq!(
        embedded["member_commitment"]["key_scheme"],
        cg_proof::roster::ROSTER_SCHEME
    );
    // Kept rows that mention excluded members are in the corpus (the rule on mentions, which
    // the executors resolve by the narrow join, decides some rows).
    let mention_redacted: u64 = embedded["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["reason"] == "mention_redacted")
        .map(|c| c["rows"].as_u64().unwrap())
        .sum();
    assert!(mention_redacted > 0, "{}", embedded["counts"]);
    let a = files_of(&dataset_dir(&out.path().join("embedded"), &embedded));
    let b = files_of(&dataset_dir(&out.path().join("ballista"), &distributed));
    assert!(a.contains_key("decisions.parquet") && a.keys().any(|k| k.starts_with("shards/")));
    assert_eq!(a, b, "shards, decisions and commitment are byte-identical");
    // Both pass `dataset verify`.
    for dir in [
        dataset_dir(&out.path().join("embedded"), &embedded),
        dataset_dir(&out.path().join("ballista"), &distributed),
    ] {
        let o = crate::util::consentgate(&["dataset", "verify", dir.to_str().unwrap()]);
        assert!(o.status.success(), "{}", crate::util::stderr(&o));
    }
}

/// The member keys the executors derived, from a build's `Received` line.
/// A build of `files` as of 2025-12-01 into `out` with `extra` flags and without `-q` (so that
/// it says what it received and who derived the keys); it must succeed.
fn build_loud(
    files: &BTreeMap<String, PathBuf>,
    out: &Path,
    extra: &[&str],
) -> std::process::Output {
    let args: Vec<String> = build_args(files, "2025-12-01", out, extra)
        .into_iter()
        .filter(|a| a != "-q")
        .collect();
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    o
}

fn keys_by_executors(said: &str) -> u64 {
    said.lines()
        .find(|l| l.contains("Received"))
        .and_then(|l| l.split("; ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"))
}

#[test]
fn vrf_keys_are_derived_by_executors_holding_the_member_key_else_by_the_client_and_another_key_fails()
 {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let vrf = ["--key-scheme", "vrf"];
    let embedded = build(&files, "2025-12-01", &out.path().join("embedded"), &vrf);
    assert_eq!(
        embedded["member_commitment"]["key_scheme"],
        cg_proof::member_key::KEY_SCHEME
    );
    let a = files_of(&dataset_dir(&out.path().join("embedded"), &embedded));
    // Executors holding the member key derive every member's key, the client none: the same
    // dataset, commitment included.
    let holding = cluster(2);
    let dir = out.path().join("holding");
    let o = build_loud(
        &files,
        &dir,
        &["--engine", &holding.url, "--key-scheme", "vrf"],
    );
    assert_eq!(
        keys_by_executors(&crate::util::stderr(&o)),
        embedded["member_commitment"]["members"].as_u64().unwrap(),
        "{}",
        crate::util::stderr(&o)
    );
    let manifest: serde_json::Value = serde_json::from_str(&crate::util::stdout(&o)).unwrap();
    assert_eq!(files_of(&dataset_dir(&dir, &manifest)), a);
    drop(holding);
    // Without a member key the executors write the shards and the client derives the keys:
    // the same dataset, commitment included.
    let without = cluster_with(1, ExecutorKey::Without);
    let dir = out.path().join("without");
    let o = build_loud(
        &files,
        &dir,
        &["--engine", &without.url, "--key-scheme", "vrf"],
    );
    assert_eq!(keys_by_executors(&crate::util::stderr(&o)), 0);
    let manifest: serde_json::Value = serde_json::from_str(&crate::util::stdout(&o)).unwrap();
    assert_eq!(comparable(manifest.clone()), comparable(embedded.clone()));
    assert_eq!(files_of(&dataset_dir(&dir, &manifest)), a);
    drop(without);
    // An executor holding another log's member key fails the build: nothing is published and
    // the error names both public keys.
    let other = cluster_with(1, ExecutorKey::Other);
    let dir = out.path().join("other");
    let args = build_args(
        &files,
        "2025-12-01",
        &dir,
        &["--engine", &other.url, "--key-scheme", "vrf"],
    );
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", crate::util::stdout(&o));
    let err = crate::util::stderr(&o);
    assert!(
        err.contains("member key")
            && err.contains(
                embedded["member_commitment"]["vrf_public_key"]
                    .as_str()
                    .unwrap()
            ),
        "{err}"
    );
    assert!(
        !dir.exists() || walk(&dir).is_empty(),
        "left {:?}",
        walk(&dir)
    );
}

/// `build_args` with `--shards` set to `shards` (it gives 8).
fn with_shards(args: Vec<String>, shards: &str) -> Vec<String> {
    let mut args = args;
    let at = args.iter().position(|a| a == "--shards").unwrap() + 1;
    args[at] = shards.to_owned();
    args
}

#[test]
fn many_shards_on_few_tasks_and_few_shards_on_many_tasks_give_the_embedded_dataset() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let cluster = cluster(2);
    for (shards, partitions) in [("64", 2), ("1", 8)] {
        let run = |name: &str, extra: &[&str]| {
            let dir = out.path().join(format!("{name}-{shards}"));
            let args = with_shards(build_args(&files, "2025-12-01", &dir, extra), shards);
            let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(o.status.code(), Some(0), "{}", crate::util::stderr(&o));
            let manifest: serde_json::Value =
                serde_json::from_str(&crate::util::stdout(&o)).unwrap();
            let files = files_of(&dataset_dir(&dir, &manifest));
            (manifest, files)
        };
        let (embedded, a) = run("embedded", &[]);
        let url = format!("{}?partitions={partitions}", cluster.url);
        let (distributed, b) = run("ballista", &["--engine", &url]);
        assert_eq!(embedded["shard_count"], shards.parse::<u64>().unwrap());
        assert_eq!(comparable(distributed), comparable(embedded));
        assert_eq!(a, b, "{shards} shards on {partitions} tasks per stage");
    }
}

#[test]
fn a_ledger_build_ships_member_facts_as_data_and_each_executor_compiles_its_own_shards() {
    let (_c, files) = corpus();
    let work = cg_test_support::tempdir();
    let ledger = work.path().join("ledger.sqlite");
    let store = format!("sqlite:{}", ledger.display());
    let o = crate::util::consentgate(&[
        "consent",
        "import",
        files["consent"].to_str().unwrap(),
        "--store",
        &store,
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", crate::util::stderr(&o));
    let cluster = cluster(2);
    let p = |t: &str| files[t].to_str().unwrap().to_owned();
    // The member side and the content, with consent from the ledger.
    let inputs = |command: &str| -> Vec<String> {
        let mut args = vec![command.to_owned()];
        for (flag, table) in [
            ("--members", "members"),
            ("--content", "content"),
            ("--residences", "residences"),
            ("--erasures", "erasures"),
        ] {
            args.extend([flag.to_owned(), p(table)]);
        }
        args.extend(["--store".to_owned(), store.clone()]);
        args
    };
    let run = |name: &str, extra: &[&str]| {
        let out = work.path().join(name);
        let mut args = inputs("build");
        args.extend([
            "--as-of".into(),
            "2025-12-01".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--shards".into(),
            "32".into(),
            "--json".into(),
            "-q".into(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(0), "{}", crate::util::stderr(&o));
        let manifest: serde_json::Value = serde_json::from_str(&crate::util::stdout(&o)).unwrap();
        let files = files_of(&dataset_dir(&out, &manifest));
        (manifest, files)
    };
    let (embedded, a) = run("embedded", &[]);
    let embedded_manifest = embedded.clone();
    let url = format!("{}?partitions=8", cluster.url);
    let (distributed, b) = run("ballista", &["--engine", &url]);
    // The ledger's log grew by the first build's entry, so its checkpoint differs.
    let (mut distributed, mut embedded) = (comparable(distributed), comparable(embedded));
    for m in [&mut distributed, &mut embedded] {
        m.as_object_mut().unwrap().remove("ledger_checkpoint");
    }
    assert_eq!(distributed, embedded);
    assert_eq!(
        a, b,
        "the same dataset; the facts written for executors are not in it"
    );

    // Content is routed by its author's shard, so each shard's facts were compiled by exactly
    // one executor, and only for the shards whose rows it decided.
    let loaded = cluster.facts_loaded();
    eprintln!("member facts compiled per executor (shard → members): {loaded:?}");
    let mut all: BTreeMap<u32, u64> = BTreeMap::new();
    for (i, shards) in loaded.iter().enumerate() {
        for (shard, members) in shards {
            let before = all.insert(*shard, *members);
            assert!(
                before.is_none(),
                "shard {shard} compiled again by executor {i}: {loaded:?}"
            );
        }
    }
    assert_eq!(
        all.len(),
        32,
        "every shard has rows in this corpus: {loaded:?}"
    );
    let members: u64 = all.values().sum();
    assert!(members > 0 && members <= 3_000, "{members}");
    // The scheduler hands tasks out in turn, so both executors decided rows: neither holds
    // every member.
    assert!(
        loaded.iter().all(|l| !l.is_empty() && l.len() < 32),
        "{loaded:?}"
    );
    // Mentions were resolved by the narrow join: each shard's mention statuses were read by
    // one executor, the one resolving the pairs routed to that shard, and no executor read
    // every shard's (none holds the whole mentions table).
    let statuses = cluster.logged("read the mention statuses of shard ");
    eprintln!("mention statuses read per executor (shard → members): {statuses:?}");
    let mut read: BTreeMap<u32, u64> = BTreeMap::new();
    for (i, shards) in statuses.iter().enumerate() {
        for (shard, members) in shards {
            let before = read.insert(*shard, *members);
            assert!(
                before.is_none(),
                "shard {shard}'s mention statuses read again by executor {i}: {statuses:?}"
            );
        }
    }
    assert_eq!(read.len(), 32, "every shard is mentioned: {statuses:?}");
    assert!(
        statuses.iter().all(|s| !s.is_empty() && s.len() < 32),
        "{statuses:?}"
    );
    // Each task of the decisions' stage held the statuses of the members its rows mention:
    // fewer than every member.
    let everyone: u64 = read.values().sum();
    let held = cluster.said_numbers("resolved the members a task's rows mention: ");
    eprintln!("mentioned members held per task: {held:?}");
    assert!(!held.is_empty(), "no task resolved mentions");
    assert!(held.iter().all(|h| *h < everyone), "{held:?} of {everyone}");
    // The 32 shards are dealt evenly over the 8 tasks (shard mod 8), so every task has rows
    // and mentions to resolve.
    assert_eq!(held.len(), 8, "{held:?}");
    assert!(
        held.iter().all(|h| *h > 0),
        "a task without a shard: {held:?}"
    );
    // An incremental rebuild at a later cut-off (a decisions pass, then the changed shards
    // with their text) gives the same dataset on the cluster as embedded.
    let parent = dataset_dir(&work.path().join("embedded"), &embedded_manifest);
    let rebuild = |name: &str, extra: &[&str]| {
        let out = work.path().join(name);
        let mut args = inputs("rebuild");
        args.extend([
            "--dataset".into(),
            parent.to_str().unwrap().into(),
            "--as-of".into(),
            "2026-03-01".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--json".into(),
            "-q".into(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(0), "{}", crate::util::stderr(&o));
        let mut manifest = comparable(serde_json::from_str(&crate::util::stdout(&o)).unwrap());
        let files = files_of(&dataset_dir(&out, &manifest));
        manifest
            .as_object_mut()
            .unwrap()
            .remove("ledger_checkpoint");
        (manifest, files)
    };
    let (embedded_rebuild, a) = rebuild("embedded-rebuild", &[]);
    let (distributed_rebuild, b) = rebuild("ballista-rebuild", &["--engine", &url]);
    assert_ne!(
        embedded_rebuild["dataset_id"],
        embedded_manifest["dataset_id"]
    );
    assert_eq!(distributed_rebuild, embedded_rebuild);
    assert_eq!(a, b, "the rebuilds are the same dataset");

    // The executors never saw the ledger.
    for i in 0..2 {
        let log = std::fs::read_to_string(cluster.work.path().join(format!("executor-{i}.log")))
            .unwrap_or_default();
        assert!(!log.contains("ledger.sqlite"), "{log}");
    }
}

#[test]
fn a_distributed_build_names_a_repeated_content_id_instead_of_quarantining_it() {
    let (_c, files) = corpus();
    let work = cg_test_support::tempdir();
    // Rows 1 and 3 share a content id. Which copy is first is input order, which does not
    // survive the shuffle by shard: the embedded engine quarantines the later copy, the
    // cluster stops and names the rows.
    let content = work.path().join("content.csv");
    std::fs::write(
        &content,
        "content_id,member_id,kind,created_at,text\n\
         7,1,post,2025-01-01T00:00:00Z,first copy\n\
         8,2,post,2025-01-02T00:00:00Z,another row\n\
         7,3,post,2025-01-03T00:00:00Z,second copy\n",
    )
    .unwrap();
    let mut files = files;
    files.insert("content".into(), content);
    let cluster = cluster(2);
    let embedded = build(
        &files,
        "2025-12-01",
        &work.path().join("embedded"),
        &["--quarantine"],
    );
    assert_eq!(embedded["decisions"]["rows"], 3);
    let out = work.path().join("ballista");
    let args = build_args(
        &files,
        "2025-12-01",
        &out,
        &["--quarantine", "--engine", &cluster.url],
    );
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", crate::util::stderr(&o));
    let err = crate::util::stderr(&o);
    assert!(
        err.contains("duplicate content id 7")
            && err.contains("rows 1, 3")
            && err.contains("embedded engine"),
        "{err}"
    );
    assert!(walk(&out).iter().all(|p| !p.ends_with("manifest.json")));

    // Without --quarantine both engines refuse it, naming the rows (the executors' records are
    // merged on the client, where the copies meet).
    let refused_by_both = |what: &str, rows: &str| {
        for engine in ["embedded", "ballista"] {
            let out = work.path().join(format!("{what}-{engine}"));
            let extra = match engine {
                "ballista" => vec!["--engine", cluster.url.as_str()],
                _ => vec![],
            };
            let args = build_args(&files, "2025-12-01", &out, &extra);
            let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(o.status.code(), Some(1), "{}", crate::util::stderr(&o));
            let err = crate::util::stderr(&o);
            assert!(err.contains(what) && err.contains(rows), "{engine}: {err}");
            assert!(
                !out.exists() || walk(&out).is_empty(),
                "{engine} left {:?}",
                walk(&out)
            );
        }
    };
    refused_by_both("duplicate content id 7", "rows 1, 3");

    // A row without a content id: both engines name its row.
    std::fs::write(
        &files["content"],
        "content_id,member_id,kind,created_at,text\n\
         7,1,post,2025-01-01T00:00:00Z,a row\n\
         ,2,post,2025-01-02T00:00:00Z,no id\n",
    )
    .unwrap();
    refused_by_both("missing content id", "row 2");
}

#[test]
fn an_unreachable_scheduler_fails_the_build_and_publishes_nothing() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let url = format!("ballista://127.0.0.1:{}", free_port());
    let args = build_args(&files, "2025-12-01", out.path(), &["--engine", &url]);
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", crate::util::stderr(&o));
    assert!(walk(out.path()).is_empty(), "{:?}", walk(out.path()));
    let args = build_args(
        &files,
        "2025-12-01",
        out.path(),
        &["--engine", "spark://x:1"],
    );
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(2), "{}", crate::util::stderr(&o));
    assert!(crate::util::stderr(&o).contains("ballista://HOST:PORT"));
}

#[test]
fn a_scheduler_refuses_an_executor_timeout_shorter_than_a_busy_executors_polls() {
    let bind = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(["scheduler", "--bind", &bind, "--executor-timeout", "9"])
        .env("CG_DATA_DIR", data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a scheduler that accepted the timeout would serve until stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the scheduler started with a 9 s executor timeout");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = crate::util::stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--executor-timeout"), "{err}");
}

#[test]
fn a_cluster_that_stalls_fails_the_build_within_its_timeout_and_publishes_nothing() {
    let (_c, files) = corpus();
    let out = cg_test_support::tempdir();
    let cluster = cluster(1);
    // The only executor is frozen (SIGSTOP): the scheduler takes the job and nothing runs it.
    let executor = cluster.executors[0].id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &executor])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {executor}");
    };
    signal("-STOP");
    let url = format!("{}?timeout=3", cluster.url);
    let args = build_args(&files, "2025-12-01", out.path(), &["--engine", &url]);
    let started = Instant::now();
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let took = started.elapsed();
    let left = walk(out.path());
    signal("-CONT");
    let err = crate::util::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not finish the build within 3 s") && err.contains("nothing is published"),
        "{err}"
    );
    // The scheduler took the job, so the client cancelled it by its id.
    assert!(err.contains("cancelled"), "{err}");
    // A hang check, not a speed test: the wait ends with the timeout (plus the cancellation's
    // own bound), whatever the cluster does.
    assert!(took < Duration::from_secs(120), "took {took:?}");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_build_cancelled_while_its_tasks_run_leaves_the_cluster_able_to_build() {
    let (_c, files) = corpus_files(20_000, 200_000);
    let out = cg_test_support::tempdir();
    let cluster = cluster(1);
    // A one-second wait ends before the job does (the kill test's corpus takes seconds): the
    // client cancels the job, whose tasks the executor may be running.
    let url = format!("{}?timeout=1", cluster.url);
    let args = build_args(
        &files,
        "2025-12-01",
        &out.path().join("cancelled"),
        &["--engine", &url],
    );
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let err = crate::util::stderr(&o);
    if o.status.success() {
        // A machine fast enough to build it within the second: nothing was cancelled (the
        // stalled-cluster test covers the cancellation itself); the next build must still run.
        eprintln!("the first build finished within 1 s; nothing was cancelled");
    } else {
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("did not finish the build within 1 s"), "{err}");
    }
    // The next build on the same cluster runs to its end: the executor pulls its tasks, so
    // any of the cancelled job's run on until they end (the scheduler's call to cancel them
    // has nobody to answer it), and then its task slots take the new job's.
    let url = format!("{}?timeout=150", cluster.url);
    let again = out.path().join("again");
    let args = build_args(&files, "2025-12-01", &again, &["--engine", &url]);
    let o = crate::util::consentgate(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        o.status.success(),
        "{}\n{}",
        crate::util::stderr(&o),
        cluster.log_tails(40)
    );
}

#[test]
fn killing_an_executor_mid_build_never_publishes_a_partial_dataset() {
    let (_c, files) = corpus_files(20_000, 200_000);
    let out = cg_test_support::tempdir();
    let mut cluster = cluster(2);
    let cluster_url = cluster.url.clone();
    // Kill the executor that is writing a shard, while it writes it: a task writes a shard
    // through `part-NNNNN.parquet.<pid>-<random>.partial` in the build's scratch directory, so
    // the file names the process to kill. A build that ends before any write was seen (a
    // fast machine) is run again.
    let (result, dist_out) = cluster.kill_the_writer(
        |attempt| {
            let dist_out = out.path().join(format!("ballista-{attempt}"));
            let child = Command::new(env!("CARGO_BIN_EXE_consentgate"))
                .env("CG_DATA_DIR", data_dir())
                .args(build_args(
                    &files,
                    "2025-12-01",
                    &dist_out,
                    &["--engine", &cluster_url],
                ))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, dist_out)
        },
        |dist_out| shard_writer(dist_out),
    );
    let left: Vec<PathBuf> = walk(&dist_out);
    assert!(
        left.iter().all(|p| {
            let p = p.to_string_lossy();
            !p.contains(".partial") && !p.contains(".scratch")
        }),
        "a temporary dataset, its scratch directory or a partial shard was left behind: {left:?}"
    );
    if result.status.success() {
        // The build finished on the surviving executor: it must equal the embedded build.
        let distributed: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        let embedded = build_all(&files, &out.path().join("embedded"));
        assert_eq!(
            comparable(distributed.clone()),
            comparable(embedded.clone())
        );
        assert_eq!(
            files_of(&dataset_dir(&dist_out, &distributed)),
            files_of(&dataset_dir(&out.path().join("embedded"), &embedded))
        );
    } else {
        // It failed: cleanly, with an error and nothing published.
        assert_eq!(result.status.code(), Some(1));
        let err = String::from_utf8_lossy(&result.stderr);
        eprintln!("{err}");
        assert!(err.contains("error"), "{err}");
        assert!(
            left.iter().all(|p| !p.ends_with("manifest.json")),
            "a failed build published {left:?}"
        );
    }
}

/// The process writing a shard of a build under `out`, if one is: a task writes a shard through
/// `part-NNNNN.parquet.<pid>-<random>.partial` in the build's scratch directory
/// (`out/.<dataset>.partial-<pid>.scratch`).
fn shard_writer(out: &Path) -> Option<u32> {
    for entry in std::fs::read_dir(out).ok()?.flatten() {
        if !entry.file_name().to_string_lossy().ends_with(".scratch") {
            continue;
        }
        let Ok(files) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            let Some(tag) = name
                .strip_prefix("part-")
                .and_then(|n| n.strip_suffix(".partial"))
                .and_then(|n| n.rsplit('.').next())
            else {
                continue;
            };
            if let Some(pid) = tag.split('-').next().and_then(|p| p.parse().ok()) {
                return Some(pid);
            }
        }
    }
    None
}

fn build_all(files: &BTreeMap<String, PathBuf>, out: &Path) -> serde_json::Value {
    build(files, "2025-12-01", out, &[])
}
