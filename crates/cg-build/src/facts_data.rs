//! Member facts as data, for a distributed build's executors: they never read the member files
//! or the ledger (no ledger URL and no credentials travel in a plan), and each one holds the
//! facts of the members whose rows it decides, not everyone's.
//!
//! The client writes the facts it loaded and folded as of the cut-off, one file per shard — the
//! members the keyed hash assigns to that shard (`facts/shard-NNNNN.jsonl`: one
//! `[member_id, facts]` JSON array per line, ascending ids) — and one narrow file for the rule
//! on mentions of other members (`facts/mentions.json`: the ids of the members *included* as of
//! the cut-off, ascending, 8 bytes a member once loaded, and the handle and display name of each
//! excluded member that has one). Every file's SHA-256 travels in the plan ([`FactsData`]).
//!
//! The plan routes content rows by their author's shard (`cg_shard`, then hash repartitioning),
//! so the task that decides a shard's rows loads that shard's file — once per process, checked
//! against its digest — and no other. The files live in the build's temporary directory (which
//! executors must reach at the same path, like the inputs) and are removed before the dataset
//! is published.

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
    /// SHA-256 of `mentions.json`.
    pub mentions_sha256: String,
}

/// One shard's facts file as the client wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardFacts {
    /// Its SHA-256.
    pub sha256: String,
    /// The members in it.
    pub members: u64,
}

/// What the rule on mentions needs of every member: who is included as of the cut-off, and the
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

fn mentions_file(dir: &Path) -> PathBuf {
    dir.join("mentions.json")
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

/// Writes every member's facts into `dir` (created), one file per keyed shard. Returns the
/// files' digests and member counts in shard order.
pub(crate) fn write_shards(
    members: &Members,
    key: &[u8],
    shards: u32,
    dir: &Path,
) -> Result<Vec<ShardFacts>, BuildError> {
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    let mut by_shard: Vec<Vec<i64>> = vec![Vec::new(); shards as usize];
    for id in members.keys() {
        by_shard[keyed_shard(key, *id, shards) as usize].push(*id);
    }
    let mut out = Vec::with_capacity(by_shard.len());
    for (shard, ids) in (0u32..).zip(by_shard) {
        out.push(write_members(dir, shard, ids, members)?);
    }
    Ok(out)
}

/// Writes one shard's file into `dir` (which exists) from `members`, the shard's members
/// (a member of another shard is refused: its facts would be where no executor looks).
pub(crate) fn write_shard(
    dir: &Path,
    shard: u32,
    key: &[u8],
    shards: u32,
    members: &Members,
) -> Result<ShardFacts, BuildError> {
    if let Some(id) = members
        .keys()
        .find(|id| keyed_shard(key, **id, shards) != shard)
    {
        return Err(BuildError::Engine(format!(
            "member {id} was folded with shard {shard}, which is not its own"
        )));
    }
    write_members(dir, shard, members.keys().copied().collect(), members)
}

/// Writes the facts file of `shard`: the members `ids` (any order), ascending.
fn write_members(
    dir: &Path,
    shard: u32,
    mut ids: Vec<i64>,
    members: &Members,
) -> Result<ShardFacts, BuildError> {
    ids.sort_unstable();
    let path = shard_file(dir, shard);
    let mut w = create(&path)?;
    for id in &ids {
        let facts = &members[id];
        serde_json::to_writer(&mut w, &(id, facts)).map_err(BuildError::from)?;
        w.write_all(b"\n").map_err(|e| BuildError::io(&path, e))?;
    }
    Ok(ShardFacts {
        sha256: finish(w, &path)?,
        members: ids.len() as u64,
    })
}

/// Writes `mentions.json` into `dir`; returns its SHA-256.
pub(crate) fn write_mentions(mentions: &MentionsData, dir: &Path) -> Result<String, BuildError> {
    let path = mentions_file(dir);
    let mut w = create(&path)?;
    serde_json::to_writer(&mut w, mentions).map_err(BuildError::from)?;
    finish(w, &path)
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

    /// `mentions.json`, checked against its digest.
    pub fn read_mentions(&self) -> Result<MentionsData, FactsDataError> {
        let path = mentions_file(&self.dir);
        let bytes = read_checked(&path, &self.mentions_sha256)?;
        let data: MentionsData =
            serde_json::from_slice(&bytes).map_err(|source| FactsDataError::Parse {
                path: path.clone(),
                line: 1,
                source,
            })?;
        if !data.included.is_sorted() {
            return Err(FactsDataError::Spec(
                "mentions.json: included members are not in order".into(),
            ));
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
                let facts = MemberFacts {
                    country: Some(if i % 2 == 0 { "FR" } else { "US" }.into()),
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
        let shards = write_shards(&members, &key, 4, &dir).unwrap();
        let mentions = MentionsData {
            included: vec![2, 4, 6],
            names: vec![(1, Some("m1".into()), None)],
        };
        let data = FactsData {
            dir: dir.clone(),
            key: hex(&key),
            mentions_sha256: write_mentions(&mentions, &dir).unwrap(),
            shards,
        };
        assert_eq!(data.key_bytes().unwrap(), key);
        #[cfg(unix)]
        for file in [shard_file(&dir, 0), mentions_file(&dir)] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
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
        assert_eq!(data.read_mentions().unwrap(), mentions);
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
        discard(tmp.path()).unwrap();
        assert!(matches!(data.read_shard(0), Err(FactsDataError::Io { .. })));
        discard(tmp.path()).unwrap();
    }
}
