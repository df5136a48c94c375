//! `dataset verify`: a published dataset against its manifest — every file's digest and rows
//! (`cg_report::dataset::check_files`, which the reports share); with the VRF secret, also that
//! the member commitment holds exactly the members with rows in the shards.

use std::collections::BTreeSet;
use std::path::Path;

use cg_proof::member_key::MemberKeySecret;
use serde::Serialize;

use crate::BuildError;
use crate::commitment::member_commitment;
use crate::manifest::Manifest;

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

/// The members with at least one row in a shard, from a dataset's `decisions.parquet`.
pub fn included_members(dir: &Path) -> Result<Vec<i64>, BuildError> {
    let mut members = BTreeSet::new();
    crate::decisions::for_each_decision(dir, |row| {
        if let (Some(member), Some(_)) = (row.member_id, row.shard) {
            members.insert(member);
        }
        Ok(())
    })?;
    Ok(members.into_iter().collect())
}

/// Verifies a dataset directory against its manifest (every file's digest and rows, through
/// [`cg_report::dataset::check_files`]); with `keys`, also recomputes the member commitment
/// from the decision record. A dataset on a store (`s3://bucket/prefix/<dataset_id>`) is
/// streamed through it to a private local copy first (so every digest is of the bytes the store
/// returns), verified there, and the copy removed.
pub fn verify_dataset(
    dir: &Path,
    keys: Option<&MemberKeySecret>,
) -> Result<DatasetReport, BuildError> {
    if let Some(url) = crate::store::ObjectUrl::of_path(dir) {
        let url = url?;
        let copy = crate::store::PrivateDir::new(None, "verify")?;
        let local = copy.path().join("dataset");
        crate::store::download_dataset(&url, &local)?;
        return verify_dataset(&local, keys).map_err(|e| e.renamed(&local, dir));
    }
    let manifest_path = dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|e| BuildError::io(&manifest_path, e))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| BuildError::Invalid {
        dir: dir.to_owned(),
        problems: vec![format!("manifest.json is not a manifest: {e}")],
    })?;
    let checked = cg_report::dataset::check_files(dir, &m);
    let mut problems = checked.problems;
    let mut recomputed = false;
    if let (Some(keys), Some(c), Some(tree)) = (keys, &m.member_commitment, &checked.commitment) {
        if cg_proof::hex(&keys.public_key()) != c.vrf_public_key {
            problems.push("the manifest's VRF public key is not this key's".into());
        }
        let expected = member_commitment(keys, &c.key_domain, &included_members(dir)?)?;
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
        members: checked.commitment.as_ref().map_or(0, |t| t.len() as u64),
        commitment_recomputed: recomputed,
    })
}
