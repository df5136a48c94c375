//! `dataset verify`: a published dataset against its manifest — every shard's and the decision
//! record's SHA-256 and row count, no file the manifest does not list, the member commitment's
//! digest and root; with the VRF secret, also that the commitment holds exactly the members
//! with rows in the shards.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type};
use cg_proof::commitment::Commitment;
use cg_proof::member_key::MemberKeySecret;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;

use crate::BuildError;
use crate::manifest::Manifest;
use crate::run::{member_commitment, sha256_file};

/// What a sound dataset holds.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetReport {
    /// Dataset id.
    pub dataset_id: String,
    /// Shards checked.
    pub shards: usize,
    /// Rows in the shards.
    pub rows: u64,
    /// Members in the commitment.
    pub members: u64,
    /// Whether the commitment was recomputed from the decision record (needs the secret key).
    pub commitment_recomputed: bool,
}

fn parquet_rows(path: &Path) -> Result<u64, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let r = SerializedFileReader::new(f).map_err(|e| e.to_string())?;
    Ok(r.metadata().file_metadata().num_rows().max(0) as u64)
}

/// The members with at least one row in a shard, from a dataset's `decisions.parquet`.
pub fn included_members(dir: &Path) -> Result<Vec<i64>, BuildError> {
    let path = dir.join("decisions.parquet");
    let f = File::open(&path).map_err(|e| BuildError::io(&path, e))?;
    let bad = |e: String| BuildError::Source {
        file: path.display().to_string(),
        message: e,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.to_string()))?;
    let mut members = BTreeSet::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let (Some(m), Some(s)) = (
            batch.column_by_name("member_id"),
            batch.column_by_name("shard"),
        ) else {
            return Err(bad("missing member_id or shard".into()));
        };
        let (m, s) = (m.as_primitive::<Int64Type>(), s.as_primitive::<Int32Type>());
        for i in 0..batch.num_rows() {
            if s.is_valid(i) && m.is_valid(i) {
                members.insert(m.value(i));
            }
        }
    }
    Ok(members.into_iter().collect())
}

/// Verifies a dataset directory against its manifest; with `keys`, also recomputes the member
/// commitment from the decision record.
pub fn verify_dataset(
    dir: &Path,
    keys: Option<&MemberKeySecret>,
) -> Result<DatasetReport, BuildError> {
    let manifest_path = dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|e| BuildError::io(&manifest_path, e))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| BuildError::Invalid {
        dir: dir.to_owned(),
        problems: vec![format!("manifest.json is not a manifest: {e}")],
    })?;
    let mut problems = Vec::new();
    let check_file = |problems: &mut Vec<String>, file: &str, sha: &str, rows: Option<u64>| {
        let path = dir.join(file);
        match sha256_file(&path) {
            Ok(got) if got == sha => {}
            Ok(_) => problems.push(format!("{file}: SHA-256 differs from the manifest")),
            Err(e) => problems.push(format!("{file}: {e}")),
        }
        if let Some(expected) = rows {
            match parquet_rows(&path) {
                Ok(n) if n == expected => {}
                Ok(n) => problems.push(format!("{file}: {n} rows, the manifest says {expected}")),
                Err(e) => problems.push(format!("{file}: not readable Parquet: {e}")),
            }
        }
    };
    for s in &m.shards {
        check_file(&mut problems, &s.file, &s.sha256, Some(s.rows));
    }
    check_file(
        &mut problems,
        &m.decisions.file,
        &m.decisions.sha256,
        Some(m.decisions.rows),
    );
    if m.shards.len() != m.shard_count as usize {
        problems.push(format!(
            "the manifest lists {} shards, shard_count is {}",
            m.shards.len(),
            m.shard_count
        ));
    }
    let listed: BTreeSet<&str> = m.shards.iter().map(|s| s.file.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("shards")) {
        for e in entries.flatten() {
            let rel = format!("shards/{}", e.file_name().to_string_lossy());
            if !listed.contains(rel.as_str()) {
                problems.push(format!("{rel}: not listed in the manifest"));
            }
        }
    }
    let mut members = 0;
    let mut recomputed = false;
    match &m.member_commitment {
        None => problems.push("the manifest has no member commitment".into()),
        Some(c) => {
            check_file(&mut problems, &c.file, &c.sha256, None);
            if m.member_commitment_root.as_deref() != Some(c.root.as_str()) {
                problems.push("member_commitment_root differs from member_commitment.root".into());
            }
            let path = dir.join(&c.file);
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| Commitment::decode(&b).map_err(|e| e.to_string()))
            {
                Err(e) => problems.push(format!("{}: {e}", c.file)),
                Ok(tree) => {
                    members = tree.len() as u64;
                    if cg_proof::hex(&tree.root()) != c.root {
                        problems.push(format!("{}: its root differs from the manifest", c.file));
                    }
                    if tree.len() as u64 != c.members {
                        problems.push(format!(
                            "{}: {} members, the manifest says {}",
                            c.file,
                            tree.len(),
                            c.members
                        ));
                    }
                    if let Some(keys) = keys {
                        if cg_proof::hex(&keys.public_key()) != c.vrf_public_key {
                            problems.push("the manifest's VRF public key is not this key's".into());
                        }
                        let expected =
                            member_commitment(keys, &c.key_domain, &included_members(dir)?)?;
                        recomputed = true;
                        if expected.root() != tree.root() {
                            problems.push(format!(
                                "{}: does not hold exactly the members with rows in the shards ({} expected, {} committed)",
                                c.file,
                                expected.len(),
                                tree.len()
                            ));
                        }
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(BuildError::Invalid {
            dir: dir.to_owned(),
            problems,
        });
    }
    Ok(DatasetReport {
        dataset_id: m.dataset_id,
        shards: m.shards.len(),
        rows: m.shards.iter().map(|s| s.rows).sum(),
        members,
        commitment_recomputed: recomputed,
    })
}
