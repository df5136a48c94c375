//! A dataset's member commitment: a Merkle tree (RFC 6962 hashing) over the sorted member keys
//! of the members whose content is in the dataset, in the *sorted interval* form: leaf `i`
//! covers key `kᵢ` and the gap up to the next key, with sentinels at both ends —
//!
//! ```text
//! leaves: (00…00, k₁) (k₁, k₂) (k₂, k₃) … (kₙ, ff…ff)        n members → n + 1 leaves
//! leaf bytes: "consentgate/member-interval/v1" ‖ low ‖ high  (30 + 32 + 32 bytes)
//! ```
//!
//! so one inclusion proof answers both questions: a leaf whose `low` is the member's key shows
//! presence; a leaf with `low < key < high` shows absence (the tree's leaves are adjacent and
//! sorted, which the proof's index and the sentinels pin down).
//!
//! ```
//! use cg_proof::commitment::{Commitment, Membership, verify_interval};
//! let c = Commitment::from_keys(vec![[3u8; 32], [1u8; 32]]).unwrap();
//! let present = c.prove(&[3u8; 32]);
//! assert_eq!(verify_interval(&present, &[3u8; 32], &c.root()), Ok(Membership::Present));
//! let absent = c.prove(&[2u8; 32]);
//! assert_eq!(verify_interval(&absent, &[2u8; 32], &c.root()), Ok(Membership::Absent));
//! ```

use crate::{Hash, ProofError, inclusion_proof, leaf_hash, root, verify_inclusion};

/// A member's key in one dataset (see [`crate::member_key`]).
pub type MemberKey = [u8; 32];

/// The low sentinel (no key may equal it).
pub const LOW: MemberKey = [0u8; 32];
/// The high sentinel (no key may equal it).
pub const HIGH: MemberKey = [0xffu8; 32];

/// The domain-separation prefix of an interval leaf.
pub const INTERVAL_PREFIX: &[u8] = b"consentgate/member-interval/v1";

/// The first line of a `members.commitment` file.
pub const FILE_HEADER: &[u8] = b"consentgate/member-commitment/v1\n";

/// Why a commitment or an interval proof is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    /// A key equals a sentinel.
    #[error("a member key equals a sentinel")]
    SentinelKey,
    /// A commitment file is malformed.
    #[error("malformed commitment: {0}")]
    Malformed(String),
    /// The interval does not contain the key.
    #[error("the proven interval does not contain the member key")]
    KeyOutsideInterval,
    /// The interval is not well formed for its position.
    #[error("the proven interval is not a valid leaf at its position: {0}")]
    BadInterval(&'static str),
    /// A roster proof is not well formed, or its leaves do not show what it claims.
    #[error("the roster proof is not valid: {0}")]
    BadRoster(&'static str),
    /// The Merkle proof fails.
    #[error("the interval is not in the commitment: {0}")]
    Proof(#[from] ProofError),
}

/// Why a commitment file could not be written as a stream ([`IntervalWriter`],
/// [`crate::roster::RosterWriter`]).
#[derive(Debug, thiserror::Error)]
pub enum CommitmentWriteError {
    /// Writing failed.
    #[error("writing the commitment: {0}")]
    Io(#[from] std::io::Error),
    /// An entry is not above the one before.
    #[error("the commitment's entries are not sorted and unique (a member listed twice?)")]
    Unsorted,
    /// A member key equals a sentinel.
    #[error("a member key equals a sentinel")]
    SentinelKey,
    /// More or fewer entries than announced.
    #[error("the commitment was to have {expected} entries, it was given {given}")]
    Count {
        /// Announced.
        expected: u64,
        /// Given (so far, when more).
        given: u64,
    },
}

/// Writes a `members.commitment` file of VRF keys — the bytes of [`Commitment::encode`] — from
/// keys given in ascending order, computing the root on the way ([`crate::CompactRange`]):
/// a commitment too large to hold is written as a stream, from sorted runs merged. The key
/// count comes first in the file, so it is given up front and checked at the end.
pub struct IntervalWriter<W: std::io::Write> {
    out: W,
    count: u64,
    given: u64,
    /// The low end of the next interval: the last key, or [`LOW`].
    low: MemberKey,
    range: crate::CompactRange,
}

impl<W: std::io::Write> std::fmt::Debug for IntervalWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntervalWriter")
            .field("count", &self.count)
            .field("given", &self.given)
            .finish_non_exhaustive()
    }
}

impl<W: std::io::Write> IntervalWriter<W> {
    /// A writer of `count` keys into `out`; the header and the count are written now.
    pub fn new(mut out: W, count: u64) -> std::io::Result<IntervalWriter<W>> {
        out.write_all(FILE_HEADER)?;
        out.write_all(&count.to_be_bytes())?;
        Ok(IntervalWriter {
            out,
            count,
            given: 0,
            low: LOW,
            range: crate::CompactRange::new(),
        })
    }

    /// Appends the next key: above the last one, and neither sentinel.
    pub fn push(&mut self, key: &MemberKey) -> Result<(), CommitmentWriteError> {
        if *key == LOW || *key == HIGH {
            return Err(CommitmentWriteError::SentinelKey);
        }
        if self.given > 0 && self.low >= *key {
            return Err(CommitmentWriteError::Unsorted);
        }
        if self.given == self.count {
            return Err(CommitmentWriteError::Count {
                expected: self.count,
                given: self.count + 1,
            });
        }
        self.out.write_all(key)?;
        self.range.push(interval_leaf(&self.low, key));
        self.low = *key;
        self.given += 1;
        Ok(())
    }

    /// The file is complete: checks the count, adds the last interval (to [`HIGH`]), flushes,
    /// and returns the output and the root.
    pub fn finish(mut self) -> Result<(W, Hash), CommitmentWriteError> {
        if self.given != self.count {
            return Err(CommitmentWriteError::Count {
                expected: self.count,
                given: self.given,
            });
        }
        self.range.push(interval_leaf(&self.low, &HIGH));
        self.out.flush()?;
        Ok((self.out, self.range.root()))
    }
}

/// What an interval proof shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// The key is a leaf's low end: the member is in the dataset.
    Present,
    /// The key is strictly inside a gap: the member is not in the dataset.
    Absent,
}

/// The hash of the interval leaf `(low, high)`.
pub fn interval_leaf(low: &MemberKey, high: &MemberKey) -> Hash {
    let mut data = Vec::with_capacity(INTERVAL_PREFIX.len() + 64);
    data.extend_from_slice(INTERVAL_PREFIX);
    data.extend_from_slice(low);
    data.extend_from_slice(high);
    leaf_hash(&data)
}

/// A built commitment: the sorted keys, the interval leaves and the root.
#[derive(Clone, Debug)]
pub struct Commitment {
    keys: Vec<MemberKey>,
    leaves: Vec<Hash>,
    root: Hash,
}

impl Commitment {
    /// Builds the commitment of a set of keys (any order; duplicates count once).
    pub fn from_keys(mut keys: Vec<MemberKey>) -> Result<Commitment, CommitmentError> {
        keys.sort_unstable();
        keys.dedup();
        Commitment::from_sorted(keys)
    }

    /// Builds from keys already sorted and unique (checked).
    pub fn from_sorted(keys: Vec<MemberKey>) -> Result<Commitment, CommitmentError> {
        if keys.first() == Some(&LOW) || keys.last() == Some(&HIGH) {
            return Err(CommitmentError::SentinelKey);
        }
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err(CommitmentError::Malformed(
                "keys are not sorted and unique".into(),
            ));
        }
        let mut leaves = Vec::with_capacity(keys.len() + 1);
        let mut low = LOW;
        for k in &keys {
            leaves.push(interval_leaf(&low, k));
            low = *k;
        }
        leaves.push(interval_leaf(&low, &HIGH));
        let root = root(&leaves);
        Ok(Commitment { keys, leaves, root })
    }

    /// The root.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Members committed to.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no member is committed to.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Leaves (members + 1).
    pub fn leaf_count(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The sorted keys.
    pub fn keys(&self) -> &[MemberKey] {
        &self.keys
    }

    /// The proof for `key`: the leaf whose interval starts at it (present) or contains it
    /// (absent).
    pub fn prove(&self, key: &MemberKey) -> IntervalProof {
        // Index of the leaf: 1 + position of key if present, else the gap it falls in.
        let index = match self.keys.binary_search(key) {
            Ok(i) => i + 1,
            Err(i) => i,
        };
        let low = if index == 0 {
            LOW
        } else {
            self.keys[index - 1]
        };
        let high = self.keys.get(index).copied().unwrap_or(HIGH);
        IntervalProof {
            index: index as u64,
            size: self.leaf_count(),
            low,
            high,
            // The index is always inside the tree (n + 1 leaves, index ≤ n).
            path: inclusion_proof(index as u64, &self.leaves).unwrap_or_default(),
        }
    }

    /// The `members.commitment` file: [`FILE_HEADER`], the member count as 8 bytes big-endian,
    /// then the sorted keys, 32 bytes each.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FILE_HEADER.len() + 8 + 32 * self.keys.len());
        out.extend_from_slice(FILE_HEADER);
        out.extend_from_slice(&(self.keys.len() as u64).to_be_bytes());
        for k in &self.keys {
            out.extend_from_slice(k);
        }
        out
    }

    /// Parses a `members.commitment` file and rebuilds the tree.
    pub fn decode(bytes: &[u8]) -> Result<Commitment, CommitmentError> {
        let keys = counted_records(bytes, FILE_HEADER, 32, "members")?;
        let keys: Vec<MemberKey> = keys
            .chunks_exact(32)
            .map(|c| {
                let mut k = [0u8; 32];
                k.copy_from_slice(c);
                k
            })
            .collect();
        Commitment::from_sorted(keys)
    }
}

/// The records of a commitment file: after `header`, their count (8 bytes big-endian), then
/// the records, `width` bytes each — checked to be exactly that many (`what` names them in
/// errors).
pub(crate) fn counted_records<'a>(
    bytes: &'a [u8],
    header: &[u8],
    width: u64,
    what: &str,
) -> Result<&'a [u8], CommitmentError> {
    let rest = bytes
        .strip_prefix(header)
        .ok_or_else(|| CommitmentError::Malformed("missing header line".into()))?;
    let (count, records) = rest
        .split_at_checked(8)
        .ok_or_else(|| CommitmentError::Malformed(format!("missing count of {what}")))?;
    let mut n = [0u8; 8];
    n.copy_from_slice(count);
    let n = u64::from_be_bytes(n);
    if records.len() as u64 != n.saturating_mul(width) {
        return Err(CommitmentError::Malformed(format!(
            "{n} {what} announced, {} bytes of records",
            records.len()
        )));
    }
    Ok(records)
}

/// A `members.commitment` file of either scheme, told apart by its first line: the sorted
/// interval tree over VRF member keys ([`Commitment`], [`crate::member_key::KEY_SCHEME`]) or
/// the roster ([`crate::roster::Roster`], [`crate::roster::ROSTER_SCHEME`]).
#[derive(Clone, Debug)]
pub enum DatasetCommitment {
    /// Sorted intervals over VRF keys.
    Intervals(Commitment),
    /// A roster of salted bits.
    Roster(crate::roster::Roster),
}

impl DatasetCommitment {
    /// Parses a `members.commitment` file of either scheme.
    pub fn decode(bytes: &[u8]) -> Result<DatasetCommitment, CommitmentError> {
        if bytes.starts_with(crate::roster::ROSTER_FILE_HEADER) {
            crate::roster::Roster::decode(bytes).map(DatasetCommitment::Roster)
        } else {
            Commitment::decode(bytes).map(DatasetCommitment::Intervals)
        }
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            DatasetCommitment::Intervals(c) => c.encode(),
            DatasetCommitment::Roster(r) => r.encode(),
        }
    }

    /// The root.
    pub fn root(&self) -> Hash {
        match self {
            DatasetCommitment::Intervals(c) => c.root(),
            DatasetCommitment::Roster(r) => r.root(),
        }
    }

    /// The key scheme a manifest names for it.
    pub fn scheme(&self) -> &'static str {
        match self {
            DatasetCommitment::Intervals(_) => crate::member_key::KEY_SCHEME,
            DatasetCommitment::Roster(_) => crate::roster::ROSTER_SCHEME,
        }
    }

    /// The count a manifest records for the file itself: members committed to (intervals: the
    /// included members), or leaves (roster: every member with content in the input).
    pub fn entries(&self) -> u64 {
        match self {
            DatasetCommitment::Intervals(c) => c.len() as u64,
            DatasetCommitment::Roster(r) => r.len() as u64,
        }
    }
}

/// An inclusion proof of one interval leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntervalProof {
    /// Leaf index.
    pub index: u64,
    /// Leaves in the tree (members + 1).
    pub size: u64,
    /// The interval's low end (a member key, or the low sentinel at index 0).
    pub low: MemberKey,
    /// The interval's high end (the next member key, or the high sentinel at the last index).
    pub high: MemberKey,
    /// Audit path, leaf to root.
    pub path: Vec<Hash>,
}

/// Verifies an interval proof for `key` against `root`: presence or absence.
pub fn verify_interval(
    proof: &IntervalProof,
    key: &MemberKey,
    root: &Hash,
) -> Result<Membership, CommitmentError> {
    if proof.low >= proof.high {
        return Err(CommitmentError::BadInterval("low is not below high"));
    }
    if (proof.index == 0) != (proof.low == LOW) {
        return Err(CommitmentError::BadInterval(
            "only the first leaf starts at the low sentinel",
        ));
    }
    if (proof.index + 1 == proof.size) != (proof.high == HIGH) {
        return Err(CommitmentError::BadInterval(
            "only the last leaf ends at the high sentinel",
        ));
    }
    verify_inclusion(
        proof.index,
        proof.size,
        &interval_leaf(&proof.low, &proof.high),
        &proof.path,
        root,
    )?;
    if *key == proof.low && proof.index > 0 {
        Ok(Membership::Present)
    } else if proof.low < *key && *key < proof.high {
        Ok(Membership::Absent)
    } else {
        Err(CommitmentError::KeyOutsideInterval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> MemberKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&(i * 2 + 1).to_be_bytes());
        k
    }

    #[test]
    fn keys_written_as_a_stream_are_the_encoded_commitment() {
        for n in [0u32, 1, 2, 3, 9, 300] {
            let keys: Vec<MemberKey> = (0..n).map(key).collect();
            let held = Commitment::from_keys(keys.clone()).unwrap();
            let mut w = IntervalWriter::new(Vec::new(), n as u64).unwrap();
            for k in &keys {
                w.push(k).unwrap();
            }
            let (bytes, root) = w.finish().unwrap();
            assert_eq!(bytes, held.encode(), "{n} keys");
            assert_eq!(root, held.root());
        }
        // Out of order or twice, a sentinel, fewer or more keys than announced: refused.
        let mut w = IntervalWriter::new(Vec::new(), 3).unwrap();
        w.push(&key(2)).unwrap();
        assert!(matches!(
            w.push(&key(1)),
            Err(CommitmentWriteError::Unsorted)
        ));
        assert!(matches!(
            w.push(&key(2)),
            Err(CommitmentWriteError::Unsorted)
        ));
        assert!(matches!(
            w.push(&HIGH),
            Err(CommitmentWriteError::SentinelKey)
        ));
        assert!(matches!(
            w.push(&LOW),
            Err(CommitmentWriteError::SentinelKey)
        ));
        assert!(matches!(
            w.finish(),
            Err(CommitmentWriteError::Count {
                expected: 3,
                given: 1
            })
        ));
        let mut w = IntervalWriter::new(Vec::new(), 1).unwrap();
        w.push(&key(1)).unwrap();
        assert!(matches!(
            w.push(&key(2)),
            Err(CommitmentWriteError::Count { .. })
        ));
    }
    #[test]
    fn every_key_present_every_gap_absent() {
        for n in [0u32, 1, 2, 3, 7, 64] {
            let c = Commitment::from_keys((0..n).rev().map(key).collect()).unwrap();
            assert_eq!(c.len(), n as usize);
            for i in 0..n {
                let p = c.prove(&key(i));
                assert_eq!(
                    verify_interval(&p, &key(i), &c.root()),
                    Ok(Membership::Present)
                );
                // Between keys: absent.
                let mut gap = key(i);
                gap[4] = 1;
                let p = c.prove(&gap);
                assert_eq!(verify_interval(&p, &gap, &c.root()), Ok(Membership::Absent));
                // A present member's proof does not serve a key outside its interval.
                let q = c.prove(&key(i));
                let mut before = key(i);
                before[3] -= 1;
                assert_eq!(
                    verify_interval(&q, &before, &c.root()),
                    Err(CommitmentError::KeyOutsideInterval)
                );
            }
            let below = [0u8, 0, 0, 0, 0, 1].iter().chain([0u8; 26].iter()).copied();
            let below: MemberKey = below.collect::<Vec<_>>().try_into().unwrap();
            let p = c.prove(&below);
            assert_eq!(
                verify_interval(&p, &below, &c.root()),
                Ok(Membership::Absent)
            );
            let back = Commitment::decode(&c.encode()).unwrap();
            assert_eq!(back.root(), c.root());
        }
    }

    #[test]
    fn forged_intervals_fail() {
        let c = Commitment::from_keys((0..10).map(key).collect()).unwrap();
        let k = key(4);
        let mut p = c.prove(&k);
        // Claim the member's key is the start of a gap that skips it: the leaf does not exist.
        p.low = key(3);
        p.index -= 1;
        let mut inside = k;
        inside[31] = 9;
        assert!(verify_interval(&p, &inside, &c.root()).is_err());
        // A widened interval (hiding key 4) is not a leaf.
        let mut q = c.prove(&key(3));
        q.high = key(5);
        assert!(verify_interval(&q, &k, &c.root()).is_err());
        // Sentinel misuse.
        let mut r = c.prove(&key(0));
        r.index = 0;
        assert!(verify_interval(&r, &key(0), &c.root()).is_err());
        assert_eq!(
            Commitment::from_keys(vec![LOW]).unwrap_err(),
            CommitmentError::SentinelKey
        );
        let mut bytes = c.encode();
        bytes.pop();
        assert!(Commitment::decode(&bytes).is_err());
    }
}
