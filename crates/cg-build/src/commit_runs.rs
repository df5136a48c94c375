//! A distributed build's member commitment written as a stream, from per-task sorted runs,
//! without holding every member at once: the client merges the runs by key straight into
//! `members.commitment`, the tree head computed on the way ([`cg_proof::CompactRange`]), and
//! holds one buffer per run. The file and root are byte for byte those of the in-memory
//! commitment (embedded builds keep that one: their members are in one process anyway).
//!
//! - **The roster** (the default scheme, [`write_roster`]): the plan routes every row by its
//!   author's shard, so each task's members are its own — no member has rows in two tasks'
//!   runs. For each run of decision records the client collects its members (the rule of
//!   [`crate::pass::roster_members_of_run`], the same as an embedded build's), salts them on
//!   every core, sorts them by position and writes them as a run of 64-byte entries (position,
//!   opening) in the scratch directory; the runs are then merged
//!   ([`cg_proof::roster::RosterWriter`]).
//! - **VRF intervals** ([`write_intervals`]): the executors' key runs are sorted by key already
//!   (40-byte records: key, member id), and the keys the client derives itself are sorted per
//!   shard into runs of 32-byte keys; all are merged ([`cg_proof::commitment::IntervalWriter`]).
//!
//! A member in two runs (a plan that did not route by shard) is one position or key twice: the
//! writers refuse it and the build fails.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use cg_proof::commitment::{CommitmentWriteError, IntervalWriter};
use cg_proof::member_key::MemberKeySecret;
use cg_proof::roster::RosterWriter;
use sha2::{Digest, Sha256};

use crate::BuildError;

/// Bytes of an entry in a run: position, then opening.
const ENTRY_BYTES: usize = 64;

/// The prefix of the roster runs in the scratch directory.
pub(crate) const ROSTER_PREFIX: &str = "roster-";

/// A commitment written as a stream.
#[derive(Clone, Debug)]
pub(crate) struct WrittenCommitment {
    /// The file (`members.commitment` in the build's directory), fsynced.
    pub path: PathBuf,
    /// Its tree head.
    pub root: cg_proof::Hash,
    /// Its key scheme (as the manifest names it).
    pub scheme: &'static str,
    /// A roster's leaves: every member of the decision record (0 for VRF intervals).
    pub roster_leaves: u64,
    /// The members with a row in the shards.
    pub included: u64,
}

/// Writes the roster of the members in `record_runs` (one per task, with the SHA-256 it
/// reported; members disjoint) to `out`, salted with `secret`'s salt key in `domain`; the runs
/// of entries are written in `scratch` and removed.
pub(crate) fn write_roster(
    record_runs: &[(PathBuf, String)],
    scratch: &Path,
    out: &Path,
    secret: &MemberKeySecret,
    domain: &str,
) -> Result<WrittenCommitment, BuildError> {
    let mut runs = Vec::with_capacity(record_runs.len());
    let result = write_runs(record_runs, scratch, secret, domain, &mut runs).and_then(
        |(leaves, included)| {
            let root = merge_roster(&runs, out, leaves)?;
            Ok(WrittenCommitment {
                path: out.to_owned(),
                root,
                scheme: cg_proof::roster::ROSTER_SCHEME,
                roster_leaves: leaves,
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
    record_runs: &[(PathBuf, String)],
    scratch: &Path,
    secret: &MemberKeySecret,
    domain: &str,
    runs: &mut Vec<PathBuf>,
) -> Result<(u64, u64), BuildError> {
    let (mut leaves, mut included) = (0u64, 0u64);
    for (i, (records, sha256)) in record_runs.iter().enumerate() {
        let members = crate::pass::roster_members_of_run(records, sha256)?;
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

/// A sorted run of fixed-size records to merge, keyed by each record's first 32 bytes.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    /// The file.
    pub path: PathBuf,
    /// Bytes a record.
    pub record: usize,
    /// The SHA-256 its writer reported, for a run another process wrote: the merge hashes the
    /// bytes it reads and refuses a run whose bytes are not those (changed after the caller
    /// checked it, or in the middle of the merge).
    pub sha256: Option<String>,
}

/// A sorted run being merged: its reader, its record size and its current record (whose
/// first 32 bytes are its key).
struct RunHead {
    path: PathBuf,
    reader: BufReader<File>,
    record: Vec<u8>,
    /// The digest so far and the one expected at the end.
    check: Option<(Sha256, String)>,
}

impl RunHead {
    /// The run's next record's key (the record kept), `None` at its end. A run ending in a
    /// partial record is an error.
    fn next(&mut self) -> Result<Option<[u8; 32]>, BuildError> {
        let at_end = self
            .reader
            .fill_buf()
            .map_err(|e| BuildError::io(&self.path, e))?
            .is_empty();
        if at_end {
            if let Some((digest, expected)) = self.check.take()
                && crate::layout::hex(&digest.finalize()) != expected
            {
                return Err(BuildError::Engine(format!(
                    "`{}` changed after it was checked: its bytes are not the ones its task reported",
                    self.path.display()
                )));
            }
            return Ok(None);
        }
        self.reader
            .read_exact(&mut self.record)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => BuildError::Engine(format!(
                    "`{}` ends in a partial record",
                    self.path.display()
                )),
                _ => BuildError::io(&self.path, e),
            })?;
        if let Some((digest, _)) = &mut self.check {
            digest.update(&self.record);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&self.record[..32]);
        Ok(Some(key))
    }
}

/// Merges runs of fixed-size records ([`Run`]), each sorted by its records'
/// first 32 bytes, calling `each` with every record in that order.
fn merge_runs(
    runs: &[Run],
    mut each: impl FnMut(&[u8]) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let mut heads = Vec::with_capacity(runs.len());
    let mut order = BinaryHeap::with_capacity(runs.len());
    for run in runs {
        let path = &run.path;
        let file = File::open(path).map_err(|e| BuildError::io(path, e))?;
        let mut head = RunHead {
            path: path.clone(),
            reader: BufReader::with_capacity(1 << 16, file),
            record: vec![0u8; run.record.max(32)],
            check: run.sha256.clone().map(|s| (Sha256::new(), s)),
        };
        if let Some(key) = head.next()? {
            order.push(Reverse((key, heads.len())));
        }
        heads.push(head);
    }
    while let Some(Reverse((_, i))) = order.pop() {
        each(&heads[i].record)?;
        if let Some(next) = heads[i].next()? {
            order.push(Reverse((next, i)));
        }
    }
    Ok(())
}

/// Opens `out` for a commitment file written through `write` (given a buffered writer), then
/// fsyncs it; returns the root `write` returned.
fn write_file(
    out: &Path,
    write: impl FnOnce(BufWriter<File>) -> Result<(BufWriter<File>, cg_proof::Hash), BuildError>,
) -> Result<cg_proof::Hash, BuildError> {
    let file = File::create(out).map_err(|e| BuildError::io(out, e))?;
    let (buffer, root) = write(BufWriter::with_capacity(1 << 20, file))?;
    let file = buffer
        .into_inner()
        .map_err(|e| BuildError::io(out, e.into_error()))?;
    file.sync_all().map_err(|e| BuildError::io(out, e))?;
    Ok(root)
}

fn written(out: &Path) -> impl Fn(CommitmentWriteError) -> BuildError + '_ {
    move |e| BuildError::Engine(format!("`{}`: {e}", out.display()))
}

/// Merges sorted runs of roster entries into the roster file `out` of `leaves` leaves,
/// fsynced; returns its root.
fn merge_roster(runs: &[PathBuf], out: &Path, leaves: u64) -> Result<cg_proof::Hash, BuildError> {
    let runs: Vec<Run> = runs
        .iter()
        .map(|p| Run {
            path: p.clone(),
            record: ENTRY_BYTES,
            sha256: None,
        })
        .collect();
    write_file(out, |buffer| {
        let mut w = RosterWriter::new(buffer, leaves).map_err(|e| BuildError::io(out, e))?;
        merge_runs(&runs, |entry| {
            let (mut position, mut opening) = ([0u8; 32], [0u8; 32]);
            position.copy_from_slice(&entry[..32]);
            opening.copy_from_slice(&entry[32..64]);
            w.push(&position, &opening).map_err(written(out))
        })?;
        w.finish().map_err(written(out))
    })
}

/// Writes the VRF interval commitment of the keys in `runs` (`(path, record bytes)`: each
/// sorted by key, the key a record's first 32 bytes; `keys` of them together, every member
/// once) to `out`, fsynced.
pub(crate) fn write_intervals(
    runs: &[Run],
    keys: u64,
    out: &Path,
) -> Result<WrittenCommitment, BuildError> {
    let root = write_file(out, |buffer| {
        let mut w = IntervalWriter::new(buffer, keys).map_err(|e| BuildError::io(out, e))?;
        merge_runs(runs, |record| {
            let mut key = [0u8; 32];
            key.copy_from_slice(&record[..32]);
            w.push(&key).map_err(written(out))
        })?;
        w.finish().map_err(written(out))
    })?;
    Ok(WrittenCommitment {
        path: out.to_owned(),
        root,
        scheme: cg_proof::member_key::KEY_SCHEME,
        roster_leaves: 0,
        included: keys,
    })
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
        let root = merge_roster(&runs, &out, leaves).unwrap();
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
        let err = merge_roster(&runs, &out, 3).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    /// A run another process wrote is merged only if the bytes the merge reads are the ones
    /// its writer reported: one changed after it was checked fails the build; the client's
    /// own runs (no digest) and an unchanged one merge into the in-memory commitment's file.
    #[test]
    fn a_run_changed_after_its_check_fails_the_merge() {
        let dir = cg_test_support::tempdir();
        let keys: Vec<[u8; 32]> = (1u8..=9).map(|i| [i * 20; 32]).collect();
        // The executor's run: 40-byte records (key, member id), sorted by key.
        let theirs: Vec<u8> = keys[..5]
            .iter()
            .zip(10i64..)
            .flat_map(|(k, m)| k.iter().copied().chain(m.to_le_bytes()))
            .collect();
        let ours: Vec<u8> = keys[5..].iter().flatten().copied().collect();
        let (executor, client) = (dir.path().join("keys-0"), dir.path().join("keys-c"));
        std::fs::write(&executor, &theirs).unwrap();
        std::fs::write(&client, &ours).unwrap();
        let runs = |sha256: String| {
            [
                Run {
                    path: executor.clone(),
                    record: 40,
                    sha256: Some(sha256),
                },
                Run {
                    path: client.clone(),
                    record: 32,
                    sha256: None,
                },
            ]
        };
        let reported = crate::layout::hex(&Sha256::digest(&theirs));
        let out = dir.path().join("members.commitment");
        let written = write_intervals(&runs(reported.clone()), 9, &out).unwrap();
        let held = MemberCommitment::intervals(keys.clone()).unwrap();
        assert_eq!(written.root, held.root());
        held.write_to(&dir.path().join("held")).unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(dir.path().join("held")).unwrap()
        );

        // The member id of the last record changed (the keys still sorted): refused.
        let mut changed = theirs.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        std::fs::write(&executor, &changed).unwrap();
        let err = write_intervals(&runs(reported), 9, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("changed after it was checked"), "{err}");
    }
}
