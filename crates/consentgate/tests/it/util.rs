//! Running the built binary and reading its output files.

use std::path::Path;
use std::process::{Command, Output};

use arrow::array::RecordBatch;

/// This test process's data directory (the default ledger and log key live here, never in the
/// source tree; nextest runs each test in its own process). Named by the process id, so a
/// directory left by an earlier process with the same id (ids are reused) is removed on first
/// use: a stale log key there made `keys init` refuse.
pub fn data_dir() -> std::path::PathBuf {
    static FRESH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FRESH
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("cg-it-data-{}", std::process::id()));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("remove a stale test data directory");
            }
            dir
        })
        .clone()
}

/// Runs `consentgate` with `args` (and `CG_DATA_DIR` set to [`data_dir`]).
pub fn consentgate(args: &[&str]) -> Output {
    consentgate_with(args, &[])
}

/// Runs the binary with `env` added to its environment (an object store's `AWS_*`).
pub fn consentgate_with(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("CG_DATA_DIR", data_dir())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run consentgate")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Reads a whole Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A generated corpus (seed 7, Parquet) and its files by table name.
pub fn corpus_files(
    members: u64,
    content: u64,
) -> (
    cg_test_support::TempDir,
    std::collections::BTreeMap<String, std::path::PathBuf>,
) {
    let (dir, summary) = cg_test_support::small_corpus(members, content, cg_io::Format::Parquet);
    let files = summary
        .tables
        .iter()
        .map(|t| (t.table.to_owned(), t.path.clone()))
        .collect();
    (dir, files)
}

/// One row of a dataset's `decisions.parquet`: content id, member id, shard.
pub type DecisionRow = (Option<i64>, Option<i64>, Option<i32>);

/// Every row of a dataset's decision record.
pub fn decision_rows(dataset: &Path) -> Vec<DecisionRow> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Int64Type};
    let mut out = Vec::new();
    for b in read_parquet(&dataset.join("decisions.parquet")) {
        let col = |name: &str| b.column_by_name(name).unwrap().clone();
        let (cids, ids, shards) = (col("content_id"), col("member_id"), col("shard"));
        let (cids, ids) = (
            cids.as_primitive::<Int64Type>(),
            ids.as_primitive::<Int64Type>(),
        );
        let shards = shards.as_primitive::<Int32Type>();
        let get = |a: &dyn Array, i: usize| a.is_valid(i).then_some(i);
        for i in 0..b.num_rows() {
            out.push((
                get(cids, i).map(|i| cids.value(i)),
                get(ids, i).map(|i| ids.value(i)),
                get(shards, i).map(|i| shards.value(i)),
            ));
        }
    }
    out
}

/// Compares `actual` with the golden file `tests/golden/NAME` (`UPDATE_GOLDEN=1` rewrites it
/// after review), showing the first differing lines.
pub fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    let diff: String = expected
        .lines()
        .zip(actual.lines())
        .filter(|(x, y)| x != y)
        .take(10)
        .map(|(x, y)| format!("- {x}\n+ {y}\n"))
        .collect();
    assert!(
        expected == actual,
        "golden {name} differs (review, then UPDATE_GOLDEN=1 to rewrite):\n{diff}"
    );
}
