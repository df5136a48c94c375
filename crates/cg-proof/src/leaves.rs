//! The entries of consentgate's transparency log, as bytes. Three kinds, all short UTF-8 text
//! so an auditor can read a tile's entry bundle with `cat`:
//!
//! ```text
//! consentgate/consent-event/v1
//! seq 42
//! commitment 5d0c…(64 hex digits)
//! ```
//!
//! ```text
//! consentgate/dataset-manifest/v1
//! dataset ds-0123456789abcdef
//! sha256 9f86…(64 hex digits)
//! ```
//!
//! ```text
//! consentgate/policy-activation/v1
//! policy 3f1a…(the policy's content hash)
//! accepted-widening "the DPO's reason, as a JSON string" (or null)
//! ```
//!
//! A consent event's entry holds a salted commitment to the event, not the event: the log can
//! be published as tiles without publishing who objected to what. The ledger keeps the event
//! and its salt; `consentgate log prove --event` hands both out with the proof.

use crate::{Hash, hex, unhex};

/// The first line of a consent event entry.
pub const EVENT_HEADER: &str = "consentgate/consent-event/v1";
/// The first line of a dataset manifest entry.
pub const MANIFEST_HEADER: &str = "consentgate/dataset-manifest/v1";

/// The first line of a policy activation entry.
pub const POLICY_HEADER: &str = "consentgate/policy-activation/v1";

/// A parsed log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A consent event: its ledger position and the commitment to its content.
    Event {
        /// The event's `seq` in the ledger.
        seq: i64,
        /// SHA-256 of the event's canonical form (with its salt).
        commitment: Hash,
    },
    /// A published dataset.
    Manifest {
        /// The dataset id.
        dataset_id: String,
        /// SHA-256 of `manifest.json`'s bytes.
        sha256: Hash,
    },
    /// A policy put in force (the service's `POST /v1/admin/policies/activate`).
    PolicyActivation {
        /// The policy's content hash (no whitespace).
        policy_hash: String,
        /// Why a change that admits something the previous policy denied was accepted
        /// anyway; `None` when it was not a widening (or not checked).
        accepted_widening: Option<String>,
    },
}

impl Entry {
    /// The entry's bytes (the Merkle leaf is SHA-256(0x00 ‖ these bytes)).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Entry::Event { seq, commitment } => format!(
                "{EVENT_HEADER}\nseq {seq}\ncommitment {}\n",
                hex(commitment)
            )
            .into_bytes(),
            Entry::Manifest { dataset_id, sha256 } => format!(
                "{MANIFEST_HEADER}\ndataset {dataset_id}\nsha256 {}\n",
                hex(sha256)
            )
            .into_bytes(),
            Entry::PolicyActivation {
                policy_hash,
                accepted_widening,
            } => format!(
                "{POLICY_HEADER}\npolicy {policy_hash}\naccepted-widening {}\n",
                serde_json::to_string(accepted_widening).unwrap_or_else(|_| "null".to_owned())
            )
            .into_bytes(),
        }
    }

    /// Parses an entry; `None` if the bytes are not exactly an encoding of an entry.
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.strip_suffix('\n')?.split('\n');
        let header = lines.next()?;
        let first = lines.next()?;
        let second = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        let entry = match header {
            EVENT_HEADER => Entry::Event {
                seq: first.strip_prefix("seq ")?.parse().ok()?,
                commitment: unhex(second.strip_prefix("commitment ")?)?,
            },
            MANIFEST_HEADER => Entry::Manifest {
                dataset_id: first.strip_prefix("dataset ")?.to_owned(),
                sha256: unhex(second.strip_prefix("sha256 ")?)?,
            },
            POLICY_HEADER => Entry::PolicyActivation {
                policy_hash: first.strip_prefix("policy ")?.to_owned(),
                accepted_widening: serde_json::from_str(second.strip_prefix("accepted-widening ")?)
                    .ok()?,
            },
            _ => return None,
        };
        // Canonical only: re-encoding gives the same bytes.
        (entry.encode() == bytes).then_some(entry)
    }

    /// The Merkle leaf hash of this entry.
    pub fn leaf_hash(&self) -> Hash {
        crate::leaf_hash(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reject_variants() {
        let e = Entry::Event {
            seq: 42,
            commitment: [7u8; 32],
        };
        let m = Entry::Manifest {
            dataset_id: "ds-0011".into(),
            sha256: [9u8; 32],
        };
        let p = Entry::PolicyActivation {
            policy_hash: "ab12".into(),
            accepted_widening: Some("resume \"EU\"\nafter notice".into()),
        };
        let q = Entry::PolicyActivation {
            policy_hash: "ab12".into(),
            accepted_widening: None,
        };
        assert!(String::from_utf8(p.encode()).unwrap().lines().count() == 3);
        for x in [&e, &m, &p, &q] {
            assert_eq!(Entry::decode(&x.encode()).as_ref(), Some(x));
        }
        assert!(
            String::from_utf8(m.encode())
                .unwrap()
                .starts_with(MANIFEST_HEADER)
        );
        let mut bad = e.encode();
        bad.pop();
        assert_eq!(Entry::decode(&bad), None);
        let upper = String::from_utf8(e.encode())
            .unwrap()
            .replace("0707", "0F07");
        assert_eq!(Entry::decode(upper.as_bytes()), None, "non-canonical hex");
        assert_eq!(
            Entry::decode(b"consentgate/consent-event/v1\nseq x\ncommitment 00\n"),
            None
        );
    }
}
