//! Per-member receipts: "member M IS / is NOT in dataset D", checkable offline with only the
//! receipt and the log's verifier key. A receipt carries everything else:
//!
//! 1. the dataset's `manifest.json` bytes, and a C2SP `tlog-proof` that the manifest's log entry
//!    is in a checkpoint signed by the log key;
//! 2. from the manifest: the member commitment's root and its key scheme;
//! 3. for a roster ([`crate::roster`], the default): the member's salt and leaf with its Merkle
//!    path, or the two leaves around the member's position (`roster`);
//!    for the interval scheme (VRF keys, [`crate::commitment`]): the member's key with its VRF
//!    proof and the interval leaf that holds or brackets the key (`member_key_proof`,
//!    `interval`).
//!
//! [`verify`] checks them all; the statement follows from the commitment proof alone, and must
//! match what the receipt claims. Both schemes' receipts have the same format string and
//! top-level fields; the manifest inside says which scheme applies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cg_model::manifest::ReceiptView;

use crate::commitment::{CommitmentError, IntervalProof, Membership, verify_interval};
use crate::leaves::Entry;
use crate::member_key::{KEY_SCHEME, MemberKeyError, verify_member_key};
use crate::note::Checkpoint;
use crate::roster::{ProvenEntry, ROSTER_SCHEME, RosterProof, verify_roster};
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
    /// The member's key in this dataset (hex): their roster position, or their VRF key.
    pub member_key: String,
    /// The VRF key's proof (hex, 80 bytes; interval scheme only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub member_key_proof: String,
    /// The interval leaf and its path in the member commitment (interval scheme only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntervalJson>,
    /// The member's roster proof (roster scheme only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster: Option<RosterJson>,
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

/// A [`RosterProof`] in JSON (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterJson {
    /// Leaves in the roster.
    pub size: u64,
    /// The member's salt, when they have a leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// The member's own leaf, or the leaves around their position.
    pub leaves: Vec<RosterLeafJson>,
}

/// A [`ProvenEntry`] in JSON (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterLeafJson {
    /// Leaf index.
    pub index: u64,
    /// The leaf's position.
    pub position: String,
    /// The leaf's opening (the commitment to its member's bit).
    pub opening: String,
    /// Audit path, leaf to root.
    pub path: Vec<String>,
}

impl From<&RosterProof> for RosterJson {
    fn from(p: &RosterProof) -> RosterJson {
        RosterJson {
            size: p.size,
            salt: p.salt.map(|s| hex(&s)),
            leaves: p
                .entries
                .iter()
                .map(|e| RosterLeafJson {
                    index: e.index,
                    position: hex(&e.position),
                    opening: hex(&e.opening),
                    path: e.path.iter().map(|h| hex(h)).collect(),
                })
                .collect(),
        }
    }
}

impl RosterJson {
    fn parse(&self) -> Result<RosterProof, ReceiptError> {
        let h = |s: &str, what: &'static str| unhex::<32>(s).ok_or(ReceiptError::Field(what));
        Ok(RosterProof {
            size: self.size,
            salt: self
                .salt
                .as_deref()
                .map(|s| h(s, "roster.salt"))
                .transpose()?,
            entries: self
                .leaves
                .iter()
                .map(|l| {
                    Ok(ProvenEntry {
                        index: l.index,
                        position: h(&l.position, "roster.leaves.position")?,
                        opening: h(&l.opening, "roster.leaves.opening")?,
                        path: l
                            .path
                            .iter()
                            .map(|p| h(p, "roster.leaves.path"))
                            .collect::<Result<_, _>>()?,
                    })
                })
                .collect::<Result<_, ReceiptError>>()?,
        })
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
    /// The key in the receipt is not the verified one (or not the member's roster position).
    #[error("the member key in the receipt is not the member's")]
    KeyMismatch,
    /// The commitment proof (the roster's leaves, or the VRF scheme's interval).
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
    let field = |name: &str, value: &str| {
        unhex::<32>(value)
            .ok_or_else(|| ReceiptError::Manifest(format!("no member_commitment.{name}")))
    };
    let commitment_root = field("root", &c.root)?;
    // The key domain: the dataset's own id, or its first ancestor's for a rebuild.
    let domain = c.key_domain_of(&receipt.dataset_id);
    // 3. Presence or absence, by the manifest's scheme.
    let shown = if c.key_scheme == ROSTER_SCHEME {
        let roster = receipt
            .roster
            .as_ref()
            .ok_or(ReceiptError::Field("roster"))?;
        if unhex::<32>(&receipt.member_key)
            != Some(crate::roster::position(domain, receipt.member_id))
        {
            return Err(ReceiptError::KeyMismatch);
        }
        verify_roster(
            &roster.parse()?,
            domain,
            receipt.member_id,
            &commitment_root,
        )?
    } else if c.key_scheme == KEY_SCHEME {
        let vrf_public_key = field("vrf_public_key", &c.vrf_public_key)?;
        let proof = unhex::<80>(&receipt.member_key_proof)
            .ok_or(ReceiptError::Field("member_key_proof"))?;
        let key = verify_member_key(&vrf_public_key, domain, receipt.member_id, &proof)?;
        if unhex::<32>(&receipt.member_key) != Some(key) {
            return Err(ReceiptError::KeyMismatch);
        }
        let interval = receipt
            .interval
            .as_ref()
            .ok_or(ReceiptError::Field("interval"))?;
        verify_interval(&interval.parse()?, &key, &commitment_root)? == Membership::Present
    } else {
        return Err(ReceiptError::Manifest(format!(
            "the key scheme `{}` is neither {ROSTER_SCHEME} nor {KEY_SCHEME}",
            c.key_scheme
        )));
    };
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
