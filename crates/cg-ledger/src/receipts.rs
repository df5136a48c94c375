//! Issuing member receipts for a published dataset: the member's roster proof (their salt and
//! leaf, or the leaves around their position) or, for datasets of the VRF scheme, their key
//! and its proof with the commitment's interval proof; and a C2SP tlog-proof of the manifest
//! against a signed checkpoint (signed now if the latest does not cover the manifest yet).
//! Used by `consentgate receipt issue` and the service's `GET /v1/me/receipts`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cg_model::manifest::ReceiptView;
use cg_proof::commitment::{DatasetCommitment, Membership, verify_interval};
use cg_proof::member_key::MemberKeySecret;
use cg_proof::note::NoteSigner;
use cg_proof::receipt::{FORMAT, IntervalJson, Receipt, RosterJson, statement};
use cg_proof::roster::verify_roster;
use sha2::{Digest, Sha256};

use crate::Store;
use crate::model::LedgerError;

/// Why a receipt cannot be issued.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptIssueError {
    /// A dataset file is missing or malformed.
    #[error("{0}")]
    Dataset(String),
    /// The dataset was committed with another key.
    #[error("the dataset {0} was committed with another log key")]
    OtherKey(String),
    /// The manifest is not in the log (or another manifest is logged under its id).
    #[error("{0}")]
    NotLogged(String),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Issues the receipt of `member` for the dataset in `dir`.
pub fn issue(
    dir: &Path,
    member: i64,
    store: &mut dyn Store,
    signer: &NoteSigner,
    keys: &MemberKeySecret,
) -> Result<Receipt, ReceiptIssueError> {
    let bad = |m: String| ReceiptIssueError::Dataset(m);
    let manifest_path = dir.join("manifest.json");
    let manifest_bytes = std::fs::read(&manifest_path)
        .map_err(|e| bad(format!("cannot read `{}`: {e}", manifest_path.display())))?;
    let m: ReceiptView = serde_json::from_slice(&manifest_bytes).map_err(|e| {
        bad(format!(
            "`{}` is not a manifest: {e}",
            manifest_path.display()
        ))
    })?;
    let dataset_id = m.dataset_id;
    let c = m.member_commitment.ok_or_else(|| {
        bad(format!(
            "the dataset {dataset_id} has no member commitment (built before receipts existed?)"
        ))
    })?;
    let domain = c.key_domain_of(&dataset_id).to_owned();
    let (file, root, vrf_key) = (c.file, c.root, c.vrf_public_key);
    if vrf_key != cg_proof::hex(&keys.public_key()) {
        return Err(ReceiptIssueError::OtherKey(dataset_id));
    }
    let commitment_path = dir.join(&file);
    let tree = std::fs::read(&commitment_path)
        .map_err(|e| bad(format!("cannot read `{}`: {e}", commitment_path.display())))
        .and_then(|b| {
            DatasetCommitment::decode(&b)
                .map_err(|e| bad(format!("`{}`: {e}", commitment_path.display())))
        })?;
    if cg_proof::hex(&tree.root()) != root || tree.scheme() != c.key_scheme {
        return Err(bad(format!(
            "`{}` does not match the manifest's commitment (root and key scheme)",
            commitment_path.display()
        )));
    }
    let proof = match &tree {
        DatasetCommitment::Roster(roster) => {
            let proof = roster.prove(&keys.salt_key(), &domain, member);
            let included = verify_roster(&proof, &domain, member, &roster.root()).map_err(|e| {
                bad(format!(
                    "`{}`: member {member}: {e} (was the dataset built with this key?)",
                    commitment_path.display()
                ))
            })?;
            Proof {
                included,
                member_key: cg_proof::hex(&cg_proof::roster::position(&domain, member)),
                member_key_proof: String::new(),
                interval: None,
                roster: Some(RosterJson::from(&proof)),
            }
        }
        DatasetCommitment::Intervals(intervals) => {
            let (member_key, key_proof) = keys.prove(&domain, member);
            let interval = intervals.prove(&member_key);
            let included = verify_interval(&interval, &member_key, &intervals.root())
                .map_err(|e| bad(e.to_string()))?
                == Membership::Present;
            Proof {
                included,
                member_key: cg_proof::hex(&member_key),
                member_key_proof: cg_proof::hex(&key_proof),
                interval: Some(IntervalJson::from(&interval)),
                roster: None,
            }
        }
    };
    let included = proof.included;
    let sha: [u8; 32] = Sha256::digest(&manifest_bytes).into();
    let logged = store.log_manifest_entries(&dataset_id)?;
    if logged.is_empty() {
        return Err(ReceiptIssueError::NotLogged(format!(
            "the dataset {dataset_id} is not in the log (append it: consentgate log append --manifest {})",
            manifest_path.display()
        )));
    }
    // The same dataset may be published more than once (its manifests differ in creation time
    // and engine): the receipt proves the entry of this manifest.
    let index = logged
        .iter()
        .find(|(_, h)| *h == sha)
        .map(|(i, _)| *i)
        .ok_or_else(|| {
            ReceiptIssueError::NotLogged(format!(
                "`{}` differs from the manifest logged for {dataset_id}",
                manifest_path.display()
            ))
        })?;
    let covered = store
        .log_checkpoints()?
        .last()
        .is_some_and(|cp| cp.size > index);
    if !covered {
        crate::log::checkpoint(store, signer)?;
    }
    let log_proof = crate::log::prove(store, index)?;
    Ok(Receipt {
        format: FORMAT.into(),
        statement: statement(member, &dataset_id, included),
        member_id: member,
        dataset_id,
        included,
        member_key: proof.member_key,
        member_key_proof: proof.member_key_proof,
        interval: proof.interval,
        roster: proof.roster,
        manifest: B64.encode(&manifest_bytes),
        log_proof: log_proof.to_text(),
    })
}

/// The scheme-specific part of a receipt.
struct Proof {
    included: bool,
    member_key: String,
    member_key_proof: String,
    interval: Option<IntervalJson>,
    roster: Option<RosterJson>,
}
