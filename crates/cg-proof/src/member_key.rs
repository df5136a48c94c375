//! Per-dataset member keys from a verifiable random function (RFC 9381 ECVRF on ristretto255,
//! the C2SP `vrf-r255` suite, through the `vrf-r255` crate).
//!
//! A member's key in dataset `D` is the first 32 bytes of `VRF(sk, "consentgate/member-key/v1"
//! ‖ 0x00 ‖ D ‖ 0x00 ‖ member id in decimal)`. Why a VRF and not a salted hash:
//!
//! - **neighbours reveal nothing**: without the secret key nobody can compute another member's
//!   key, so the keys next to a member's in a receipt cannot be matched to guessed member ids
//!   (a public salt fails this: member ids are small integers);
//! - **the key is provably the member's**: the proof lets anyone with the public key check that
//!   the key was computed for this member and dataset, and the output is unique — the operator
//!   cannot pick another key that happens to fall into a gap to claim "not in the dataset";
//! - **unlinkable across datasets**: the dataset id is part of the input.
//!
//! The secret scalar is derived from the log key's seed (SHA-512 with a domain-separation
//! string), so one secret file holds both keys. The scalar alone can be exported
//! ([`MemberKeySecret::secret_file_text`]) for processes that derive member keys but must not
//! sign checkpoints (a distributed build's executors): it does not reveal the seed.
//!
//! [`MemberKeySecret::member_key`] computes only the output (one hash to the group, one scalar
//! multiplication, no proof) for building commitments; it is tested equal to the crate's
//! verified output.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

use crate::commitment::MemberKey;

/// The key scheme named in manifests and receipts.
pub const KEY_SCHEME: &str = "c2sp.org/vrf-r255:consentgate/member-key/v1";

/// The `vrf-r255` suite string (C2SP vrf-r255).
const SUITE: &[u8] = b"\xFFc2sp.org/vrf-r255";

/// Why a member key proof does not verify, or a member-key secret cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberKeyError {
    /// Not a valid public key encoding.
    #[error("not a valid vrf-r255 public key")]
    BadPublicKey,
    /// Not a valid proof encoding.
    #[error("not a valid vrf-r255 proof")]
    BadProof,
    /// The proof does not verify for this member and dataset.
    #[error("the member key proof does not verify for this member and dataset")]
    Mismatch,
    /// Not a member-key secret file.
    #[error("not a consentgate member-key secret: {0}")]
    BadSecret(&'static str),
}

/// The first line of a member-key secret file ([`MemberKeySecret::secret_file_text`]).
pub const SECRET_FILE_HEADER: &str = "consentgate/member-key-secret/v1";

/// The VRF input for a member in a dataset.
pub fn alpha(dataset_id: &str, member: i64) -> Vec<u8> {
    format!("consentgate/member-key/v1\0{dataset_id}\0{member}").into_bytes()
}

/// The VRF secret.
#[derive(Clone)]
pub struct MemberKeySecret {
    sk: vrf_r255::SecretKey,
    x: Scalar,
    /// `x / 2 (mod ℓ)`: [`MemberKeySecret::member_keys`] computes `2 · (x/2)·H = x·H` so that
    /// the doubling and the encoding of a whole batch share one field inversion.
    half_x: Scalar,
    public: [u8; 32],
}

impl std::fmt::Debug for MemberKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberKeySecret")
            .field("public", &crate::hex(&self.public))
            .finish_non_exhaustive()
    }
}

impl MemberKeySecret {
    /// Derives the VRF secret from a 32-byte seed (the log key's).
    pub fn from_seed(seed: &[u8; 32]) -> Result<MemberKeySecret, MemberKeyError> {
        let mut h = Sha512::new();
        h.update(b"consentgate/member-key-vrf/v1\0");
        h.update(seed);
        MemberKeySecret::from_scalar(Scalar::from_bytes_mod_order_wide(&h.finalize().into()))
    }

    fn from_scalar(x: Scalar) -> Result<MemberKeySecret, MemberKeyError> {
        if x == Scalar::ZERO {
            return Err(MemberKeyError::BadSecret("the scalar is zero"));
        }
        let sk: Option<vrf_r255::SecretKey> = vrf_r255::SecretKey::from_bytes(x.to_bytes()).into();
        let sk = sk.ok_or(MemberKeyError::BadSecret("the scalar is zero"))?;
        let public = vrf_r255::PublicKey::from(sk).to_bytes();
        let half_x = x * Scalar::from(2u8).invert();
        Ok(MemberKeySecret {
            sk,
            x,
            half_x,
            public,
        })
    }

    /// The public key (32 bytes, ristretto255). It also names the secret in manifests of the
    /// roster scheme, whose salts come from [`MemberKeySecret::salt_key`].
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The key that salts members' bits in a roster ([`crate::roster`]): SHA-256 of a
    /// domain-separation string and the secret scalar, so whoever holds this secret (the
    /// operator, or an exported secret file) derives the same salts.
    pub fn salt_key(&self) -> crate::roster::SaltKey {
        let mut h = Sha512::new();
        h.update(b"consentgate/member-salt-key/v2\0");
        h.update(self.x.as_bytes());
        let wide: [u8; 64] = h.finalize().into();
        let mut k = [0u8; 32];
        k.copy_from_slice(&wide[..32]);
        crate::roster::SaltKey::new(&k)
    }

    /// The secret as the text of a file (to be kept private): a header line, the public key
    /// and the secret scalar, each in hex —
    ///
    /// ```text
    /// consentgate/member-key-secret/v1
    /// public <64 hex digits>
    /// secret <64 hex digits>
    /// ```
    ///
    /// Whoever holds it can derive and prove member keys; it does not reveal the log key's
    /// seed, so it cannot sign checkpoints.
    pub fn secret_file_text(&self) -> String {
        format!(
            "{SECRET_FILE_HEADER}\npublic {}\nsecret {}\n",
            crate::hex(&self.public),
            crate::hex(self.x.as_bytes())
        )
    }

    /// Reads [`MemberKeySecret::secret_file_text`]: the scalar must be canonical and not zero,
    /// and the public key line must be the scalar's (a file edited by hand or cut short is
    /// refused, never used to derive other keys).
    pub fn from_secret_file_text(text: &str) -> Result<MemberKeySecret, MemberKeyError> {
        let mut lines = text.lines();
        if lines.next() != Some(SECRET_FILE_HEADER) {
            return Err(MemberKeyError::BadSecret(
                "the first line is not the header",
            ));
        }
        let mut field = |name: &str| -> Result<[u8; 32], MemberKeyError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .and_then(unhex32)
                .ok_or(MemberKeyError::BadSecret(
                    "expected `public <hex>` then `secret <hex>`",
                ))
        };
        let public = field("public")?;
        let secret = field("secret")?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(MemberKeyError::BadSecret("text after the secret"));
        }
        let x: Option<Scalar> = Scalar::from_canonical_bytes(secret).into();
        let key = MemberKeySecret::from_scalar(
            x.ok_or(MemberKeyError::BadSecret("the scalar is not canonical"))?,
        )?;
        if key.public != public {
            return Err(MemberKeyError::BadSecret(
                "the public key is not the secret's",
            ));
        }
        Ok(key)
    }

    /// The member's key in a dataset, without a proof (fast path for commitments).
    pub fn member_key(&self, dataset_id: &str, member: i64) -> MemberKey {
        let gamma = self.x * self.hash_to_group(dataset_id, member);
        key_of(gamma.compress().as_bytes())
    }

    /// The keys of many members in one dataset, in order: the same values as
    /// [`MemberKeySecret::member_key`], cheaper per member. The point encodings of a batch are
    /// computed together (`double_and_compress_batch` shares one field inversion, where each
    /// `compress` pays an inverse square root).
    pub fn member_keys(&self, dataset_id: &str, members: &[i64]) -> Vec<MemberKey> {
        const BATCH: usize = 256;
        let mut out = Vec::with_capacity(members.len());
        let mut halves = Vec::with_capacity(BATCH.min(members.len()));
        for chunk in members.chunks(BATCH) {
            halves.clear();
            halves.extend(
                chunk
                    .iter()
                    .map(|m| self.half_x * self.hash_to_group(dataset_id, *m)),
            );
            // 2 · (x/2)·H = x·H: the same gamma as `member_key`.
            for encoded in RistrettoPoint::double_and_compress_batch(&halves) {
                out.push(key_of(encoded.as_bytes()));
            }
        }
        out
    }

    /// The member's input hashed to the group (the ECVRF `encode_to_curve` of vrf-r255).
    fn hash_to_group(&self, dataset_id: &str, member: i64) -> RistrettoPoint {
        let mut h = Sha512::new_with_prefix(SUITE);
        h.update([0x82]);
        h.update(self.public);
        h.update(alpha(dataset_id, member));
        RistrettoPoint::from_uniform_bytes(&h.finalize().into())
    }

    /// The member's key with its proof (80 bytes).
    pub fn prove(&self, dataset_id: &str, member: i64) -> (MemberKey, [u8; 80]) {
        let proof = self.sk.prove(&alpha(dataset_id, member));
        (self.member_key(dataset_id, member), proof.to_bytes())
    }
}

/// 64 hex digits as 32 bytes.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim_end();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The VRF output's first 32 bytes for an encoded gamma.
fn key_of(gamma: &[u8; 32]) -> MemberKey {
    let mut beta = Sha512::new_with_prefix(SUITE);
    beta.update([0x03]);
    beta.update(gamma);
    beta.update([0x00]);
    truncate(&beta.finalize().into())
}

fn truncate(beta: &[u8; 64]) -> MemberKey {
    let mut k = [0u8; 32];
    k.copy_from_slice(&beta[..32]);
    k
}

/// Verifies a member key proof: the key `public` computed for `member` in `dataset_id`.
pub fn verify_member_key(
    public: &[u8; 32],
    dataset_id: &str,
    member: i64,
    proof: &[u8; 80],
) -> Result<MemberKey, MemberKeyError> {
    let pk = vrf_r255::PublicKey::from_bytes(*public).ok_or(MemberKeyError::BadPublicKey)?;
    let proof = vrf_r255::Proof::from_bytes(*proof).ok_or(MemberKeyError::BadProof)?;
    let out: Option<[u8; 64]> = pk.verify(&alpha(dataset_id, member), &proof).into();
    out.map(|b| truncate(&b)).ok_or(MemberKeyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_equals_the_verified_output() {
        let s = MemberKeySecret::from_seed(&[5u8; 32]).unwrap();
        for m in [0i64, 1, 42, -7, i64::MAX] {
            let (k, proof) = s.prove("ds-00ff", m);
            assert_eq!(
                verify_member_key(&s.public_key(), "ds-00ff", m, &proof),
                Ok(k)
            );
            assert_eq!(k, s.member_key("ds-00ff", m));
            // Another member or dataset: the proof fails.
            assert_eq!(
                verify_member_key(&s.public_key(), "ds-00ff", m ^ 1, &proof),
                Err(MemberKeyError::Mismatch)
            );
            assert!(verify_member_key(&s.public_key(), "ds-00fe", m, &proof).is_err());
        }
        assert_ne!(s.member_key("a", 1), s.member_key("b", 1), "per dataset");
        // The batch path gives the same keys, in order, across batch boundaries.
        let members: Vec<i64> = (0..600).map(|i| i * 7919 - 3000).collect();
        let one_by_one: Vec<MemberKey> = members
            .iter()
            .map(|m| s.member_key("ds-00ff", *m))
            .collect();
        assert_eq!(s.member_keys("ds-00ff", &members), one_by_one);
        assert!(s.member_keys("ds-00ff", &[]).is_empty());
        let other = MemberKeySecret::from_seed(&[6u8; 32]).unwrap();
        let (_, proof) = other.prove("a", 1);
        assert!(verify_member_key(&s.public_key(), "a", 1, &proof).is_err());
    }

    #[test]
    fn an_exported_secret_derives_the_same_keys_and_nothing_else_reads_as_one() {
        let s = MemberKeySecret::from_seed(&[9u8; 32]).unwrap();
        let text = s.secret_file_text();
        assert!(text.starts_with(SECRET_FILE_HEADER));
        let back = MemberKeySecret::from_secret_file_text(&text).unwrap();
        assert_eq!(back.public_key(), s.public_key());
        assert_eq!(back.member_key("ds-1", 42), s.member_key("ds-1", 42));
        assert_eq!(
            back.member_keys("ds-1", &[1, 2]),
            s.member_keys("ds-1", &[1, 2])
        );
        // Debug never prints the secret.
        let secret_hex = crate::hex(s.x.as_bytes());
        assert!(!format!("{back:?}").contains(&secret_hex));

        let other = MemberKeySecret::from_seed(&[8u8; 32]).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let swapped_public = format!(
            "{}\npublic {}\n{}\n",
            lines[0],
            crate::hex(&other.public_key()),
            lines[2]
        );
        let zero = format!("{}\n{}\nsecret {}\n", lines[0], lines[1], "0".repeat(64));
        // ℓ itself (the group order) is not a canonical scalar.
        let order = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";
        let non_canonical = format!("{}\n{}\nsecret {order}\n", lines[0], lines[1]);
        for (bad, why) in [
            ("", "empty"),
            (&text[..text.len() - 10], "cut short"),
            (&text.replacen("v1", "v2", 1), "another version"),
            (&swapped_public, "another public key"),
            (&zero, "zero"),
            (&non_canonical, "not canonical"),
            (&format!("{text}more\n"), "trailing text"),
            (&text.replace("secret ", "secret  "), "malformed"),
        ] {
            assert!(
                matches!(
                    MemberKeySecret::from_secret_file_text(bad),
                    Err(MemberKeyError::BadSecret(_))
                ),
                "{why}"
            );
        }
    }
}
