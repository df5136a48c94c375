//! Withdrawal and erasure impact: for a set of members, which published datasets hold their
//! content, in which shards and how many rows — read from each dataset's decision record and,
//! with the log key, cross-checked against its member commitment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cg_proof::commitment::{DatasetCommitment, Membership, verify_interval};
use cg_proof::member_key::MemberKeySecret;
use serde::Serialize;

use crate::BuildError;
use crate::manifest::Manifest;

/// One member in one dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberHolding {
    /// The member.
    pub member_id: i64,
    /// Rows of theirs in the shards.
    pub rows: u64,
    /// The shards holding them.
    pub shards: Vec<String>,
    /// Rows of theirs the gate excluded (recorded, not in the shards).
    pub excluded_rows: u64,
    /// Whether the member commitment says they are in the dataset (checked with the log key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_commitment: Option<bool>,
}

/// What one dataset holds of the members asked about.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetHolding {
    /// Dataset id.
    pub dataset_id: String,
    /// Its directory.
    pub dir: String,
    /// Its cut-off.
    pub as_of: String,
    /// Its purpose.
    pub purpose: String,
    /// Whether any of the members has rows in its shards.
    pub affected: bool,
    /// Shards to rewrite (or retrain from) to remove the members.
    pub shards: Vec<String>,
    /// Per member with content in the dataset's input (members without any are left out).
    pub members: Vec<MemberHolding>,
}

/// Reads one dataset's holding of `members`. With `keys`, each member's presence is also
/// proven against the member commitment, and a disagreement with the decision record is an
/// error (a dataset whose record and commitment disagree cannot be trusted either way).
pub fn dataset_holding(
    dir: &Path,
    members: &BTreeSet<i64>,
    keys: Option<&MemberKeySecret>,
) -> Result<DatasetHolding, BuildError> {
    let manifest_path = dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|e| BuildError::io(&manifest_path, e))?;
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        BuildError::Input(format!(
            "`{}` is not a manifest: {e}",
            manifest_path.display()
        ))
    })?;
    let mut by_member: BTreeMap<i64, (u64, BTreeSet<u32>, u64)> = BTreeMap::new();
    crate::decisions::for_each_decision(dir, |row| {
        let Some(member) = row.member_id.filter(|m| members.contains(m)) else {
            return Ok(());
        };
        let e = by_member.entry(member).or_default();
        match row.shard {
            Some(shard) => {
                e.0 += 1;
                e.1.insert(shard);
            }
            None => e.2 += 1,
        }
        Ok(())
    })?;
    let tree = match (keys, &m.member_commitment) {
        (Some(_), Some(c)) => Some((
            crate::commitment::read_commitment(&dir.join(&c.file))?,
            c.key_domain_of(&m.dataset_id).to_owned(),
        )),
        _ => None,
    };
    let name = |s: u32| format!("shards/part-{s:05}.parquet");
    let mut holdings = Vec::new();
    let mut all_shards = BTreeSet::new();
    for member in members {
        let (rows, shards, excluded) = by_member.get(member).cloned().unwrap_or_default();
        let in_commitment = match (&tree, keys) {
            (Some((t, domain)), Some(k)) => {
                let present = match t {
                    DatasetCommitment::Roster(r) => r
                        .bit_of(&k.salt_key(), domain, *member)
                        .map_err(BuildError::from)?
                        .unwrap_or(false),
                    DatasetCommitment::Intervals(t) => {
                        let key = k.member_key(domain, *member);
                        verify_interval(&t.prove(&key), &key, &t.root())
                            .map_err(BuildError::from)?
                            == Membership::Present
                    }
                };
                if present != (rows > 0) {
                    return Err(BuildError::Invalid {
                        dir: dir.to_owned(),
                        problems: vec![format!(
                            "member {member}: the decision record says {} rows in the shards, the member commitment says {}",
                            rows,
                            if present { "present" } else { "absent" }
                        )],
                    });
                }
                Some(present)
            }
            _ => None,
        };
        if rows == 0 && excluded == 0 && in_commitment != Some(true) {
            continue;
        }
        all_shards.extend(shards.iter().copied());
        holdings.push(MemberHolding {
            member_id: *member,
            rows,
            shards: shards.into_iter().map(name).collect(),
            excluded_rows: excluded,
            in_commitment,
        });
    }
    Ok(DatasetHolding {
        dataset_id: m.dataset_id,
        dir: dir.display().to_string(),
        as_of: m.as_of,
        purpose: m.purpose,
        affected: !all_shards.is_empty(),
        shards: all_shards.into_iter().map(name).collect(),
        members: holdings,
    })
}
