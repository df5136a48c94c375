//! C2SP `tlog-checkpoint` bodies inside C2SP `signed-note`s, signed with Ed25519.
//!
//! A checkpoint body is three lines (origin, tree size in decimal, base64 root hash) plus
//! optional extension lines, each ending in a newline. A signed note is the body, one blank
//! line, then signature lines `— <key name> <base64(key id ‖ signature)>`. The key id is the
//! first four bytes of SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key); a verifier key is written
//! `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
//!
//! ```
//! use cg_proof::note::{Checkpoint, NoteSigner};
//! let signer = NoteSigner::from_seed("consentgate.example/log", &[7u8; 32]).unwrap();
//! let cp = Checkpoint { origin: "consentgate.example/log".into(), size: 1, root: [0u8; 32], extensions: vec![] };
//! let note = signer.sign(&cp.body());
//! let verified = cg_proof::note::open(&note, &signer.verifier_key()).unwrap();
//! assert_eq!(Checkpoint::parse(&verified).unwrap(), cp);
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::Hash;

/// Errors parsing, signing or verifying notes and checkpoints.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Malformed text.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        why: String,
    },
    /// No signature by the verifier's key, or a signature that does not verify.
    #[error("no valid signature by `{0}`")]
    BadSignature(String),
}

fn malformed(what: &'static str, why: impl Into<String>) -> NoteError {
    NoteError::Malformed {
        what,
        why: why.into(),
    }
}

/// A tree head: `origin`, `size`, `root`, and extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (its unique name, e.g. `consentgate.example/ledger`).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// Extension lines (no newlines).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body.
    pub fn body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a body.
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or_else(|| malformed("checkpoint", "no final newline"))?
            .split('\n')
            .collect();
        if lines.len() < 3 || lines.iter().any(|l| l.is_empty()) {
            return Err(malformed(
                "checkpoint",
                "needs origin, size and root lines, none empty",
            ));
        }
        let size: u64 = lines[1]
            .parse()
            .ok()
            .filter(|_| {
                !lines[1].starts_with('+') && (lines[1] == "0" || !lines[1].starts_with('0'))
            })
            .ok_or_else(|| {
                malformed(
                    "checkpoint",
                    format!("size `{}` is not a decimal number", lines[1]),
                )
            })?;
        let root: Hash = B64
            .decode(lines[2])
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| malformed("checkpoint", "root is not a base64 SHA-256 hash"))?;
        Ok(Checkpoint {
            origin: lines[0].to_owned(),
            size,
            root,
            extensions: lines[3..].iter().map(|s| s.to_string()).collect(),
        })
    }
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([0x01]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// Signs notes with one Ed25519 key.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` from a 32-byte seed (the private key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, NoteError> {
        if !valid_name(name) {
            return Err(malformed(
                "key name",
                format!("`{name}` must be non-empty, without `+` or spaces"),
            ));
        }
        Ok(NoteSigner {
            name: name.to_owned(),
            key: SigningKey::from_bytes(seed),
        })
    }

    /// The verifier key, `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    pub fn verifier_key(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let id = key_id(&self.name, &public);
        let mut typed = vec![0x01];
        typed.extend_from_slice(&public);
        format!(
            "{}+{}+{}",
            self.name,
            id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            B64.encode(typed)
        )
    }

    /// The key's name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-byte seed (secret).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The private key in the Go `note` package's text form,
    /// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>` (secret: store it 0600).
    pub fn private_key(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let id = key_id(&self.name, &public);
        let mut typed = vec![0x01];
        typed.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            B64.encode(typed)
        )
    }

    /// Parses a private key written by [`NoteSigner::private_key`] (or Go's `note.GenerateKey`).
    pub fn parse_private_key(skey: &str) -> Result<NoteSigner, NoteError> {
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| malformed("private key", "expected PRIVATE+KEY+name+id+key"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("private key", "expected PRIVATE+KEY+name+id+key"));
        };
        let typed = B64
            .decode(key_b64)
            .map_err(|e| malformed("private key", e.to_string()))?;
        let (Some(&0x01), Ok(seed)) = (
            typed.first(),
            <[u8; 32]>::try_from(&typed[1.min(typed.len())..]),
        ) else {
            return Err(malformed("private key", "not an Ed25519 key"));
        };
        let signer = NoteSigner::from_seed(name, &seed)?;
        let public = signer.key.verifying_key().to_bytes();
        let hex: String = key_id(name, &public)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if hex != id_hex {
            return Err(malformed(
                "private key",
                "the key id does not match the name and key",
            ));
        }
        Ok(signer)
    }

    /// Signs `body` (which must end with a newline) into a note.
    pub fn sign(&self, body: &str) -> String {
        let public = self.key.verifying_key().to_bytes();
        let sig = self.key.sign(body.as_bytes()).to_bytes();
        let mut blob = key_id(&self.name, &public).to_vec();
        blob.extend_from_slice(&sig);
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// A parsed verifier key.
#[derive(Clone, Debug)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<hex id>+<base64(0x01 ‖ key)>` and checks the id against the key.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("verifier key", "expected name+id+key"));
        };
        let typed = B64
            .decode(key_b64)
            .map_err(|e| malformed("verifier key", e.to_string()))?;
        let (Some(&0x01), Ok(public)) = (
            typed.first(),
            <[u8; 32]>::try_from(&typed[1.min(typed.len())..]),
        ) else {
            return Err(malformed("verifier key", "not an Ed25519 key"));
        };
        let id = key_id(name, &public);
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        if hex != id_hex || !valid_name(name) {
            return Err(malformed(
                "verifier key",
                "the key id does not match the name and key",
            ));
        }
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|e| malformed("verifier key", e.to_string()))?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Verifies `note` against the verifier key and returns its body.
pub fn open(note: &str, vkey: &str) -> Result<String, NoteError> {
    let v = NoteVerifier::parse(vkey)?;
    let (body, sigs) = note
        .rsplit_once("\n\n")
        .ok_or_else(|| malformed("note", "no blank line before the signatures"))?;
    let body = format!("{body}\n");
    for line in sigs.lines() {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(malformed(
                "note",
                format!("`{line}` is not a signature line"),
            ));
        };
        let Some((name, blob)) = rest.rsplit_once(' ') else {
            return Err(malformed("note", "signature line without a signature"));
        };
        if name != v.name {
            continue;
        }
        let blob = B64
            .decode(blob)
            .map_err(|e| malformed("note", e.to_string()))?;
        if blob.len() != 68 || blob[..4] != v.id {
            continue;
        }
        let sig = Signature::from_bytes(
            blob[4..]
                .try_into()
                .map_err(|_| malformed("note", "short signature"))?,
        );
        if v.key.verify(body.as_bytes(), &sig).is_ok() {
            return Ok(body);
        }
    }
    Err(NoteError::BadSignature(v.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("consentgate.example/log", &[42u8; 32]).unwrap()
    }

    #[test]
    fn round_trip_and_tamper() {
        let cp = Checkpoint {
            origin: "consentgate.example/log".into(),
            size: 12,
            root: crate::leaf_hash(b"x"),
            extensions: vec!["ext one".into()],
        };
        let note = signer().sign(&cp.body());
        assert!(note.contains("\n\n\u{2014} consentgate.example/log "));
        let body = open(&note, &signer().verifier_key()).unwrap();
        assert_eq!(Checkpoint::parse(&body).unwrap(), cp);
        // Any change to the body breaks the signature.
        let tampered = note.replacen("\n12\n", "\n13\n", 1);
        assert_eq!(
            open(&tampered, &signer().verifier_key()),
            Err(NoteError::BadSignature("consentgate.example/log".into()))
        );
        // Another key does not verify it.
        let other = NoteSigner::from_seed("consentgate.example/log", &[1u8; 32]).unwrap();
        assert!(open(&note, &other.verifier_key()).is_err());
    }

    #[test]
    fn verifier_keys_are_checked() {
        let vk = signer().verifier_key();
        assert!(NoteVerifier::parse(&vk).is_ok());
        let (name, rest) = vk.split_once('+').unwrap();
        assert!(
            NoteVerifier::parse(&format!("{name}x+{rest}")).is_err(),
            "name does not match the id"
        );
        assert!(NoteVerifier::parse("nonsense").is_err());
        assert!(NoteSigner::from_seed("has space", &[0u8; 32]).is_err());
    }

    #[test]
    fn private_keys_round_trip() {
        let s = signer();
        let skey = s.private_key();
        assert!(skey.starts_with("PRIVATE+KEY+consentgate.example/log+"));
        let back = NoteSigner::parse_private_key(&skey).unwrap();
        assert_eq!(back.verifier_key(), s.verifier_key());
        assert_eq!(back.seed(), [42u8; 32]);
        assert!(
            NoteSigner::parse_private_key(&skey.replace("PRIVATE+KEY+c", "PRIVATE+KEY+d")).is_err()
        );
        assert!(NoteSigner::parse_private_key(&s.verifier_key()).is_err());
    }

    #[test]
    fn checkpoint_parsing_is_strict() {
        for bad in [
            "o\n1\n",
            "o\n01\nAAAA\n",
            "o\n1\nnot base64!\n",
            "o\n1\nAAAA\n",
            "o\nx\nAAAA\n",
            "",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
