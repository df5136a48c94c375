//! A distributed build's member roster ([`cg_proof::roster`]), made from its tasks' runs of
//! decision records without holding every member at once.
//!
//! The plan routes every row by its author's shard, so each task's members are its own: no
//! member has rows in two tasks' runs. For each run the client collects its members (the rule
//! of [`crate::pass::roster_members_of_run`], the same as an embedded build's), salts them on
//! every core, sorts them by position and writes them as a run of 64-byte entries (position,
//! opening) in the scratch directory; then it merges the runs by position straight into
//! `members.commitment`, computing the tree head on the way
//! ([`cg_proof::roster::RosterWriter`]). What the client holds is one task's members and one
//! buffer per run, not every member, and the file and root are byte for byte those of
//! [`crate::MemberCommitment::roster`] over the merged record. A member in two runs (a plan that
//! did not route by shard) is the same position twice: the writer refuses it and the build
//! fails.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use cg_proof::member_key::MemberKeySecret;
use cg_proof::roster::{Position, RosterWriter};

use crate::BuildError;

/// Bytes of an entry in a run: position, then opening.
const ENTRY_BYTES: usize = 64;

/// The prefix of the roster runs in the scratch directory.
pub(crate) const ROSTER_PREFIX: &str = "roster-";

/// A roster written as a stream.
#[derive(Clone, Debug)]
pub(crate) struct WrittenRoster {
    /// The file (`members.commitment` in the build's directory), fsynced.
    pub path: PathBuf,
    /// Its tree head.
    pub root: cg_proof::Hash,
    /// Its leaves: every member of the decision record.
    pub leaves: u64,
    /// Of those, the members with a row in the shards.
    pub included: u64,
}

/// Writes the roster of the members in `record_runs` (one per task; members disjoint) to
/// `out`, salted with `secret`'s salt key in `domain`; the runs of entries are written in
/// `scratch` and removed.
pub(crate) fn write_roster(
    record_runs: &[PathBuf],
    scratch: &Path,
    out: &Path,
    secret: &MemberKeySecret,
    domain: &str,
) -> Result<WrittenRoster, BuildError> {
    let mut runs = Vec::with_capacity(record_runs.len());
    let result = write_runs(record_runs, scratch, secret, domain, &mut runs).and_then(
        |(leaves, included)| {
            let root = merge(&runs, out, leaves)?;
            Ok(WrittenRoster {
                path: out.to_owned(),
                root,
                leaves,
                included,
            })
        },
    );
    for run in &runs {
        let _ = std::fs::remove_file(run);
    }
    result
}

/// One sorted run of entries per run of records (its path pushed to `runs` before it is
/// written, so a failure leaves nothing the caller does not remove); returns the leaves and
/// the included members of them all.
fn write_runs(
    record_runs: &[PathBuf],
    scratch: &Path,
    secret: &MemberKeySecret,
    domain: &str,
    runs: &mut Vec<PathBuf>,
) -> Result<(u64, u64), BuildError> {
    let (mut leaves, mut included) = (0u64, 0u64);
    for (i, records) in record_runs.iter().enumerate() {
        let members = crate::pass::roster_members_of_run(records)?;
        included += members.values().filter(|kept| **kept).count() as u64;
        let members: Vec<(i64, bool)> = members.into_iter().collect();
        let mut entries = crate::commitment::roster_entries(secret, domain, &members)?;
        drop(members);
        entries.sort_unstable_by_key(|e| e.position);
        leaves += entries.len() as u64;
        let path = scratch.join(format!("{ROSTER_PREFIX}{i:05}.bin"));
        runs.push(path.clone());
        let file = File::create(&path).map_err(|e| BuildError::io(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 16, file);
        for e in &entries {
            w.write_all(&e.position)
                .and_then(|()| w.write_all(&e.opening))
                .map_err(|e| BuildError::io(&path, e))?;
        }
        w.flush().map_err(|e| BuildError::io(&path, e))?;
    }
    Ok((leaves, included))
}

/// A run being merged: its reader and its current entry.
struct RunHead {
    path: PathBuf,
    reader: BufReader<File>,
    opening: [u8; 32],
}

impl RunHead {
    /// The run's next entry's position (its opening kept), `None` at its end.
    fn next(&mut self) -> Result<Option<Position>, BuildError> {
        let mut entry = [0u8; ENTRY_BYTES];
        match self.reader.read_exact(&mut entry) {
            Ok(()) => {
                let mut position = [0u8; 32];
                position.copy_from_slice(&entry[..32]);
                self.opening.copy_from_slice(&entry[32..]);
                Ok(Some(position))
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(BuildError::io(&self.path, e)),
        }
    }
}

/// Merges sorted runs of entries by position into the roster file `out` of `leaves` leaves,
/// fsynced; returns its root.
fn merge(runs: &[PathBuf], out: &Path, leaves: u64) -> Result<cg_proof::Hash, BuildError> {
    let mut heads = Vec::with_capacity(runs.len());
    let mut order = BinaryHeap::with_capacity(runs.len());
    for path in runs {
        let file = File::open(path).map_err(|e| BuildError::io(path, e))?;
        let mut head = RunHead {
            path: path.clone(),
            reader: BufReader::with_capacity(1 << 16, file),
            opening: [0u8; 32],
        };
        if let Some(position) = head.next()? {
            order.push(Reverse((position, heads.len())));
        }
        heads.push(head);
    }
    let written = |e: cg_proof::roster::RosterWriteError| {
        BuildError::Engine(format!("`{}`: {e}", out.display()))
    };
    let file = File::create(out).map_err(|e| BuildError::io(out, e))?;
    let mut w = RosterWriter::new(BufWriter::with_capacity(1 << 20, file), leaves)
        .map_err(|e| BuildError::io(out, e))?;
    while let Some(Reverse((position, i))) = order.pop() {
        w.push(&position, &heads[i].opening).map_err(written)?;
        if let Some(next) = heads[i].next()? {
            order.push(Reverse((next, i)));
        }
    }
    let (buffer, root) = w.finish().map_err(written)?;
    let file = buffer
        .into_inner()
        .map_err(|e| BuildError::io(out, e.into_error()))?;
    file.sync_all().map_err(|e| BuildError::io(out, e))?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commitment::MemberCommitment;
    use rustc_hash::FxHashMap;

    fn secret() -> MemberKeySecret {
        MemberKeySecret::from_seed(&[5u8; 32]).unwrap()
    }

    /// Runs of entries made directly (the record runs' reading is the pass's, tested with
    /// the distributed builds), merged, against the roster made in memory from all members.
    fn merged_against_held(tasks: &[Vec<(i64, bool)>]) {
        let dir = cg_test_support::tempdir();
        let secret = secret();
        let mut runs = Vec::new();
        let mut all: FxHashMap<i64, bool> = FxHashMap::default();
        for (i, members) in tasks.iter().enumerate() {
            let mut entries = crate::commitment::roster_entries(&secret, "ds-9", members).unwrap();
            entries.sort_unstable_by_key(|e| e.position);
            let path = dir.path().join(format!("{ROSTER_PREFIX}{i:05}.bin"));
            let mut bytes = Vec::new();
            for e in &entries {
                bytes.extend_from_slice(&e.position);
                bytes.extend_from_slice(&e.opening);
            }
            std::fs::write(&path, bytes).unwrap();
            runs.push(path);
            all.extend(members.iter().copied());
        }
        let leaves = all.len() as u64;
        let out = dir.path().join("members.commitment");
        let root = merge(&runs, &out, leaves).unwrap();
        let held = MemberCommitment::roster_of(all, &secret, "ds-9").unwrap();
        assert_eq!(root, held.root());
        let expected = dir.path().join("held.commitment");
        held.write_to(&expected).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&expected).unwrap()
        );
    }

    #[test]
    fn merged_runs_are_the_roster_of_all_their_members() {
        merged_against_held(&[]);
        merged_against_held(&[vec![]]);
        merged_against_held(&[vec![(1, true)]]);
        merged_against_held(&[
            (0..500).map(|m| (m * 3, m % 2 == 0)).collect(),
            vec![],
            (0..700).map(|m| (m * 3 + 1, m % 5 == 0)).collect(),
            (0..3).map(|m| (m * 3 + 2, true)).collect(),
        ]);
    }

    #[test]
    fn a_member_in_two_runs_fails_the_roster() {
        let dir = cg_test_support::tempdir();
        let secret = secret();
        let mut runs = Vec::new();
        for (i, members) in [vec![(1, true), (2, false)], vec![(2, true)]]
            .iter()
            .enumerate()
        {
            let mut entries = crate::commitment::roster_entries(&secret, "ds", members).unwrap();
            entries.sort_unstable_by_key(|e| e.position);
            let path = dir.path().join(format!("r{i}"));
            let bytes: Vec<u8> = entries
                .iter()
                .flat_map(|e| e.position.iter().chain(e.opening.iter()).copied())
                .collect();
            std::fs::write(&path, bytes).unwrap();
            runs.push(path);
        }
        let out = dir.path().join("members.commitment");
        let err = merge(&runs, &out, 3).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
