//! A dataset's member *roster* (key scheme [`ROSTER_SCHEME`], the default since 2026-12-06): a
//! Merkle tree (RFC 6962 hashing) with one leaf for every member who had a content row in the
//! build's input, included or not, each leaf holding a salted commitment to that member's bit —
//!
//! ```text
//! position  = SHA-256("consentgate/member-position/v2\0" ‖ domain ‖ "\0" ‖ member id in decimal)
//! salt      = HMAC-SHA-256(salt key, "consentgate/member-salt/v2\0" ‖ domain ‖ "\0" ‖ member id)
//! opening   = SHA-256("consentgate/member-opening/v2\0" ‖ (0x01 included | 0x00 not) ‖ salt)
//! leaf      = "consentgate/roster-leaf/v2" ‖ position ‖ opening        (leaves sorted by position)
//! ```
//!
//! A member's receipt carries their salt and their leaf's path: anyone can recompute the
//! position (it is public), the salt opens the bit, and the path proves the leaf. A member
//! without a leaf (no content row in the input) gets the leaves on both sides of their position
//! instead: adjacent indices, positions around theirs.
//!
//! What it costs and what it shows, against the VRF scheme ([`crate::member_key`],
//! [`crate::commitment`]) it replaces as the default:
//!
//! - **three SHA-256 per member** (position, salt, opening) plus the leaf: 0.37 µs of a core
//!   (`cargo bench -p cg-proof --bench proof -- roster`), where a VRF key costs ~40 µs; a whole
//!   roster of a million members takes 0.68 s of one core;
//! - **neighbours reveal nothing** about their inclusion: a sibling hash in a path is a hash of
//!   salted openings, and no other member's salt is ever handed out;
//! - **unique**: a member's position is a public function of the dataset and the member, so the
//!   operator cannot move the member into a gap (as with the VRF, a well-formed tree — sorted,
//!   no duplicate positions — is what `dataset verify` checks from the file);
//! - **unlinkable across datasets**: positions and salts depend on the key domain;
//! - **one thing is shown that the VRF scheme hides**: the receipt of a member *without* a leaf
//!   shows the two neighbouring positions, and a position can be matched to a member id by
//!   trying every id. So such a receipt tells its reader that two other members had content in
//!   the build's input (not whether it was used). Builds that must not show even that keep the
//!   VRF scheme (`consentgate build --key-scheme vrf`).
//!
//! ```
//! use cg_proof::roster::{Roster, SaltKey, verify_roster};
//! let key = SaltKey::new(&[7u8; 32]);
//! let roster = Roster::from_members(&key, "ds-1", [(1, true), (2, false)]).unwrap();
//! let p = roster.prove(&key, "ds-1", 1);
//! assert_eq!(verify_roster(&p, "ds-1", 1, &roster.root()), Ok(true));
//! let p = roster.prove(&key, "ds-1", 2);
//! assert_eq!(verify_roster(&p, "ds-1", 2, &roster.root()), Ok(false));
//! let p = roster.prove(&key, "ds-1", 3); // no leaf: the neighbours show the gap
//! assert_eq!(verify_roster(&p, "ds-1", 3, &roster.root()), Ok(false));
//! ```

use sha2::{Digest, Sha256};

use crate::commitment::{CommitmentError, CommitmentWriteError};
use crate::{Hash, inclusion_proof, leaf_hash, verify_inclusion};

/// The key scheme named in manifests (`member_commitment.key_scheme`).
pub const ROSTER_SCHEME: &str = "consentgate/member-roster/v2";

/// The first line of a roster's `members.commitment` file.
pub const ROSTER_FILE_HEADER: &[u8] = b"consentgate/member-roster/v2\n";

const POSITION_PREFIX: &[u8] = b"consentgate/member-position/v2\0";
const SALT_PREFIX: &[u8] = b"consentgate/member-salt/v2\0";
const OPENING_PREFIX: &[u8] = b"consentgate/member-opening/v2\0";
const LEAF_PREFIX: &[u8] = b"consentgate/roster-leaf/v2";

/// Where a member's leaf sorts in a roster (public: anyone can compute it).
pub type Position = [u8; 32];

/// A member's position in a key domain (a dataset's id, or its first ancestor's).
pub fn position(domain: &str, member: i64) -> Position {
    let mut h = Sha256::new_with_prefix(POSITION_PREFIX);
    h.update(domain.as_bytes());
    h.update([0u8]);
    h.update(member.to_string().as_bytes());
    h.finalize().into()
}

/// The commitment to a member's bit under their salt.
pub fn opening(included: bool, salt: &[u8; 32]) -> Hash {
    let mut h = Sha256::new_with_prefix(OPENING_PREFIX);
    h.update([u8::from(included)]);
    h.update(salt);
    h.finalize().into()
}

/// The leaf hash of a roster entry.
pub fn roster_leaf(position: &Position, opening: &Hash) -> Hash {
    let mut data = [0u8; LEAF_PREFIX.len() + 64];
    data[..LEAF_PREFIX.len()].copy_from_slice(LEAF_PREFIX);
    data[LEAF_PREFIX.len()..LEAF_PREFIX.len() + 32].copy_from_slice(position);
    data[LEAF_PREFIX.len() + 32..].copy_from_slice(opening);
    leaf_hash(&data)
}

/// The secret that salts members' bits: HMAC-SHA-256 with the inner and outer pads hashed once.
/// Whoever holds it can open every bit of a roster, so it stays with the operator (it is
/// derived from the member-key secret: [`crate::member_key::MemberKeySecret::salt_key`]).
#[derive(Clone)]
pub struct SaltKey {
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for SaltKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaltKey(…)")
    }
}

impl SaltKey {
    /// A salt key from 32 secret bytes.
    pub fn new(secret: &[u8; 32]) -> SaltKey {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, b) in secret.iter().enumerate() {
            ipad[i] ^= b;
            opad[i] ^= b;
        }
        SaltKey {
            inner: Sha256::new_with_prefix(ipad),
            outer: Sha256::new_with_prefix(opad),
        }
    }

    /// The member's salt in a key domain.
    pub fn salt(&self, domain: &str, member: i64) -> [u8; 32] {
        self.mac(&[
            SALT_PREFIX,
            domain.as_bytes(),
            &[0u8],
            member.to_string().as_bytes(),
        ])
    }

    /// HMAC-SHA-256 of the concatenation of `parts`.
    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    /// A member's entry: position, opening and leaf hash.
    pub fn entry(&self, domain: &str, member: i64, included: bool) -> RosterEntry {
        let position = position(domain, member);
        let opening = opening(included, &self.salt(domain, member));
        RosterEntry {
            position,
            opening,
            leaf: roster_leaf(&position, &opening),
        }
    }
}

/// One leaf of a roster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RosterEntry {
    /// The member's position.
    pub position: Position,
    /// The commitment to the member's bit.
    pub opening: Hash,
    /// The leaf hash ([`roster_leaf`] of the two above).
    pub leaf: Hash,
}

/// A built roster: entries sorted by position, and the root.
#[derive(Clone, Debug)]
pub struct Roster {
    entries: Vec<RosterEntry>,
    root: Hash,
}

impl Roster {
    /// The roster of `(member, included)` pairs (any order; each member once).
    pub fn from_members(
        key: &SaltKey,
        domain: &str,
        members: impl IntoIterator<Item = (i64, bool)>,
    ) -> Result<Roster, CommitmentError> {
        Roster::from_entries(
            members
                .into_iter()
                .map(|(m, included)| key.entry(domain, m, included))
                .collect(),
        )
    }

    /// The roster of entries made with [`SaltKey::entry`] (any order; a position twice is an
    /// error: it is one member listed twice).
    pub fn from_entries(mut entries: Vec<RosterEntry>) -> Result<Roster, CommitmentError> {
        // By the positions' first eight bytes, then the rest: the same order as comparing
        // whole positions, with most comparisons one integer compare.
        let head = |e: &RosterEntry| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&e.position[..8]);
            u64::from_be_bytes(b)
        };
        entries.sort_unstable_by(|a, b| {
            head(a)
                .cmp(&head(b))
                .then_with(|| a.position.cmp(&b.position))
        });
        Roster::from_sorted(entries)
    }

    /// The roster of entries sorted by position, each position once (checked: a position
    /// twice is one member listed twice).
    fn from_sorted(entries: Vec<RosterEntry>) -> Result<Roster, CommitmentError> {
        if entries.windows(2).any(|w| w[0].position >= w[1].position) {
            return Err(CommitmentError::Malformed(
                "roster positions are not sorted and unique (a member listed twice?)".into(),
            ));
        }
        let leaves: Vec<Hash> = entries.iter().map(|e| e.leaf).collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let root = crate::root_on(&leaves, threads);
        Ok(Roster { entries, root })
    }

    /// The root.
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Leaves: the members who had content in the input.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the roster has no leaf.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, sorted by position.
    pub fn entries(&self) -> &[RosterEntry] {
        &self.entries
    }

    /// The member's bit, read with the salt key (no proof): `None` when they have no leaf, an
    /// error when their leaf opens to neither bit (the roster was made with another key).
    pub fn bit_of(
        &self,
        key: &SaltKey,
        domain: &str,
        member: i64,
    ) -> Result<Option<bool>, CommitmentError> {
        let p = position(domain, member);
        let Ok(i) = self.entries.binary_search_by(|e| e.position.cmp(&p)) else {
            return Ok(None);
        };
        let salt = key.salt(domain, member);
        match self.entries[i].opening {
            o if o == opening(true, &salt) => Ok(Some(true)),
            o if o == opening(false, &salt) => Ok(Some(false)),
            _ => Err(CommitmentError::BadRoster(
                "the salt does not open the member's leaf",
            )),
        }
    }

    /// The proof for `member`: their leaf and salt, or the leaves around their position.
    pub fn prove(&self, key: &SaltKey, domain: &str, member: i64) -> RosterProof {
        let p = position(domain, member);
        let leaves: Vec<Hash> = self.entries.iter().map(|e| e.leaf).collect();
        let proven = |i: usize| ProvenEntry {
            index: i as u64,
            position: self.entries[i].position,
            opening: self.entries[i].opening,
            // `i` is always an index of the tree.
            path: inclusion_proof(i as u64, &leaves).unwrap_or_default(),
        };
        match self.entries.binary_search_by(|e| e.position.cmp(&p)) {
            Ok(i) => RosterProof {
                size: self.entries.len() as u64,
                salt: Some(key.salt(domain, member)),
                entries: vec![proven(i)],
            },
            Err(i) => RosterProof {
                size: self.entries.len() as u64,
                salt: None,
                // Insertion point `i`: the leaves `i - 1` and `i`, where they exist.
                entries: (i.saturating_sub(1)..(i + 1).min(self.entries.len()))
                    .map(proven)
                    .collect(),
            },
        }
    }

    /// The `members.commitment` file: [`ROSTER_FILE_HEADER`], the leaf count as 8 bytes
    /// big-endian, then each entry's position and opening (64 bytes), sorted by position.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ROSTER_FILE_HEADER.len() + 8 + 64 * self.entries.len());
        out.extend_from_slice(ROSTER_FILE_HEADER);
        out.extend_from_slice(&(self.entries.len() as u64).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.position);
            out.extend_from_slice(&e.opening);
        }
        out
    }

    /// Parses a roster file and rebuilds the tree; positions must be strictly increasing.
    pub fn decode(bytes: &[u8]) -> Result<Roster, CommitmentError> {
        let body =
            crate::commitment::counted_records(bytes, ROSTER_FILE_HEADER, 64, "roster leaves")?;
        let entries: Vec<RosterEntry> = body
            .chunks_exact(64)
            .map(|c| {
                let mut position = [0u8; 32];
                let mut opening = [0u8; 32];
                position.copy_from_slice(&c[..32]);
                opening.copy_from_slice(&c[32..]);
                RosterEntry {
                    position,
                    opening,
                    leaf: roster_leaf(&position, &opening),
                }
            })
            .collect();
        Roster::from_sorted(entries)
    }
}

/// Writes a roster's `members.commitment` file — the bytes of [`Roster::encode`] — from
/// entries given in position order, computing the root on the way: a roster too large to hold
/// is written as a stream, from sorted runs merged. The leaf count comes first in the file, so
/// it is given up front and checked at the end.
pub struct RosterWriter<W: std::io::Write> {
    out: W,
    count: u64,
    last: Option<Position>,
    head: crate::CompactRange,
}

impl<W: std::io::Write> std::fmt::Debug for RosterWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosterWriter")
            .field("count", &self.count)
            .field("written", &self.head.size())
            .finish_non_exhaustive()
    }
}

impl<W: std::io::Write> RosterWriter<W> {
    /// A writer of a roster of `count` leaves into `out`; the header and the count are written
    /// now.
    pub fn new(mut out: W, count: u64) -> std::io::Result<RosterWriter<W>> {
        out.write_all(ROSTER_FILE_HEADER)?;
        out.write_all(&count.to_be_bytes())?;
        Ok(RosterWriter {
            out,
            count,
            last: None,
            head: crate::CompactRange::new(),
        })
    }

    /// Appends the next entry: its position must be above the last one's.
    pub fn push(
        &mut self,
        position: &Position,
        opening: &Hash,
    ) -> Result<(), CommitmentWriteError> {
        if self.last.is_some_and(|last| last >= *position) {
            return Err(CommitmentWriteError::Unsorted);
        }
        if self.head.size() == self.count {
            return Err(CommitmentWriteError::Count {
                expected: self.count,
                given: self.count + 1,
            });
        }
        self.out.write_all(position)?;
        self.out.write_all(opening)?;
        self.head.push(roster_leaf(position, opening));
        self.last = Some(*position);
        Ok(())
    }

    /// The file is complete: checks the count, flushes, and returns the output and the root.
    pub fn finish(mut self) -> Result<(W, Hash), CommitmentWriteError> {
        if self.head.size() != self.count {
            return Err(CommitmentWriteError::Count {
                expected: self.count,
                given: self.head.size(),
            });
        }
        self.out.flush()?;
        Ok((self.out, self.head.root()))
    }
}

/// One leaf of a roster with its audit path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenEntry {
    /// Leaf index.
    pub index: u64,
    /// The leaf's position.
    pub position: Position,
    /// The leaf's opening.
    pub opening: Hash,
    /// Audit path, leaf to root.
    pub path: Vec<Hash>,
}

impl ProvenEntry {
    /// The leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        roster_leaf(&self.position, &self.opening)
    }
}

/// A member's roster proof: their own leaf and salt, or (without a leaf) the leaves on both
/// sides of their position — one at either end of the roster, none when it is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterProof {
    /// Leaves in the roster.
    pub size: u64,
    /// The member's salt, when they have a leaf.
    pub salt: Option<[u8; 32]>,
    /// The proven leaves.
    pub entries: Vec<ProvenEntry>,
}

/// Verifies `proof` for `member` in `domain` against `root`: whether the member is included.
pub fn verify_roster(
    proof: &RosterProof,
    domain: &str,
    member: i64,
    root: &Hash,
) -> Result<bool, CommitmentError> {
    let p = position(domain, member);
    let check = |e: &ProvenEntry| {
        verify_inclusion(e.index, proof.size, &e.leaf_hash(), &e.path, root)
            .map_err(CommitmentError::from)
    };
    match (&proof.salt, proof.entries.as_slice()) {
        (Some(salt), [own]) => {
            if own.position != p {
                return Err(CommitmentError::BadRoster(
                    "the leaf is not at the member's position",
                ));
            }
            let included = if own.opening == opening(true, salt) {
                true
            } else if own.opening == opening(false, salt) {
                false
            } else {
                return Err(CommitmentError::BadRoster(
                    "the salt does not open the member's leaf",
                ));
            };
            check(own)?;
            Ok(included)
        }
        (Some(_), _) => Err(CommitmentError::BadRoster(
            "a member with a salt must have exactly their own leaf",
        )),
        (None, []) => {
            if proof.size == 0 && *root == crate::empty_root() {
                Ok(false)
            } else {
                Err(CommitmentError::BadRoster(
                    "no leaf given for a roster that is not empty",
                ))
            }
        }
        (None, [only]) => {
            let first_and_above = only.index == 0 && p < only.position;
            let last_and_below = only.index + 1 == proof.size && only.position < p;
            if !(first_and_above || last_and_below) {
                return Err(CommitmentError::BadRoster(
                    "the member's position is not beyond the end leaf",
                ));
            }
            check(only)?;
            Ok(false)
        }
        (None, [low, high]) => {
            if low.index + 1 != high.index {
                return Err(CommitmentError::BadRoster("the leaves are not adjacent"));
            }
            if !(low.position < p && p < high.position) {
                return Err(CommitmentError::BadRoster(
                    "the member's position is not between the two leaves",
                ));
            }
            check(low)?;
            check(high)?;
            Ok(false)
        }
        (None, _) => Err(CommitmentError::BadRoster(
            "more than two leaves around a position",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(n: i64) -> (SaltKey, Roster) {
        let key = SaltKey::new(&[3u8; 32]);
        let r = Roster::from_members(&key, "ds", (0..n).map(|m| (m * 2, m % 3 == 0))).unwrap();
        (key, r)
    }

    #[test]
    fn every_member_proves_their_bit_and_every_other_id_its_gap() {
        for n in [0i64, 1, 2, 3, 7, 64] {
            let (key, r) = roster(n);
            assert_eq!(r.len(), n as usize);
            for m in 0..n {
                let p = r.prove(&key, "ds", m * 2);
                assert_eq!(verify_roster(&p, "ds", m * 2, &r.root()), Ok(m % 3 == 0));
                // Odd ids have no leaf: absent, shown by neighbours.
                let p = r.prove(&key, "ds", m * 2 + 1);
                assert!(p.salt.is_none());
                assert_eq!(verify_roster(&p, "ds", m * 2 + 1, &r.root()), Ok(false));
            }
            // The roster file round-trips.
            let back = Roster::decode(&r.encode()).unwrap();
            assert_eq!(back.root(), r.root());
            assert_eq!(back.entries(), r.entries());
            for m in 0..n {
                assert_eq!(r.bit_of(&key, "ds", m * 2), Ok(Some(m % 3 == 0)));
                assert_eq!(r.bit_of(&key, "ds", m * 2 + 1), Ok(None));
                assert!(r.bit_of(&SaltKey::new(&[9u8; 32]), "ds", m * 2).is_err());
            }
        }
    }

    #[test]
    fn the_member_and_the_domain_are_bound() {
        let (key, r) = roster(10);
        let p = r.prove(&key, "ds", 4);
        // Another member, or another dataset: the position differs.
        assert!(verify_roster(&p, "ds", 6, &r.root()).is_err());
        assert!(verify_roster(&p, "other", 4, &r.root()).is_err());
        // The same member in another domain gets another position and salt.
        assert_ne!(position("a", 1), position("b", 1));
        assert_ne!(key.salt("a", 1), key.salt("b", 1));
        assert_ne!(key.salt("a", 1), SaltKey::new(&[4u8; 32]).salt("a", 1));
    }

    #[test]
    fn forged_proofs_fail() {
        let (key, r) = roster(10);
        let root = r.root();
        // Flip the bit: the salt opens the other bit, not this leaf's.
        let mut p = r.prove(&key, "ds", 0);
        p.entries[0].opening = opening(false, &p.salt.unwrap());
        assert!(verify_roster(&p, "ds", 0, &root).is_err());
        // A wrong salt opens nothing.
        let mut p = r.prove(&key, "ds", 0);
        p.salt = Some([0u8; 32]);
        assert!(verify_roster(&p, "ds", 0, &root).is_err());
        // Hide a member behind a "gap": the neighbours of their position are not adjacent.
        let hidden = (0..10)
            .map(|m| m * 2)
            .find(|m| {
                let i = r.prove(&key, "ds", *m).entries[0].index;
                i > 0 && i + 1 < r.len() as u64
            })
            .unwrap();
        let i = r.prove(&key, "ds", hidden).entries[0].index as usize;
        let leaves: Vec<Hash> = r.entries().iter().map(|e| e.leaf).collect();
        let around: Vec<ProvenEntry> = [i - 1, i + 1]
            .into_iter()
            .map(|j| ProvenEntry {
                index: j as u64,
                position: r.entries()[j].position,
                opening: r.entries()[j].opening,
                path: inclusion_proof(j as u64, &leaves).unwrap(),
            })
            .collect();
        // Each leaf is genuine, but they are not adjacent: the member's own leaf is between.
        for e in &around {
            assert!(
                verify_inclusion(e.index, r.len() as u64, &e.leaf_hash(), &e.path, &root).is_ok()
            );
        }
        let forged = RosterProof {
            size: r.len() as u64,
            salt: None,
            entries: around,
        };
        assert!(verify_roster(&forged, "ds", hidden, &root).is_err());
        // Dropping the salt of a present member leaves one leaf at their own position: no gap.
        let mut p = r.prove(&key, "ds", 4);
        p.salt = None;
        assert!(verify_roster(&p, "ds", 4, &root).is_err());
        // Claim an empty roster.
        let empty = RosterProof {
            size: 0,
            salt: None,
            entries: Vec::new(),
        };
        assert!(verify_roster(&empty, "ds", 4, &root).is_err());
        // A damaged or unsorted file is refused.
        let mut bytes = r.encode();
        bytes.pop();
        assert!(Roster::decode(&bytes).is_err());
        let mut swapped = r.encode();
        let at = ROSTER_FILE_HEADER.len() + 8;
        let (a, b) = swapped[at..at + 128].split_at_mut(64);
        a.swap_with_slice(b);
        assert!(Roster::decode(&swapped).is_err());
        assert!(
            Roster::from_members(&key, "ds", [(1, true), (1, false)]).is_err(),
            "one member twice"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]
        /// Any roster: every member's proof verifies to their bit, any other id to "not in",
        /// and no proof of one member serves another.
        #[test]
        fn any_roster_proves_exactly_its_bits(
            members in proptest::collection::btree_map(-1_000i64..1_000, proptest::bool::ANY, 0..40),
            others in proptest::collection::vec(-1_100i64..1_100, 1..8),
        ) {
            let key = SaltKey::new(&[5u8; 32]);
            let r = Roster::from_members(&key, "ds-p", members.iter().map(|(m, b)| (*m, *b))).unwrap();
            for (m, bit) in &members {
                let p = r.prove(&key, "ds-p", *m);
                proptest::prop_assert_eq!(verify_roster(&p, "ds-p", *m, &r.root()), Ok(*bit));
                proptest::prop_assert!(verify_roster(&p, "ds-p", *m + 1, &r.root()).is_err());
            }
            for o in others.iter().filter(|o| !members.contains_key(o)) {
                let p = r.prove(&key, "ds-p", *o);
                proptest::prop_assert_eq!(verify_roster(&p, "ds-p", *o, &r.root()), Ok(false));
            }
        }
    }

    #[test]
    fn a_roster_written_as_a_stream_is_the_encoded_roster() {
        for n in [0i64, 1, 2, 3, 7, 300] {
            let (_, roster) = roster(n);
            let mut w = RosterWriter::new(Vec::new(), roster.len() as u64).unwrap();
            for e in roster.entries() {
                w.push(&e.position, &e.opening).unwrap();
            }
            let (bytes, root) = w.finish().unwrap();
            assert_eq!(bytes, roster.encode(), "{n} members");
            assert_eq!(root, roster.root());
            assert_eq!(Roster::decode(&bytes).unwrap().root(), root);
        }
        let (_, roster) = roster(3);
        let e = roster.entries();
        // Out of order, or a position twice: refused.
        let mut w = RosterWriter::new(Vec::new(), 3).unwrap();
        w.push(&e[1].position, &e[1].opening).unwrap();
        assert!(matches!(
            w.push(&e[0].position, &e[0].opening),
            Err(CommitmentWriteError::Unsorted)
        ));
        assert!(matches!(
            w.push(&e[1].position, &e[1].opening),
            Err(CommitmentWriteError::Unsorted)
        ));
        // Fewer or more entries than announced: refused.
        let mut w = RosterWriter::new(Vec::new(), 2).unwrap();
        w.push(&e[0].position, &e[0].opening).unwrap();
        assert!(matches!(
            w.finish(),
            Err(CommitmentWriteError::Count {
                expected: 2,
                given: 1
            })
        ));
        let mut w = RosterWriter::new(Vec::new(), 1).unwrap();
        w.push(&e[0].position, &e[0].opening).unwrap();
        assert!(matches!(
            w.push(&e[1].position, &e[1].opening),
            Err(CommitmentWriteError::Count { .. })
        ));
    }

    #[test]
    fn salts_are_hmac_sha256() {
        // RFC 4231 test case 1: key 0x0b × 20 (HMAC pads a key with zeros, so 20 bytes of 0x0b
        // and 12 zeros are the same key), data "Hi There".
        let mut secret = [0u8; 32];
        secret[..20].fill(0x0b);
        let key = SaltKey::new(&secret);
        assert_eq!(
            crate::hex(&key.mac(&[b"Hi ", b"There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}
