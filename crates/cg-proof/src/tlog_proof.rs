//! C2SP `tlog-proof`: an inclusion proof packaged with the signed checkpoint it leads to, so it
//! can be checked offline with only the log's verifier key.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! index 3
//! <base64 hash>        (the audit path, leaf to root, one per line)
//! …
//!
//! <signed checkpoint note>
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::note::{Checkpoint, NoteError, NoteVerifier, open};
use crate::{Hash, ProofError, verify_inclusion};

/// The first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Why a log proof does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogProofError {
    /// Malformed proof text.
    #[error("malformed tlog-proof: {0}")]
    Malformed(String),
    /// The checkpoint's note or signature.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint is from another log.
    #[error("the checkpoint's origin `{found}` is not the log `{expected}`")]
    Origin {
        /// The verifier key's log.
        expected: String,
        /// The checkpoint's origin.
        found: String,
    },
    /// The inclusion proof fails.
    #[error("the entry is not at index {index} of the checkpointed tree: {source}")]
    Inclusion {
        /// The index.
        index: u64,
        /// Why.
        source: ProofError,
    },
}

/// A parsed proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogProof {
    /// Optional application data.
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The audit path.
    pub path: Vec<Hash>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl LogProof {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut s = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            s.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        s.push_str(&format!("index {}\n", self.index));
        for h in &self.path {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<LogProof, LogProofError> {
        let bad = |why: &str| LogProofError::Malformed(why.to_owned());
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("the first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
        let mut extra = None;
        if let Some(b) = line.strip_prefix("extra ") {
            extra = Some(B64.decode(b).map_err(|e| bad(&format!("extra: {e}")))?);
            line = lines.next().ok_or_else(|| bad("no index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(|n| n.parse::<u64>().ok().filter(|v| v.to_string() == n))
            .ok_or_else(|| bad("bad index line"))?;
        let path = lines
            .map(|l| {
                B64.decode(l)
                    .ok()
                    .and_then(|v| <Hash>::try_from(v).ok())
                    .ok_or_else(|| bad(&format!("`{l}` is not a base64 hash")))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        Ok(LogProof {
            extra,
            index,
            path,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Verifies the checkpoint's signature with `vkey` (its origin must be the key's name) and
    /// that `leaf` is at `index` in it; returns the checkpoint.
    pub fn verify(&self, leaf: &Hash, vkey: &str) -> Result<Checkpoint, LogProofError> {
        let verifier = NoteVerifier::parse(vkey)?;
        let body = open(&self.checkpoint, vkey)?;
        let cp = Checkpoint::parse(&body)?;
        if cp.origin != verifier.name() {
            return Err(LogProofError::Origin {
                expected: verifier.name().to_owned(),
                found: cp.origin,
            });
        }
        verify_inclusion(self.index, cp.size, leaf, &self.path, &cp.root).map_err(|source| {
            LogProofError::Inclusion {
                index: self.index,
                source,
            }
        })?;
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;
    use crate::{inclusion_proof, leaf_hash, root};

    #[test]
    fn round_trip_verify_and_tamper() {
        let signer = NoteSigner::from_seed("log.example/a", &[3u8; 32]).unwrap();
        let leaves: Vec<Hash> = (0..11u8).map(|i| leaf_hash(&[i])).collect();
        let cp = Checkpoint {
            origin: "log.example/a".into(),
            size: 11,
            root: root(&leaves),
            extensions: vec![],
        };
        let proof = LogProof {
            extra: Some(b"hello".to_vec()),
            index: 6,
            path: inclusion_proof(6, &leaves).unwrap(),
            checkpoint: signer.sign(&cp.body()),
        };
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra aGVsbG8=\nindex 6\n"));
        let back = LogProof::parse(&text).unwrap();
        assert_eq!(back, proof);
        assert_eq!(back.verify(&leaves[6], &signer.verifier_key()).unwrap(), cp);
        assert!(matches!(
            back.verify(&leaves[5], &signer.verifier_key()),
            Err(LogProofError::Inclusion { .. })
        ));
        let other = NoteSigner::from_seed("log.example/b", &[3u8; 32]).unwrap();
        let foreign = LogProof {
            checkpoint: other.sign(&cp.body()),
            ..proof.clone()
        };
        assert!(matches!(
            foreign.verify(&leaves[6], &other.verifier_key()),
            Err(LogProofError::Origin { .. })
        ));
        assert!(LogProof::parse(&text.replace("index 6", "index 06")).is_err());
        assert!(LogProof::parse(&text.replacen("c2sp", "x", 1)).is_err());
    }
}
