//! Member facts as data, for a distributed build's executors: they never read the member files
//! or the ledger (no ledger URL and no credentials travel in a plan), and each one holds the
//! facts of the members whose rows it decides, not everyone's.
//!
//! The client writes the facts it loaded and folded as of the cut-off, one file per shard — the
//! members the keyed hash assigns to that shard (`facts/shard-NNNNN.jsonl`: one
//! `[member_id, facts]` JSON array per line, ascending ids) — and beside it the shard's narrow
//! file for the rule on mentions of other members (`facts/mentions-NNNNN.json`: the ids of the
//! shard's members *included* as of the cut-off, ascending, 8 bytes a member once loaded, and
//! the handle and display name of each excluded one that has one). Every file's SHA-256 travels
//! in the plan ([`FactsData`]).
//!
//! The plan routes content rows by their author's shard (`cg_shard`, then hash repartitioning),
//! so the task that decides a shard's rows loads that shard's facts file — once per process,
//! checked against its digest — and no other. The members a row mentions are resolved by a
//! narrow join ([`crate::mention_join`]): the distinct (author shard, mentioned member) pairs
//! are routed by the *mentioned* member's shard, where that shard's mentions file answers them,
//! and routed back; no process reads every shard's mentions file. The files live in the build's
//! temporary directory (which executors must reach at the same path, like the inputs) and are
//! removed before the dataset is published.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use cg_model::MemberFacts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::facts::Members;
use crate::layout::{hex, keyed_shard};

/// The directory, inside a build's temporary directory, the facts are written to.
pub const DIR: &str = "facts";

/// Where a build's member facts are as data, and what an executor checks them against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsData {
    /// The directory holding the files (absolute).
    pub dir: PathBuf,
    /// The shard key, hex (a member's file is its keyed shard's).
    pub key: String,
    /// One entry per shard, in shard order.
    pub shards: Vec<ShardFacts>,
}

/// One shard's facts file as the client wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFacts {
    /// Its SHA-256.
    pub sha256: String,
    /// The members in it.
    pub members: u64,
    /// SHA-256 of the shard's mentions file ([`MentionsData`] of its members).
    pub mentions_sha256: String,
}

/// What the rule on mentions needs of a set of members (one shard's): who is included as of the cut-off, and the
/// names of the excluded ones that have names.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionsData {
    /// Members included as of the cut-off, ascending. Anyone else (an unknown id too) counts as
    /// excluded.
    pub included: Vec<i64>,
    /// `(member, handle, display name)` of excluded members with a handle or a name, ascending.
    pub names: Vec<(i64, Option<String>, Option<String>)>,
}

/// Why an executor could not read facts the client wrote.
#[derive(Debug, thiserror::Error)]
pub enum FactsDataError {
    /// The file could not be read.
    #[error("member facts `{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the one the client wrote.
    #[error(
        "member facts `{}` differ from what the client wrote: executors must reach the build's directory at the same path",
        path.display()
    )]
    Digest {
        /// The file.
        path: PathBuf,
    },
    /// A line is not a member's facts.
    #[error("member facts `{}`, line {line}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The plan names a shard the facts do not have, or a key that is not hex.
    #[error("member facts: {0}")]
    Spec(String),
}

fn shard_file(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("shard-{shard:05}.jsonl"))
}

fn mentions_file(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("mentions-{shard:05}.json"))
}

/// A writer that hashes what it writes.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Creates a facts file readable by its owner only (it holds birth dates, names and consent
/// choices): the executors run as the same account on the shared storage.
fn create(path: &Path) -> Result<Hashing<BufWriter<std::fs::File>>, BuildError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(|e| BuildError::io(path, e))?;
    Ok(Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: Sha256::new(),
    })
}

fn finish(w: Hashing<BufWriter<std::fs::File>>, path: &Path) -> Result<String, BuildError> {
    let Hashing { inner, hash } = w;
    inner
        .into_inner()
        .map_err(|e| BuildError::io(path, e.into_error()))?
        .sync_all()
        .map_err(|e| BuildError::io(path, e))?;
    Ok(hex(&hash.finalize()))
}

/// Writes every member's facts into `dir` (created), one facts file and one mentions file per
/// keyed shard (`engine` compiles each member for the latter). Returns the files' digests and
/// member counts in shard order.
pub(crate) fn write_shards(
    members: &Members,
    key: &[u8],
    shards: u32,
    dir: &Path,
    engine: &cg_policy::Engine,
) -> Result<Vec<ShardFacts>, BuildError> {
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    let mut by_shard: Vec<Vec<i64>> = vec![Vec::new(); shards as usize];
    for id in members.keys() {
        by_shard[keyed_shard(key, *id, shards) as usize].push(*id);
    }
    let mut out = Vec::with_capacity(by_shard.len());
    for (shard, ids) in (0u32..).zip(by_shard) {
        out.push(write_members(dir, shard, ids, members, engine)?);
    }
    Ok(out)
}

/// Writes one shard's files into `dir` (which exists) from `members`, the shard's members
/// (a member of another shard is refused: its facts would be where no executor looks).
pub(crate) fn write_shard(
    dir: &Path,
    shard: u32,
    key: &[u8],
    shards: u32,
    members: &Members,
    engine: &cg_policy::Engine,
) -> Result<ShardFacts, BuildError> {
    if let Some(id) = members
        .keys()
        .find(|id| keyed_shard(key, **id, shards) != shard)
    {
        return Err(BuildError::Engine(format!(
            "member {id} was folded with shard {shard}, which is not its own"
        )));
    }
    write_members(
        dir,
        shard,
        members.keys().copied().collect(),
        members,
        engine,
    )
}

/// Writes the files of `shard`: the facts of the members `ids` (any order), ascending, and
/// their mentions file.
fn write_members(
    dir: &Path,
    shard: u32,
    mut ids: Vec<i64>,
    members: &Members,
    engine: &cg_policy::Engine,
) -> Result<ShardFacts, BuildError> {
    ids.sort_unstable();
    let path = shard_file(dir, shard);
    let mut w = create(&path)?;
    let mut mentions = crate::gate::MentionsTable::new(engine);
    for id in &ids {
        let facts = members
            .get(id)
            .ok_or_else(|| BuildError::Engine(format!("member {id} has no facts to write")))?;
        serde_json::to_writer(&mut w, &(id, facts)).map_err(BuildError::from)?;
        w.write_all(b"\n").map_err(|e| BuildError::io(&path, e))?;
        mentions.add_one(*id, facts);
    }
    let sha256 = finish(w, &path)?;
    let path = mentions_file(dir, shard);
    let mut w = create(&path)?;
    serde_json::to_writer(&mut w, &mentions.finish()).map_err(BuildError::from)?;
    Ok(ShardFacts {
        sha256,
        members: ids.len() as u64,
        mentions_sha256: finish(w, &path)?,
    })
}

/// Removes a build's facts directory (absent: nothing to do).
pub(crate) fn discard(build_dir: &Path) -> Result<(), BuildError> {
    let dir = build_dir.join(DIR);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BuildError::io(&dir, e)),
        _ => Ok(()),
    }
}

fn read_checked(path: &Path, sha256: &str) -> Result<Vec<u8>, FactsDataError> {
    let bytes = std::fs::read(path).map_err(|source| FactsDataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if hex(&Sha256::digest(&bytes)) != sha256 {
        return Err(FactsDataError::Digest {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

impl FactsData {
    /// The shard key as bytes.
    pub fn key_bytes(&self) -> Result<Vec<u8>, FactsDataError> {
        crate::layout::unhex(&self.key)
            .ok_or_else(|| FactsDataError::Spec("the shard key is not hex".into()))
    }

    /// The members of `shard`, read from the client's file and checked against its digest.
    pub fn read_shard(&self, shard: u32) -> Result<Vec<(i64, MemberFacts)>, FactsDataError> {
        let expected = self
            .shards
            .get(shard as usize)
            .ok_or_else(|| FactsDataError::Spec(format!("no facts for shard {shard}")))?;
        let path = shard_file(&self.dir, shard);
        let bytes = read_checked(&path, &expected.sha256)?;
        let mut out = Vec::with_capacity(usize::try_from(expected.members).unwrap_or(0));
        for (i, line) in BufReader::new(bytes.as_slice()).lines().enumerate() {
            let line = line.map_err(|source| FactsDataError::Io {
                path: path.clone(),
                source,
            })?;
            let row: (i64, MemberFacts) =
                serde_json::from_str(&line).map_err(|source| FactsDataError::Parse {
                    path: path.clone(),
                    line: i + 1,
                    source,
                })?;
            out.push(row);
        }
        if out.len() as u64 != expected.members {
            return Err(FactsDataError::Digest { path });
        }
        Ok(out)
    }

    /// The mentions file of `shard`, checked against its digest.
    pub fn read_mentions(&self, shard: u32) -> Result<MentionsData, FactsDataError> {
        let expected = self
            .shards
            .get(shard as usize)
            .ok_or_else(|| FactsDataError::Spec(format!("no mentions file for shard {shard}")))?;
        let path = mentions_file(&self.dir, shard);
        let bytes = read_checked(&path, &expected.mentions_sha256)?;
        let data: MentionsData =
            serde_json::from_slice(&bytes).map_err(|source| FactsDataError::Parse {
                path: path.clone(),
                line: 1,
                source,
            })?;
        if !data.included.is_sorted() {
            return Err(FactsDataError::Spec(format!(
                "{}: included members are not in order",
                path.display()
            )));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Members {
        (1..=50)
            .map(|i| {
                // Adults in the US (included) and members of no known country (excluded,
                // with a handle to scrub).
                let facts = MemberFacts {
                    country: (i % 5 != 0).then(|| if i % 2 == 0 { "FR" } else { "US" }.into()),
                    birth_date: Some(time::macros::date!(1990 - 01 - 01)),
                    handle: Some(format!("m{i}")),
                    ..MemberFacts::default()
                };
                (i, Box::new(facts))
            })
            .collect()
    }

    #[test]
    fn each_member_is_in_its_shards_file_and_a_changed_file_is_refused() {
        let tmp = cg_test_support::tempdir();
        let dir = tmp.path().join(DIR);
        let members = members();
        let key = b"k".to_vec();
        let policy = std::sync::Arc::new(
            cg_policy::Policy::bundled("timeline", Default::default()).unwrap(),
        );
        let as_of = cg_model::Timestamp::parse("2025-12-01").unwrap();
        let engine = cg_policy::Engine::new(policy, cg_model::Purpose::genai_training(), as_of);
        let shards = write_shards(&members, &key, 4, &dir, &engine).unwrap();
        let data = FactsData {
            dir: dir.clone(),
            key: hex(&key),
            shards,
        };
        assert_eq!(data.key_bytes().unwrap(), key);
        #[cfg(unix)]
        for file in [shard_file(&dir, 0), mentions_file(&dir, 0)] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        // Each shard's mentions file holds its own members: together, the mentions table of
        // every member.
        let mut whole = crate::gate::MentionsTable::new(&engine);
        whole.add(&members);
        let whole = whole.finish();
        assert!(!whole.included.is_empty() && !whole.names.is_empty());
        let mut joined = MentionsData::default();
        for shard in 0..4 {
            let part = data.read_mentions(shard).unwrap();
            for id in part
                .included
                .iter()
                .chain(part.names.iter().map(|(id, _, _)| id))
            {
                assert_eq!(keyed_shard(&key, *id, 4), shard);
            }
            joined.included.extend(part.included);
            joined.names.extend(part.names);
        }
        joined.included.sort_unstable();
        joined.names.sort_unstable_by_key(|(id, _, _)| *id);
        assert_eq!(joined, whole);
        assert!(matches!(
            data.read_mentions(4),
            Err(FactsDataError::Spec(_))
        ));
        let mut seen = 0;
        for shard in 0..4 {
            let rows = data.read_shard(shard).unwrap();
            assert!(rows.is_sorted_by_key(|(id, _)| *id));
            for (id, facts) in rows {
                assert_eq!(keyed_shard(&key, id, 4), shard);
                assert_eq!(*members[&id], facts);
                seen += 1;
            }
        }
        assert_eq!(seen, members.len());
        assert!(matches!(data.read_shard(4), Err(FactsDataError::Spec(_))));

        // One byte changed, or the file gone: refused, never read as fewer members.
        let path = shard_file(&dir, 1);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.iter().position(|b| *b == b'U').unwrap();
        bytes[at] = b'X';
        std::fs::write(&path, &bytes).unwrap();
        let err = data.read_shard(1).unwrap_err();
        assert!(matches!(err, FactsDataError::Digest { .. }), "{err}");
        assert!(err.to_string().contains("shard-00001.jsonl"), "{err}");
        let path = mentions_file(&dir, 2);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(b' ');
        std::fs::write(&path, &bytes).unwrap();
        let err = data.read_mentions(2).unwrap_err();
        assert!(matches!(err, FactsDataError::Digest { .. }), "{err}");
        assert!(err.to_string().contains("mentions-00002.json"), "{err}");
        discard(tmp.path()).unwrap();
        assert!(matches!(data.read_shard(0), Err(FactsDataError::Io { .. })));
        discard(tmp.path()).unwrap();
    }
}
