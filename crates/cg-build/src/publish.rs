//! Publishing a dataset: the temporary directory, fsync and rename (atomic: a dataset is there
//! whole, with its manifest written last, or not at all), the shard entries, the commitment
//! file, the card, the operator's `inputs.json` and the manifest.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::commitment::MemberCommitment;
use cg_model::Timestamp;
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::config::{BuildConfig, ConsentSourceArg};
use crate::layout::{hex, sha256_file};
use crate::manifest::{
    CommitmentRef, Count, DocRef, FactsSummary, FileRef, InputRef, Manifest, PolicyRef, RegionRows,
};

/// What a build produced.
#[derive(Debug)]
pub struct BuildOutput {
    /// The published dataset directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// What the pass received from the engine.
    pub received: Received,
    /// What publishing to an object store moved (zero for a dataset on a file system).
    pub uploaded: crate::store::Uploaded,
}

/// What the pass received from the engine's output streams: for a distributed build, what
/// came over the network from the executors (the client's own counter; bytes are the Arrow
/// memory size of the batches, close to what Flight carries uncompressed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Record batches.
    pub batches: u64,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// Member keys the executors derived (read from the key runs they wrote; the client
    /// derived the rest).
    pub member_keys: u64,
    /// A distributed build's tasks per stage (0 for an embedded build).
    pub tasks: u64,
}

/// Publishes a dataset atomically: `write` fills a temporary directory next to `out/<id>`
/// (shards, decisions, commitment, manifest last), which is fsynced and renamed into place; on
/// any error the temporary directory is removed and nothing is published.
pub(crate) fn publish(
    out: &Path,
    dataset_id: &str,
    write: impl FnOnce(&Path) -> Result<Manifest, BuildError>,
) -> Result<BuildOutput, BuildError> {
    std::fs::create_dir_all(out).map_err(|e| BuildError::io(out, e))?;
    let final_dir = out.join(dataset_id);
    if final_dir.exists() {
        return Err(BuildError::Exists(final_dir));
    }
    let tmp = out.join(format!(".{dataset_id}.partial-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| BuildError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(tmp.join("shards")).map_err(|e| BuildError::io(&tmp, e))?;
    match write(&tmp) {
        Ok(manifest) => {
            sync_dir(&tmp.join("shards"))?;
            sync_dir(&tmp)?;
            std::fs::rename(&tmp, &final_dir).map_err(|e| BuildError::io(&final_dir, e))?;
            sync_dir(out)?;
            Ok(BuildOutput {
                dir: final_dir,
                manifest,
                received: Received::default(),
                uploaded: Default::default(),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            // A distributed build's scratch directory, if the pass did not get to remove it.
            let _ = std::fs::remove_dir_all(crate::sink::scratch_dir(&tmp));
            Err(e)
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), BuildError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| BuildError::io(dir, e))
}

/// The manifest entries of a dataset's shards in shard order: the ones a pass wrote, or a
/// carried-over file (`carried(i)`).
pub(crate) fn finish_shards(
    shards: u32,
    written: Vec<(u32, FileRef)>,
    carried: impl Fn(usize) -> Option<FileRef>,
) -> Result<Vec<FileRef>, BuildError> {
    let mut refs: Vec<Option<FileRef>> = vec![None; shards as usize];
    for (i, r) in written {
        if let Some(slot) = refs.get_mut(i as usize) {
            *slot = Some(r);
        }
    }
    refs.into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.or_else(|| carried(i))
                .ok_or_else(|| BuildError::Engine(format!("shard {i} has no source")))
        })
        .collect()
}

/// Writes the commitment and the manifest (last) of a dataset whose shards are written.
#[expect(clippy::too_many_arguments, reason = "the parts of one manifest")]
pub(crate) fn finish_dataset(
    cfg: &BuildConfig,
    dir: &Path,
    dataset_id: &str,
    inputs: Vec<InputRef>,
    summary: FactsSummary,
    shard_key: &[u8],
    shard_refs: Vec<FileRef>,
    pass: crate::pass::PassOut,
    commitment: &MemberCommitment,
    key_domain: &str,
    lineage: Option<crate::manifest::Lineage>,
) -> Result<Manifest, BuildError> {
    let decisions = pass
        .decisions
        .ok_or_else(|| BuildError::Engine("the pass wrote no decision record".into()))?;
    write_input_paths(cfg, dir)?;
    let commitment_path = dir.join("members.commitment");
    commitment.write_to(&commitment_path)?;
    let root_hex = cg_proof::hex(&commitment.root());
    let manifest = Manifest {
        format: crate::manifest::FORMAT.into(),
        dataset_id: dataset_id.to_owned(),
        purpose: cfg.purpose.to_string(),
        as_of: cfg.as_of.to_string(),
        policy: PolicyRef {
            name: cfg.policy.name().to_owned(),
            hash: cfg.policy.hash().to_owned(),
        },
        inputs,
        ignored_purposes: summary.ignored_purposes,
        member_sources: summary.member_sources,
        shard_count: cfg.shards,
        shard_key_fingerprint: hex(&Sha256::digest(shard_key))[..16].to_owned(),
        ledger_checkpoint: cfg.ledger_checkpoint.clone(),
        shards: shard_refs,
        decisions,
        counts: pass
            .counts
            .into_iter()
            .map(|((decision, reason, region), rows)| Count {
                decision,
                reason,
                region,
                rows,
            })
            .collect(),
        totals: pass.totals,
        rows_by_region: pass
            .regions
            .into_iter()
            .map(
                |(region, [include, include_redacted, exclude])| RegionRows {
                    region,
                    include,
                    include_redacted,
                    exclude,
                },
            )
            .collect(),
        quarantine: cfg.quarantine,
        member_commitment_root: Some(root_hex.clone()),
        member_commitment: Some(CommitmentRef {
            file: "members.commitment".into(),
            members: commitment.members,
            roster_members: commitment.roster_leaves(),
            root: root_hex,
            key_scheme: commitment.scheme().into(),
            key_domain: key_domain.to_owned(),
            vrf_public_key: cg_proof::hex(&cfg.member_keys.public_key()),
            sha256: sha256_file(&commitment_path)?,
        }),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        engine: cfg.engine.name().into(),
        license: cfg.license.clone(),
        card: None,
        lineage,
        created_at: Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).to_string(),
    };
    let card = crate::card::render(&manifest);
    write_synced(&dir.join(crate::card::CARD_FILE), card.as_bytes())?;
    let manifest = Manifest {
        card: Some(DocRef {
            file: crate::card::CARD_FILE.into(),
            sha256: hex(&Sha256::digest(card.as_bytes())),
        }),
        ..manifest
    };
    // The manifest is written last: a dataset without one is not a dataset.
    let json = serde_json::to_vec_pretty(&manifest).map_err(BuildError::from)?;
    write_synced(&dir.join("manifest.json"), &json)?;
    Ok(manifest)
}

/// The operator's note of where a dataset's inputs were read from (`inputs.json`, next to the
/// decision record; not part of the manifest, whose digests pin the contents): `rebuild` uses
/// it for the inputs not given again. A ledger is named by its backend only (a URL may hold a
/// password).
pub const INPUTS_FILE: &str = "inputs.json";

fn write_input_paths(cfg: &BuildConfig, dir: &Path) -> Result<(), BuildError> {
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_owned())
            .display()
            .to_string()
    };
    let opt = |p: &Option<PathBuf>| p.as_deref().map(abs);
    let consent = match &cfg.consent {
        ConsentSourceArg::File(p) => serde_json::json!({ "file": abs(p) }),
        ConsentSourceArg::Store(url) => serde_json::json!({
            "store": if url.starts_with("postgres") { "postgres" } else { "sqlite" }
        }),
    };
    let v = serde_json::json!({
        "members": opt(&cfg.members),
        "content": abs(&cfg.content),
        "residences": opt(&cfg.residences),
        "notices": opt(&cfg.notices),
        "erasures": opt(&cfg.erasures),
        "consent": consent,
    });
    let bytes = serde_json::to_vec_pretty(&v).map_err(BuildError::from)?;
    write_synced(&dir.join(INPUTS_FILE), &bytes)
}

/// Writes a file and fsyncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let mut f = File::create(path).map_err(|e| BuildError::io(path, e))?;
    std::io::Write::write_all(&mut f, bytes).map_err(|e| BuildError::io(path, e))?;
    f.sync_all().map_err(|e| BuildError::io(path, e))
}
