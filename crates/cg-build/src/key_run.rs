//! Member-key runs: the member keys a distributed build's task derived for the members of the
//! shards it wrote, with their member ids, sorted by key — one file per task attempt
//! (`keys-PPPPP-TAG.bin` in the build's scratch directory), written where the members are and
//! read by the client, which checks them against the decision record and builds the
//! commitment from them.
//!
//! A record is [`KEY_RECORD_BYTES`] bytes: the key (32), then the member id (8, little-endian).
//! The file is written as a `.partial`, synced and renamed into place
//! ([`crate::layout::write_run`]), so a listed run is whole.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use cg_proof::commitment::MemberKey;
use cg_proof::member_key::MemberKeySecret;
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::sink::{KEY_RECORD_BYTES, KEYS_PREFIX, Output, SinkItem};

/// Members whose keys the client re-derives from each run, to check the executor's secret
/// and arithmetic (a wrong key would put a member in the wrong gap of the commitment).
pub(crate) const SPOT_CHECKS: usize = 8;

/// Derives the keys of `members` (any order, distinct) in `domain`, and writes them sorted by
/// key as `keys-PPPPP-TAG.bin` in `dir` (the scratch directory, which must exist).
pub(crate) fn write(
    dir: &Path,
    partition: usize,
    tag: &str,
    secret: &MemberKeySecret,
    domain: &str,
    members: &[i64],
) -> Result<SinkItem, BuildError> {
    let keys = secret.member_keys(domain, members);
    let mut pairs: Vec<(MemberKey, i64)> = keys.into_iter().zip(members.iter().copied()).collect();
    pairs.sort_unstable();
    let file = format!("{KEYS_PREFIX}{partition:05}-{tag}.bin");
    let sha256 = crate::layout::write_run(dir, &file, |w, partial| {
        let mut digest = Sha256::new();
        for (key, member) in &pairs {
            let mut record = [0u8; KEY_RECORD_BYTES];
            record[..32].copy_from_slice(key);
            record[32..].copy_from_slice(&member.to_le_bytes());
            digest.update(record);
            w.write_all(&record)
                .map_err(|e| BuildError::io(partial, e))?;
        }
        Ok(crate::layout::hex(&digest.finalize()))
    })?;
    Ok(SinkItem {
        attempt: tag.to_owned(),
        output: Output::MemberKeys,
        file,
        rows: pairs.len() as u64,
        bytes: (pairs.len() * KEY_RECORD_BYTES) as u64,
        sha256,
        members: pairs.len() as u64,
        seen: Vec::new(),
    })
}

/// Reads a run: its (key, member) pairs, after checking that they are sorted by key with no key
/// twice and that the file's digest is the one its task reported.
pub(crate) fn read(path: &Path, sha256: &str) -> Result<Vec<(MemberKey, i64)>, BuildError> {
    let bad =
        |what: &str| BuildError::Engine(format!("the member keys `{}` {what}", path.display()));
    let f = File::open(path).map_err(|e| BuildError::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let mut digest = Sha256::new();
    let mut pairs = Vec::new();
    let mut record = [0u8; KEY_RECORD_BYTES];
    loop {
        match r.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(BuildError::io(path, e)),
        }
        digest.update(record);
        let mut key = [0u8; 32];
        key.copy_from_slice(&record[..32]);
        let mut member = [0u8; 8];
        member.copy_from_slice(&record[32..]);
        if pairs
            .last()
            .is_some_and(|(k, _): &(MemberKey, i64)| *k >= key)
        {
            return Err(bad("are not sorted by key"));
        }
        pairs.push((key, i64::from_le_bytes(member)));
    }
    // `read_exact` at a partial record also ends the loop: the size tells.
    let size = std::fs::metadata(path)
        .map_err(|e| BuildError::io(path, e))?
        .len();
    if size != (pairs.len() * KEY_RECORD_BYTES) as u64 {
        return Err(bad("end in a partial record"));
    }
    if crate::layout::hex(&digest.finalize()) != sha256 {
        return Err(bad("are not the bytes their task wrote"));
    }
    Ok(pairs)
}

/// Checks up to [`SPOT_CHECKS`] pairs of a run, spread over it, against keys derived here.
pub(crate) fn spot_check(
    pairs: &[(MemberKey, i64)],
    secret: &MemberKeySecret,
    domain: &str,
    file: &str,
) -> Result<(), BuildError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let step = pairs.len().div_ceil(SPOT_CHECKS).max(1);
    for (key, member) in pairs.iter().step_by(step) {
        if secret.member_key(domain, *member) != *key {
            return Err(BuildError::Engine(format!(
                "`{file}`: member {member}'s key is not the one this build derives (an executor with another member key?)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_reads_back_sorted_and_a_damaged_one_is_refused() {
        let dir = cg_test_support::tempdir();
        let secret = MemberKeySecret::from_seed(&[3u8; 32]).unwrap();
        let members: Vec<i64> = vec![9, -4, 17, 1_000_000, 0];
        let item = write(dir.path(), 2, "7-ab", &secret, "ds-1", &members).unwrap();
        assert_eq!(item.file, "keys-00002-7-ab.bin");
        assert_eq!((item.rows, item.members), (5, 5));
        assert!(!dir.path().join("keys-00002-7-ab.bin.partial").exists());
        let path = dir.path().join(&item.file);
        let pairs = read(&path, &item.sha256).unwrap();
        let mut expected: Vec<(MemberKey, i64)> = members
            .iter()
            .map(|m| (secret.member_key("ds-1", *m), *m))
            .collect();
        expected.sort();
        assert_eq!(pairs, expected);
        spot_check(&pairs, &secret, "ds-1", &item.file).unwrap();
        // Another secret's keys, or another domain's, fail the spot check.
        let other = MemberKeySecret::from_seed(&[4u8; 32]).unwrap();
        assert!(spot_check(&pairs, &other, "ds-1", &item.file).is_err());
        assert!(spot_check(&pairs, &secret, "ds-2", &item.file).is_err());

        // Another digest, a cut record, keys out of order: refused.
        assert!(read(&path, &"00".repeat(32)).is_err());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let cut = format!("{:x}", Sha256::digest(&bytes[..bytes.len() - 3]));
        assert!(
            read(&path, &cut)
                .unwrap_err()
                .to_string()
                .contains("partial")
        );
        let mut swapped = bytes[KEY_RECORD_BYTES..2 * KEY_RECORD_BYTES].to_vec();
        swapped.extend_from_slice(&bytes[..KEY_RECORD_BYTES]);
        std::fs::write(&path, &swapped).unwrap();
        let sha = format!("{:x}", Sha256::digest(&swapped));
        assert!(
            read(&path, &sha)
                .unwrap_err()
                .to_string()
                .contains("sorted")
        );
    }
}
