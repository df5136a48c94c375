//! `dataset verify`: a published dataset against its manifest — every file's digest and rows
//! (`cg_report::dataset::check_files`, which the reports share); with the member-key secret,
//! also that the member commitment is the one the decision record makes (a roster: every member
//! of the record with the right bit; VRF intervals: exactly the members with rows in the shards).

use std::collections::BTreeSet;
use std::path::Path;

use cg_proof::member_key::MemberKeySecret;
use serde::Serialize;

use crate::BuildError;
use crate::commitment::{MemberCommitment, member_commitment};
use crate::manifest::Manifest;
use cg_proof::commitment::DatasetCommitment;

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
            problems.push("the manifest's member-key public key is not this key's".into());
        }
        let domain = c.key_domain_of(&m.dataset_id);
        let (expected_root, expected_members, what) = match tree {
            DatasetCommitment::Intervals(_) => {
                let expected = member_commitment(keys, domain, &included_members(dir)?)?;
                (
                    expected.root(),
                    expected.len() as u64,
                    "the members with rows in the shards",
                )
            }
            DatasetCommitment::Roster(_) => {
                let expected = MemberCommitment::roster(dir, keys, domain)?;
                (
                    expected.root(),
                    expected.members,
                    "the members of the decision record, with rows in the shards or not",
                )
            }
        };
        recomputed = true;
        if expected_root != tree.root() {
            problems.push(format!(
                "{}: does not hold exactly {what} ({expected_members} in the dataset expected)",
                c.file,
            ));
        }
        if expected_members != c.members {
            problems.push(format!(
                "the manifest says {} members are in the dataset, the decision record {expected_members}",
                c.members
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
        members: m.member_commitment.as_ref().map_or(0, |c| c.members),
        commitment_recomputed: recomputed,
    })
}
