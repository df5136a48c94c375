//! Per-member receipts: "member M IS / is NOT in dataset D", checkable offline with only the
//! receipt and the log's verifier key. A receipt carries everything else:
//!
//! 1. the dataset's `manifest.json` bytes, and a C2SP `tlog-proof` that the manifest's log entry
//!    is in a checkpoint signed by the log key;
//! 2. from the manifest: the member commitment's root and the VRF public key;
//! 3. the member's key with its VRF proof (it is the member's, for this dataset, and unique);
//! 4. the interval leaf of the commitment that holds or brackets the key, with its Merkle path.
//!
//! [`verify`] checks all four; the statement follows from the interval alone, and must match
//! what the receipt claims.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cg_model::manifest::ReceiptView;

use crate::commitment::{CommitmentError, IntervalProof, Membership, verify_interval};
use crate::leaves::Entry;
use crate::member_key::{KEY_SCHEME, MemberKeyError, verify_member_key};
use crate::note::Checkpoint;
use crate::tlog_proof::{LogProof, LogProofError};
use crate::{Hash, hex, unhex};

/// The receipt format.
pub const FORMAT: &str = "consentgate-receipt/v1";

/// A receipt (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// [`FORMAT`].
    pub format: String,
    /// Human-readable statement ("member 42 is NOT in dataset ds-…").
    pub statement: String,
    /// The member.
    pub member_id: i64,
    /// The dataset.
    pub dataset_id: String,
    /// Whether the member's content is in the dataset.
    pub included: bool,
    /// The member's key in this dataset (hex).
    pub member_key: String,
    /// Its VRF proof (hex, 80 bytes).
    pub member_key_proof: String,
    /// The interval leaf and its path in the member commitment.
    pub interval: IntervalJson,
    /// `manifest.json`, base64 of its exact bytes.
    pub manifest: String,
    /// C2SP `tlog-proof` of the manifest's log entry.
    pub log_proof: String,
}

/// An [`IntervalProof`] in JSON (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalJson {
    /// Leaf index.
    pub index: u64,
    /// Leaves in the commitment.
    pub size: u64,
    /// Low end.
    pub low: String,
    /// High end.
    pub high: String,
    /// Audit path, leaf to root.
    pub path: Vec<String>,
}

impl From<&IntervalProof> for IntervalJson {
    fn from(p: &IntervalProof) -> IntervalJson {
        IntervalJson {
            index: p.index,
            size: p.size,
            low: hex(&p.low),
            high: hex(&p.high),
            path: p.path.iter().map(|h| hex(h)).collect(),
        }
    }
}

impl IntervalJson {
    fn parse(&self) -> Result<IntervalProof, ReceiptError> {
        let h = |s: &str, what: &'static str| unhex::<32>(s).ok_or(ReceiptError::Field(what));
        Ok(IntervalProof {
            index: self.index,
            size: self.size,
            low: h(&self.low, "interval.low")?,
            high: h(&self.high, "interval.high")?,
            path: self
                .path
                .iter()
                .map(|p| h(p, "interval.path"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The statement for a member and dataset.
pub fn statement(member: i64, dataset_id: &str, included: bool) -> String {
    if included {
        format!("member {member} IS in dataset {dataset_id}")
    } else {
        format!("member {member} is NOT in dataset {dataset_id}")
    }
}

/// Why a receipt does not verify. Each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt of this format.
    #[error("not a {FORMAT} receipt")]
    Format,
    /// A field is malformed.
    #[error("malformed field `{0}`")]
    Field(&'static str),
    /// The receipt is for another member than the one asked about.
    #[error("the receipt is for member {found}, not member {expected}")]
    OtherMember {
        /// Asked about.
        expected: i64,
        /// In the receipt.
        found: i64,
    },
    /// The manifest is not in the signed log.
    #[error("the dataset manifest is not proven in the signed log: {0}")]
    Log(#[from] LogProofError),
    /// The manifest lacks what a receipt needs, or names another dataset.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The member key proof.
    #[error("member key: {0}")]
    MemberKey(#[from] MemberKeyError),
    /// The key in the receipt is not the verified one.
    #[error("the member key in the receipt is not the one its proof yields")]
    KeyMismatch,
    /// The interval proof.
    #[error("member commitment: {0}")]
    Commitment(#[from] CommitmentError),
    /// The receipt claims the opposite of what its proof shows.
    #[error("the receipt claims included={claimed}, its proof shows included={shown}")]
    WrongClaim {
        /// Claimed.
        claimed: bool,
        /// Shown.
        shown: bool,
    },
}

/// What a verified receipt establishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The member.
    pub member_id: i64,
    /// The dataset.
    pub dataset_id: String,
    /// Whether the member is in it.
    pub included: bool,
    /// The signed checkpoint the manifest was proven against.
    pub checkpoint: Checkpoint,
    /// The commitment root.
    pub commitment_root: Hash,
    /// SHA-256 of the manifest.
    pub manifest_sha256: Hash,
}

impl Verified {
    /// The statement.
    pub fn statement(&self) -> String {
        statement(self.member_id, &self.dataset_id, self.included)
    }
}

/// Verifies a receipt with the log's verifier key; with `member`, also that it is that
/// member's.
pub fn verify(
    receipt: &Receipt,
    vkey: &str,
    member: Option<i64>,
) -> Result<Verified, ReceiptError> {
    if receipt.format != FORMAT {
        return Err(ReceiptError::Format);
    }
    if let Some(expected) = member.filter(|m| *m != receipt.member_id) {
        return Err(ReceiptError::OtherMember {
            expected,
            found: receipt.member_id,
        });
    }
    // 1. The manifest is in the signed log.
    let manifest = B64
        .decode(&receipt.manifest)
        .map_err(|_| ReceiptError::Field("manifest"))?;
    let manifest_sha256: Hash = Sha256::digest(&manifest).into();
    let entry = Entry::Manifest {
        dataset_id: receipt.dataset_id.clone(),
        sha256: manifest_sha256,
    };
    let log_proof = LogProof::parse(&receipt.log_proof)?;
    let checkpoint = log_proof.verify(&entry.leaf_hash(), vkey)?;
    // 2. What the manifest commits to.
    let m: ReceiptView = serde_json::from_slice(&manifest)
        .map_err(|e| ReceiptError::Manifest(format!("not a manifest: {e}")))?;
    if m.dataset_id != receipt.dataset_id {
        return Err(ReceiptError::Manifest("it names another dataset".into()));
    }
    let c = m
        .member_commitment
        .ok_or_else(|| ReceiptError::Manifest("it has no member commitment".into()))?;
    if c.key_scheme != KEY_SCHEME {
        return Err(ReceiptError::Manifest(format!(
            "the key scheme is not {KEY_SCHEME}"
        )));
    }
    let field = |name: &str, value: &str| {
        unhex::<32>(value)
            .ok_or_else(|| ReceiptError::Manifest(format!("no member_commitment.{name}")))
    };
    let commitment_root = field("root", &c.root)?;
    let vrf_public_key = field("vrf_public_key", &c.vrf_public_key)?;
    // 3. The member's key.
    let proof =
        unhex::<80>(&receipt.member_key_proof).ok_or(ReceiptError::Field("member_key_proof"))?;
    // The VRF input's dataset part: the dataset's own id, or its first ancestor's for a rebuild.
    let domain = c.key_domain_of(&receipt.dataset_id);
    let key = verify_member_key(&vrf_public_key, domain, receipt.member_id, &proof)?;
    if unhex::<32>(&receipt.member_key) != Some(key) {
        return Err(ReceiptError::KeyMismatch);
    }
    // 4. Presence or absence.
    let shown =
        verify_interval(&receipt.interval.parse()?, &key, &commitment_root)? == Membership::Present;
    if shown != receipt.included {
        return Err(ReceiptError::WrongClaim {
            claimed: receipt.included,
            shown,
        });
    }
    Ok(Verified {
        member_id: receipt.member_id,
        dataset_id: receipt.dataset_id.clone(),
        included: shown,
        checkpoint,
        commitment_root,
        manifest_sha256,
    })
}
