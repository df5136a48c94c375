//! `manifest.json`: what a dataset is, how it was made, and the digests that pin it.
//! Deterministic except `created_at` (same inputs, policy and cut-off ⇒ same bytes otherwise).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format version.
pub const FORMAT: &str = "consentgate-manifest/1";

/// A dataset's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: String,
    /// Dataset id: digest of everything that determines the output.
    pub dataset_id: String,
    /// Purpose.
    pub purpose: String,
    /// The cut-off.
    pub as_of: String,
    /// The policy.
    pub policy: PolicyRef,
    /// Input files and their SHA-256.
    pub inputs: Vec<InputRef>,
    /// Consent events of purposes other than the build's, by name: they never affect a
    /// decision (a platform's export holds many purposes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ignored_purposes: BTreeMap<String, u64>,
    /// For builds with a ledger: which source gave which members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_sources: Option<MemberSources>,
    /// Shard count.
    pub shard_count: u32,
    /// First 16 hex digits of SHA-256 of the shard key (the key itself is not published).
    pub shard_key_fingerprint: String,
    /// Shards.
    pub shards: Vec<FileRef>,
    /// `decisions.parquet` (the record of processing; stays with the operator).
    pub decisions: FileRef,
    /// Rows by decision × reason × region (a row with several reasons counts under each).
    pub counts: Vec<Count>,
    /// Rows by decision.
    pub totals: BTreeMap<String, u64>,
    /// Rows by region and decision, each row once (absent in manifests before it was added).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows_by_region: Vec<RegionRows>,
    /// Whether malformed rows were quarantined instead of failing the build.
    pub quarantine: bool,
    /// For builds from the ledger: the signed tree head of its transparency log when the build
    /// started (the consent events the snapshot could include are under it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_checkpoint: Option<LedgerCheckpoint>,
    /// Root of the member commitment (hex).
    pub member_commitment_root: Option<String>,
    /// The member commitment: what receipts are proven against.
    pub member_commitment: Option<CommitmentRef>,
    /// consentgate version.
    pub tool_version: String,
    /// Execution engine.
    pub engine: String,
    /// The licence the dataset card declares (an SPDX id or a Hugging Face licence name);
    /// absent: `other` (terms set by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The dataset card (`README.md`, Hugging Face dataset-card format), covered by this
    /// manifest's digest like every other file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<DocRef>,
    /// For an incremental rebuild: the dataset it was rebuilt from and what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
    /// When the build finished (the only field that differs between identical builds).
    pub created_at: String,
}

/// The policy used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    /// Name.
    pub name: String,
    /// Content hash.
    pub hash: String,
}

/// Which source gave a build's member facts (builds with a ledger).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSources {
    /// Members named only by input files.
    pub files_only: u64,
    /// Members only the ledger has a row for.
    pub ledger_only: u64,
    /// Members both name: their facts merged with the most protective reading.
    pub merged: u64,
    /// Consent events the ledger held up to the cut-off.
    pub ledger_events: u64,
}

/// The member-side summary a build records in its manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FactsSummary {
    /// Events of other purposes, by name.
    pub ignored_purposes: BTreeMap<String, u64>,
    /// Which source gave which members (builds with a ledger).
    pub member_sources: Option<MemberSources>,
}

/// An input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    /// Table (`members`, `content`, `consent`, `ledger_snapshot`, ...).
    pub table: String,
    /// File name (or the ledger's backend for a snapshot).
    pub source: String,
    /// SHA-256 of the bytes (or of the snapshot rows).
    pub sha256: String,
}

/// An output file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Path relative to the dataset directory.
    pub file: String,
    /// Rows.
    pub rows: u64,
    /// SHA-256 of the bytes.
    pub sha256: String,
}

/// A document of the dataset (no rows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRef {
    /// Path relative to the dataset directory.
    pub file: String,
    /// SHA-256 of the bytes.
    pub sha256: String,
}

/// The rows of one region by decision (each row once).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionRows {
    /// Region label (`EU`, `UK`, ..., `ROW`, `UNKNOWN`).
    pub region: String,
    /// Rows included.
    pub include: u64,
    /// Rows included after redacting a third party's data.
    pub include_redacted: u64,
    /// Rows excluded.
    pub exclude: u64,
}

impl RegionRows {
    /// Every row of the region.
    pub fn total(&self) -> u64 {
        self.include + self.include_redacted + self.exclude
    }

    /// Rows kept (in the shards).
    pub fn kept(&self) -> u64 {
        self.include + self.include_redacted
    }
}

/// One cell of the decision × reason × region table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Count {
    /// Decision.
    pub decision: String,
    /// Reason.
    pub reason: String,
    /// Region label.
    pub region: String,
    /// Rows.
    pub rows: u64,
}

/// The member commitment of a dataset (see `cg_proof::commitment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentRef {
    /// Path relative to the dataset directory (`members.commitment`).
    pub file: String,
    /// Members in the dataset (those with at least one row in the shards).
    pub members: u64,
    /// Leaves of a roster (`cg_proof::roster`): every member with a content row in the input,
    /// in the dataset or not. Absent for the interval scheme, whose leaves are `members` + 1.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub roster_members: u64,
    /// Merkle root over the commitment's leaves (hex).
    pub root: String,
    /// The commitment's scheme: `consentgate/member-roster/v2` (`cg_proof::roster`), or
    /// `c2sp.org/vrf-r255:consentgate/member-key/v1` (sorted intervals over VRF member keys).
    pub key_scheme: String,
    /// The VRF input's dataset part: this dataset's id, or for a rebuild its first ancestor's
    /// (so unchanged members keep their keys and a rebuild re-derives only the changed ones).
    /// Empty (absent) in manifests made before rebuilds existed: the dataset's own id then
    /// ([`CommitmentRef::key_domain_of`]).
    #[serde(default)]
    pub key_domain: String,
    /// The public key (hex) of the member-key secret: it verifies VRF member keys (interval
    /// scheme) and names the secret whose salts a roster was made with.
    pub vrf_public_key: String,
    /// SHA-256 of the file.
    pub sha256: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl CommitmentRef {
    /// The key domain of the dataset `dataset_id` this commitment belongs to.
    pub fn key_domain_of<'a>(&'a self, dataset_id: &'a str) -> &'a str {
        if self.key_domain.is_empty() {
            dataset_id
        } else {
            &self.key_domain
        }
    }
}

/// The part of a manifest a receipt is about: the dataset and its member commitment, read typed
/// from any manifest whatever else it holds (fields added by later versions are ignored, so an
/// offline verifier keeps working on newer datasets).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ReceiptView {
    /// The dataset's id.
    pub dataset_id: String,
    /// Its member commitment (none: built before receipts existed).
    #[serde(default)]
    pub member_commitment: Option<CommitmentRef>,
}

/// Where an incrementally rebuilt dataset comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The parent dataset's id.
    pub parent: String,
    /// SHA-256 of the parent's manifest.json.
    pub parent_manifest_sha256: String,
    /// The parent's cut-off.
    pub parent_as_of: String,
    /// Shards whose content changed (every other shard is the parent's file, byte for byte).
    pub changed_shards: Vec<String>,
    /// Shards re-read and rewritten (the changed ones, and any whose rows' redaction inputs
    /// changed without changing their text).
    pub shards_rewritten: u64,
    /// Members whose rows entered the shards.
    pub members_added: u64,
    /// Members whose rows left the shards.
    pub members_removed: u64,
}

/// A signed tree head of the ledger's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCheckpoint {
    /// The log's origin.
    pub origin: String,
    /// Entries.
    pub size: u64,
    /// Root hash (hex).
    pub root: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_view_reads_any_manifest_and_defaults_the_key_domain() {
        let commitment = r#"{"file":"members.commitment","members":3,"root":"ab","key_scheme":"s","vrf_public_key":"cd","sha256":"ef"}"#;
        // Fields a later version adds are ignored; a manifest from before rebuilds has no key
        // domain: the dataset's own id.
        let old: ReceiptView = serde_json::from_str(&format!(
            r#"{{"dataset_id":"ds-1","added_later":[1,2],"member_commitment":{commitment}}}"#
        ))
        .unwrap();
        let c = old.member_commitment.unwrap();
        assert_eq!((c.key_domain_of("ds-1"), c.root.as_str()), ("ds-1", "ab"));
        let rebuilt: ReceiptView = serde_json::from_str(&format!(
            r#"{{"dataset_id":"ds-2","member_commitment":{}}}"#,
            commitment.replace(r#""file""#, r#""key_domain":"ds-1","file""#)
        ))
        .unwrap();
        assert_eq!(
            rebuilt.member_commitment.unwrap().key_domain_of("ds-2"),
            "ds-1"
        );
        // Before receipts: no commitment at all.
        let none: ReceiptView = serde_json::from_str(r#"{"dataset_id":"ds-0"}"#).unwrap();
        assert_eq!(none.member_commitment, None);
        // A commitment missing what a receipt needs is not read as one.
        assert!(
            serde_json::from_str::<ReceiptView>(
                r#"{"dataset_id":"ds-3","member_commitment":{"file":"m"}}"#
            )
            .is_err()
        );
    }
}
