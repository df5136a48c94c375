//! The member commitment of a dataset, in either key scheme ([`KeyScheme`]):
//!
//! - the **roster** (default): one leaf per member of the decision record with a salted bit
//!   ([`cg_proof::roster`]); made from `decisions.parquet` after the pass, three SHA-256 a
//!   member, on every core — the same function for embedded, distributed and incremental builds
//!   and for `dataset verify --key`;
//! - **VRF intervals**: the sorted interval tree over one VRF key per included member
//!   ([`cg_proof::commitment`]); the keys are derived by the shard writers (or executors) during
//!   the pass, or here.

use std::path::Path;

use cg_proof::commitment::{Commitment, DatasetCommitment};
use cg_proof::member_key::MemberKeySecret;
use cg_proof::roster::{Roster, RosterEntry};
use rustc_hash::FxHashMap;

use crate::BuildError;

/// Which member commitment a build makes (`consentgate build --key-scheme`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyScheme {
    /// Salted bits of every member with content in the input ([`cg_proof::roster`]): about
    /// 0.4 µs of a core per member.
    #[default]
    Roster,
    /// Sorted intervals over one VRF key per included member: about 40 µs of a core per
    /// member; a receipt never shows whether two other members had content in the input.
    Vrf,
}

impl KeyScheme {
    /// Parses the name `--key-scheme` takes: `roster` or `vrf`.
    pub fn parse(s: &str) -> Option<KeyScheme> {
        match s {
            "roster" => Some(KeyScheme::Roster),
            "vrf" => Some(KeyScheme::Vrf),
            _ => None,
        }
    }
}

/// A built commitment and the number of members in the dataset it commits to.
#[derive(Clone, Debug)]
pub struct MemberCommitment {
    /// The tree, or where it was written.
    tree: Tree,
    /// Members with at least one row in the shards.
    pub members: u64,
}

/// A commitment held in memory, or one written as a stream ([`crate::commit_runs`]).
#[derive(Clone, Debug)]
enum Tree {
    Held(DatasetCommitment),
    Written(crate::commit_runs::WrittenCommitment),
}

impl MemberCommitment {
    /// The interval commitment of VRF keys (one per included member).
    pub fn intervals(keys: Vec<cg_proof::commitment::MemberKey>) -> Result<Self, BuildError> {
        let tree = Commitment::from_keys(keys).map_err(BuildError::from)?;
        Ok(MemberCommitment {
            members: tree.len() as u64,
            tree: Tree::Held(DatasetCommitment::Intervals(tree)),
        })
    }

    /// A commitment written as a stream to `written.path` ([`crate::commit_runs`]).
    pub(crate) fn written(written: crate::commit_runs::WrittenCommitment) -> Self {
        MemberCommitment {
            members: written.included,
            tree: Tree::Written(written),
        }
    }

    /// The root.
    pub fn root(&self) -> cg_proof::Hash {
        match &self.tree {
            Tree::Held(t) => t.root(),
            Tree::Written(w) => w.root,
        }
    }

    /// The key scheme the manifest names.
    pub fn scheme(&self) -> &'static str {
        match &self.tree {
            Tree::Held(t) => t.scheme(),
            Tree::Written(w) => w.scheme,
        }
    }

    /// A roster's leaves (every member of the decision record); 0 for intervals.
    pub fn roster_leaves(&self) -> u64 {
        match &self.tree {
            Tree::Held(DatasetCommitment::Roster(r)) => r.len() as u64,
            Tree::Held(DatasetCommitment::Intervals(_)) => 0,
            Tree::Written(w) => w.roster_leaves,
        }
    }

    /// Puts the commitment's file at `path`, durably: a held tree is encoded and written; a
    /// written one must already be there (it was written into the build's directory).
    pub(crate) fn write_to(&self, path: &Path) -> Result<(), BuildError> {
        match &self.tree {
            Tree::Held(t) => crate::publish::write_synced(path, &t.encode()),
            Tree::Written(w) if w.path == path => Ok(()),
            Tree::Written(w) => Err(BuildError::Engine(format!(
                "the member commitment was written to `{}`, not `{}`",
                w.path.display(),
                path.display()
            ))),
        }
    }

    /// The roster of the decision record in `dir` (`decisions.parquet`): every member with a
    /// content row, included when one of their rows went to a shard; salts from `secret`'s salt
    /// key in `domain`. Rows without a member id (quarantined) are nobody's.
    pub fn roster(dir: &Path, secret: &MemberKeySecret, domain: &str) -> Result<Self, BuildError> {
        let mut members: FxHashMap<i64, bool> = FxHashMap::default();
        crate::decisions::for_each_decision(dir, |row| {
            if let Some(member) = row.member_id {
                *members.entry(member).or_insert(false) |= row.shard.is_some();
            }
            Ok(())
        })?;
        MemberCommitment::roster_of(members, secret, domain)
    }

    /// The roster of members collected while the decision record was written (the pass's
    /// `roster`: the same members and bits [`MemberCommitment::roster`] reads back from it).
    pub(crate) fn roster_of(
        members: FxHashMap<i64, bool>,
        secret: &MemberKeySecret,
        domain: &str,
    ) -> Result<Self, BuildError> {
        let included = members.values().filter(|i| **i).count() as u64;
        let members: Vec<(i64, bool)> = members.into_iter().collect();
        let roster = Roster::from_entries(roster_entries(secret, domain, &members)?)
            .map_err(BuildError::from)?;
        Ok(MemberCommitment {
            tree: Tree::Held(DatasetCommitment::Roster(roster)),
            members: included,
        })
    }
}

/// Reads a `members.commitment` file of either scheme; errors name the file.
pub(crate) fn read_commitment(path: &Path) -> Result<DatasetCommitment, BuildError> {
    let bytes = std::fs::read(path).map_err(|e| BuildError::io(path, e))?;
    DatasetCommitment::decode(&bytes).map_err(|source| BuildError::Commitment {
        path: path.to_owned(),
        source,
    })
}

/// The roster entries of `members` (member, included), spread over the available cores.
pub(crate) fn roster_entries(
    secret: &MemberKeySecret,
    domain: &str,
    members: &[(i64, bool)],
) -> Result<Vec<RosterEntry>, BuildError> {
    let key = secret.salt_key();
    let key = &key;
    on_every_core(members, move |part| {
        part.iter()
            .map(|(m, included)| key.entry(domain, *m, *included))
            .collect()
    })
}

/// The member keys of `members` in a key domain, spread over the available cores.
pub(crate) fn member_keys(
    keys: &MemberKeySecret,
    dataset_id: &str,
    members: &[i64],
) -> Result<Vec<cg_proof::commitment::MemberKey>, BuildError> {
    on_every_core(members, move |part| keys.member_keys(dataset_id, part))
}

/// `each` over `items` in one chunk per available core, the results concatenated in order.
fn on_every_core<T: Sync, R: Send>(
    items: &[T],
    each: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Result<Vec<R>, BuildError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    let each = &each;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || each(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| BuildError::Engine("a member commitment thread panicked".into()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.into_iter().flatten().collect())
    })
}

/// The interval commitment of `members` (VRF keys derived here): used by `dataset verify --key`
/// and tests.
pub fn member_commitment(
    keys: &MemberKeySecret,
    dataset_id: &str,
    members: &[i64],
) -> Result<Commitment, BuildError> {
    Commitment::from_keys(member_keys(keys, dataset_id, members)?).map_err(BuildError::from)
}
