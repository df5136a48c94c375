//! The member commitment's keys: one VRF evaluation per member in a key domain, spread over the
//! cores.

use cg_proof::commitment::{Commitment, MemberKey};
use cg_proof::member_key::MemberKeySecret;

use crate::BuildError;

/// The member commitment of a dataset: one VRF evaluation per member (the expensive part,
/// spread over the available cores), then a sort and one SHA-256 pass.
pub fn member_commitment(
    keys: &MemberKeySecret,
    dataset_id: &str,
    members: &[i64],
) -> Result<Commitment, BuildError> {
    Commitment::from_keys(member_keys(keys, dataset_id, members)?).map_err(BuildError::from)
}

/// The member keys of `members` in a key domain, spread over the available cores.
pub(crate) fn member_keys(
    keys: &MemberKeySecret,
    dataset_id: &str,
    members: &[i64],
) -> Result<Vec<MemberKey>, BuildError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let chunk = members.len().div_ceil(threads).max(1);
    let derived: Vec<MemberKey> = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .chunks(chunk)
            .map(|part| scope.spawn(move || keys.member_keys(dataset_id, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| BuildError::Engine("a member-key thread panicked".into()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|parts| parts.into_iter().flatten().collect())
    })?;
    Ok(derived)
}
