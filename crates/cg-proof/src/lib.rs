//! # cg-proof — transparency math, pure
//!
//! RFC 6962 (Certificate Transparency) Merkle trees, as C2SP `tlog-*` specifications use them:
//!
//! - [`leaf_hash`] = SHA-256(0x00 ‖ data), [`node_hash`] = SHA-256(0x01 ‖ left ‖ right), the
//!   empty tree's root = SHA-256("");
//! - [`root`]: the tree head of a list of leaf hashes (left-balanced: the left subtree holds the
//!   largest power of two strictly smaller than the size);
//! - [`inclusion_proof`] / [`verify_inclusion`] and [`consistency_proof`] /
//!   [`verify_consistency`]: building and verifying are separate, so a verifier never trusts
//!   the builder's code path.
//!
//! - [`CompactRange`]: the tree head of a growing log in O(log n) memory;
//! - [`note`]: C2SP checkpoints in Ed25519-signed notes;
//! - [`tlog_proof`]: C2SP `tlog-proof` (an inclusion proof with its signed checkpoint);
//! - [`tiles`]: C2SP `tlog-tiles` paths and contents, to serve the log as static files;
//! - [`leaves`]: the encodings of consentgate's log entries (consent events, dataset manifests);
//! - [`commitment`]: a dataset's member commitment (sorted interval Merkle tree) whose one
//!   inclusion proof shows presence or absence;
//! - [`roster`]: a dataset's member roster (the default commitment since 2026-12-06): every
//!   member with content in the input, each with a salted bit, three SHA-256 a member;
//! - [`member_key`]: per-dataset member keys from a VRF (RFC 9381 ECVRF on ristretto255), for
//!   the interval commitment (builds with `--key-scheme vrf`, and datasets made before);
//! - [`receipt`]: per-member receipts, verifiable offline with only the log's verifier key.
//!
//! Storage-free: callers pass leaf hashes; nothing here does I/O.
//!
//! ```
//! use cg_proof::{leaf_hash, root, inclusion_proof, verify_inclusion};
//! let leaves: Vec<_> = [b"a", b"b", b"c"].iter().map(|d| leaf_hash(*d)).collect();
//! let head = root(&leaves);
//! let proof = inclusion_proof(1, &leaves).unwrap();
//! assert!(verify_inclusion(1, 3, &leaves[1], &proof, &head).is_ok());
//! ```

#![deny(missing_docs)]

pub mod commitment;
pub mod leaves;
pub mod member_key;
pub mod note;
pub mod receipt;
pub mod roster;
pub mod tiles;
pub mod tlog_proof;

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof does not verify, or cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The index is not inside the tree.
    #[error("index {index} is outside a tree of size {size}")]
    OutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes do not describe an older and a newer tree.
    #[error("cannot prove consistency from size {old} to size {new}")]
    BadSizes {
        /// The older size.
        old: u64,
        /// The newer size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has {got} hashes, {expected} expected")]
    WrongLength {
        /// Hashes given.
        got: usize,
        /// Hashes expected.
        expected: usize,
    },
    /// The proof leads to another root.
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
}

/// SHA-256(0x00 ‖ data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, SHA-256("").
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The tree head of an append-only list of leaves, in O(log n) memory: the stack of the roots
/// of the perfect subtrees the leaves so far decompose into (a "compact range").
#[derive(Clone, Debug, Default)]
pub struct CompactRange {
    size: u64,
    /// (height, root) of perfect subtrees, left to right, heights strictly decreasing.
    stack: Vec<(u32, Hash)>,
}

impl CompactRange {
    /// An empty range.
    pub fn new() -> CompactRange {
        CompactRange::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut cur = (0u32, leaf);
        while let Some(&(height, left)) = self.stack.last() {
            if height != cur.0 {
                break;
            }
            self.stack.pop();
            cur = (height + 1, node_hash(&left, &cur.1));
        }
        self.stack.push(cur);
        self.size += 1;
    }

    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Parses hex of exactly `N` bytes.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(s[2 * i])? << 4) | digit(s[2 * i + 1])?;
    }
    Some(out)
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// [`root`] on up to `threads` threads, the same tree head: the two subtrees of RFC 6962's
/// split (the largest power of two below the leaf count, then the rest) are independent, so
/// each is hashed on a thread of its own, recursively while threads remain. Trees under
/// 2¹⁵ leaves are hashed on the calling thread (a thread costs more than their hashes).
pub fn root_on(leaves: &[Hash], threads: usize) -> Hash {
    const MIN_SPLIT: usize = 1 << 15;
    if threads < 2 || leaves.len() < MIN_SPLIT {
        return root(leaves);
    }
    let (left, right) = leaves.split_at(split(leaves.len()));
    let (l, r) = std::thread::scope(|scope| {
        let l = scope.spawn(|| root_on(left, threads / 2));
        let r = root_on(right, threads - threads / 2);
        (l.join(), r)
    });
    match l {
        Ok(l) => node_hash(&l, &r),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The tree head of `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        _ => {
            // Bottom-up, level by level: O(n) hashes, no recursion depth to worry about. Pairing
            // from the left and promoting an odd last node gives the same left-balanced tree as
            // the recursive definition.
            let mut level: Vec<Hash> = leaves.to_vec();
            while level.len() > 1 {
                let mut next = Vec::with_capacity(level.len().div_ceil(2));
                for pair in level.chunks(2) {
                    match pair {
                        [l, r] => next.push(node_hash(l, r)),
                        [odd] => next.push(*odd),
                        _ => {}
                    }
                }
                level = next;
            }
            level[0]
        }
    }
}

/// The audit path for leaf `index` in `leaves` (RFC 6962 §2.1.1), leaf to root.
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let mut proof = Vec::new();
    path(index as usize, leaves, &mut proof);
    Ok(proof)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    if d.len() <= 1 {
        return;
    }
    let k = split(d.len());
    if m < k {
        path(m, &d[..k], out);
        out.push(root(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(root(&d[..k]));
    }
}

/// Verifies that `leaf` is at `index` in the tree of `size` with root `expected`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    expected: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { index, size });
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected: inclusion_len(index, size),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected: inclusion_len(index, size),
        });
    }
    if &r == expected {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The length of the audit path for `index` in a tree of `size` (without building it).
fn inclusion_len(mut index: u64, mut size: u64) -> usize {
    let mut len = 0;
    while size > 1 {
        let k = split(size as usize) as u64;
        if index < k {
            size = k;
        } else {
            index -= k;
            size -= k;
        }
        len += 1;
    }
    len
}

/// The consistency proof from the first `old` leaves to all of `leaves` (RFC 6962 §2.1.2).
pub fn consistency_proof(old: u64, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    let new = leaves.len() as u64;
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    let mut proof = Vec::new();
    subproof(old as usize, leaves, true, &mut proof);
    Ok(proof)
}

fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            out.push(root(d));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &d[..k], complete, out);
        out.push(root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(root(&d[..k]));
    }
}

/// Verifies that the tree of size `old` with root `old_root` is a prefix of the tree of size
/// `new` with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::BadSizes { old, new });
    }
    if old == new {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else if !proof.is_empty() {
            Err(ProofError::WrongLength {
                got: proof.len(),
                expected: 0,
            })
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength {
            got: 0,
            expected: 1,
        });
    };
    let (mut f_n, mut s_n) = (old - 1, new - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return Err(ProofError::WrongLength {
                got: proof.len(),
                expected: proof.len() - 1,
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength {
            got: proof.len(),
            expected: proof.len() + 1,
        });
    }
    if &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}
