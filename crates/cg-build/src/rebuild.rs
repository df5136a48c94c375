//! Incremental rebuilds: a published dataset re-gated at a later cut-off, rewriting only the
//! shards whose rows changed.
//!
//! 1. a decisions-only pass (no text is read or redacted) decides every row as of the new
//!    cut-off and writes the new `decisions.parquet`;
//! 2. each row's (shard, redaction fingerprint) is compared with the parent's record: a shard
//!    changes when a row enters or leaves it, or when a kept row's redacted text would differ
//!    (another verdict, another phone hint, another excluded member mentioned);
//! 3. a pass with text reads and redacts only the rows of the changed shards and rewrites them;
//!    every other shard is the parent's file, byte for byte (hard-linked, or copied);
//! 4. the member commitment is of the parent's scheme, in the parent's key domain: a roster is
//!    made again from the new decision record (three SHA-256 a member); VRF intervals are the
//!    parent's keys minus the keys of members who left plus those of members who joined (so only
//!    changed members cost a VRF evaluation).
//!
//! The result has the same decisions and the same shard bytes as a full build at the new
//! cut-off (tested); its manifest names the parent and the changed shards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cg_model::progress::Progress;
use cg_proof::commitment::{DatasetCommitment, MemberKey};
use rustc_hash::{FxHashMap, FxHashSet};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::commitment::{MemberCommitment, member_keys, read_commitment};
use crate::config::{BuildConfig, FactInputs, shard_key_of};
use crate::facts::{LoadedFacts, load_facts};
use crate::layout::{file_name, hex, sha256_file};
use crate::manifest::{FileRef, InputRef, Lineage, Manifest};
use crate::pass::{PassSpec, run_pass};
use crate::publish::{finish_dataset, finish_shards, publish};
use crate::run::new_gate;

/// What a rebuild produced.
#[derive(Debug)]
pub struct RebuildOutput {
    /// The published dataset directory.
    pub dir: PathBuf,
    /// Its manifest (with `lineage`).
    pub manifest: Manifest,
}

/// A parent row: (member, shard, fingerprint).
type ParentRow = (Option<i64>, Option<u32>, i64);

fn read_parent_decisions(dir: &Path) -> Result<FxHashMap<i64, ParentRow>, BuildError> {
    let mut rows = FxHashMap::default();
    crate::decisions::for_each_decision(dir, |row| {
        let fingerprint = row.fingerprint.ok_or_else(|| BuildError::Source {
            file: dir
                .join(crate::decisions::DECISIONS_FILE)
                .display()
                .to_string(),
            message: "no column `fingerprint` (built before incremental rebuilds existed?)".into(),
        })?;
        rows.insert(row.content_id, (row.member_id, row.shard, fingerprint));
        Ok(())
    })?;
    Ok(rows)
}

/// Hard-links `from` to `to`, or copies it where links are not possible.
fn carry(from: &Path, to: &Path) -> Result<(), BuildError> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| BuildError::io(to, e))
}

/// Rebuilds the dataset at `parent_dir` for `cfg` (its cut-off, consent and member facts; the
/// same content, policy purpose, shard count and shard key as the parent) into `cfg.out`.
pub fn rebuild(
    parent_dir: &Path,
    mut cfg: BuildConfig,
    progress: &dyn Progress,
) -> Result<RebuildOutput, BuildError> {
    for (what, path) in [
        ("the parent dataset", parent_dir),
        ("--out", cfg.out.as_path()),
    ] {
        if crate::store::ObjectUrl::of_path(path).is_some() {
            return Err(BuildError::Input(format!(
                "an incremental rebuild reads and writes datasets on a file system; {what} `{}` is an object URL (run a full build, which can publish to a store)",
                path.display()
            )));
        }
    }
    let manifest_path = parent_dir.join("manifest.json");
    let parent_bytes =
        std::fs::read(&manifest_path).map_err(|e| BuildError::io(&manifest_path, e))?;
    let parent: Manifest = serde_json::from_slice(&parent_bytes).map_err(|e| {
        BuildError::Input(format!(
            "`{}` is not a manifest: {e}",
            manifest_path.display()
        ))
    })?;
    let refuse = |why: String| {
        Err(BuildError::Input(format!(
            "cannot rebuild {} incrementally: {why}",
            parent.dataset_id
        )))
    };
    // Carried shards hold the parent's redaction: another engine version could redact the
    // rewritten ones differently, and the result would no longer equal a full build.
    if parent.tool_version != env!("CARGO_PKG_VERSION") {
        return refuse(format!(
            "it was built by consentgate {} (this is {}); run a full build",
            parent.tool_version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    if parent.quarantine {
        return refuse("it was built with --quarantine (run a full build)".into());
    }
    if parent.purpose != cfg.purpose.as_str() {
        return refuse(format!(
            "it is for purpose `{}`, not `{}`",
            parent.purpose, cfg.purpose
        ));
    }
    let Some(parent_commitment) = parent.member_commitment.clone() else {
        return refuse("it has no member commitment".into());
    };
    if parent_commitment.vrf_public_key != hex(&cfg.member_keys.public_key()) {
        return refuse("its member commitment was made with another log key".into());
    }
    let known_schemes = [
        cg_proof::roster::ROSTER_SCHEME,
        cg_proof::member_key::KEY_SCHEME,
    ];
    if !known_schemes.contains(&parent_commitment.key_scheme.as_str()) {
        return refuse(format!(
            "its member commitment's key scheme `{}` is not one this version makes",
            parent_commitment.key_scheme
        ));
    }
    cfg.shards = parent.shard_count;
    cfg.quarantine = false;
    let shard_key = shard_key_of(&cfg);
    if hex(&Sha256::digest(&shard_key))[..16] != parent.shard_key_fingerprint {
        return refuse(
            "the shard key differs from the parent's (set the same CG_SHARD_KEY)".into(),
        );
    }
    let content_sha = crate::store::sha256_of(&cfg.content)?;
    let parent_content = parent
        .inputs
        .iter()
        .find(|i| i.table == "content")
        .map(|i| i.sha256.as_str());
    if parent_content != Some(content_sha.as_str()) {
        return refuse(format!(
            "`{}` is not the content it was built from (run a full build)",
            cfg.content.display()
        ));
    }

    let LoadedFacts {
        members,
        mut inputs,
        summary,
    } = load_facts(&FactInputs::of(&cfg), &cfg.purpose, cfg.as_of, progress)?;
    inputs.push(InputRef {
        table: "content".into(),
        source: file_name(&cfg.content),
        sha256: content_sha,
    });
    let mut id = Sha256::new();
    id.update(format!(
        "rebuild\0{}\0{}\0{}\0{}\0",
        env!("CARGO_PKG_VERSION"),
        parent.dataset_id,
        cfg.as_of,
        cfg.policy.hash()
    ));
    if let Some(l) = &cfg.license {
        id.update(format!("license\0{l}\0"));
    }
    for i in &inputs {
        id.update(format!("{}\0{}\0", i.table, i.sha256));
    }
    let dataset_id = format!("ds-{}", &hex(&id.finalize())[..16]);
    let parent_sha = hex(&Sha256::digest(&parent_bytes));

    let out = publish(&cfg.out, &dataset_id, |tmp| {
        let (gate, _) = new_gate(
            &cfg,
            crate::facts::MemberSide::Held(members),
            &inputs,
            &shard_key,
            tmp,
        )?;
        // 1. Decide every row, without text.
        progress.stage("decide", None);
        let mut pass = run_pass(
            &cfg,
            &gate,
            &shard_key,
            PassSpec {
                text: false,
                only_shards: None,
                dir: tmp,
                decisions: true,
                shards: Vec::new(),
                member_keys: None,
                roster: None,
                collect: true,
                store: None,
            },
            progress,
        )?;
        progress.finish_stage();
        // 2. Which shards change.
        let parent_rows = read_parent_decisions(parent_dir)?;
        let mut changed: FxHashSet<u32> = FxHashSet::default();
        for (cid, (shard, fp)) in &pass.rows {
            match parent_rows.get(cid) {
                Some((_, old_shard, old_fp))
                    if old_shard == shard && (shard.is_none() || old_fp == fp) => {}
                Some((_, old_shard, _)) => {
                    changed.extend(old_shard.iter().chain(shard.iter()).copied())
                }
                None => changed.extend(shard.iter().copied()),
            }
        }
        for (cid, (_, old_shard, _)) in &parent_rows {
            if !pass.rows.contains_key(cid) {
                changed.extend(old_shard.iter().copied());
            }
        }
        // 3. Rewrite the changed shards; carry the others.
        let mut written = Vec::new();
        if !changed.is_empty() {
            progress.stage("rewrite changed shards", None);
            let mut rewrite: Vec<u32> = changed.iter().copied().collect();
            rewrite.sort_unstable();
            written = run_pass(
                &cfg,
                &gate,
                &shard_key,
                PassSpec {
                    text: true,
                    only_shards: Some(Arc::new(changed.clone())),
                    dir: tmp,
                    decisions: false,
                    shards: rewrite,
                    member_keys: None,
                    roster: None,
                    collect: false,
                    store: None,
                },
                progress,
            )?
            .shards;
            progress.finish_stage();
        }
        drop(gate);
        crate::facts_data::discard(tmp)?;
        let mut carried: Vec<Option<FileRef>> = vec![None; cfg.shards as usize];
        for (i, s) in parent.shards.iter().enumerate() {
            if changed.contains(&(i as u32)) {
                continue;
            }
            let from = parent_dir.join(&s.file);
            let to = tmp.join(&s.file);
            carry(&from, &to)?;
            if sha256_file(&to)? != s.sha256 {
                return Err(BuildError::Input(format!(
                    "the parent's `{}` does not match its manifest (run `consentgate dataset verify`)",
                    s.file
                )));
            }
            carried[i] = Some(s.clone());
        }
        let shard_refs = finish_shards(cfg.shards, written, |i| carried.get(i).cloned().flatten())?;
        // A rewritten shard can come out byte-identical (a changed fingerprint that did not change
        // the text): it is then not reported as changed.
        let rewritten = changed.len() as u64;
        changed.retain(|i| {
            parent.shards.get(*i as usize).map(|s| &s.sha256)
                != shard_refs.get(*i as usize).map(|s| &s.sha256)
        });
        // 4. The commitment, in the parent's scheme and key domain: a roster from the new
        //    decision record; VRF intervals as the parent's keys, minus members who left, plus
        //    members who joined.
        let old: FxHashSet<i64> = parent_rows
            .values()
            .filter(|(_, s, _)| s.is_some())
            .filter_map(|(m, _, _)| *m)
            .collect();
        let new: FxHashSet<i64> = std::mem::take(&mut pass.kept_members).into_iter().collect();
        let mut added: Vec<i64> = new.difference(&old).copied().collect();
        let mut removed: Vec<i64> = old.difference(&new).copied().collect();
        added.sort_unstable();
        removed.sort_unstable();
        let domain = parent_commitment
            .key_domain_of(&parent.dataset_id)
            .to_owned();
        let commitment = if parent_commitment.key_scheme == cg_proof::roster::ROSTER_SCHEME {
            MemberCommitment::roster(tmp, &cfg.member_keys, &domain)?
        } else {
            vrf_intervals(
                &cfg,
                parent_dir,
                &parent_commitment.file,
                &domain,
                &added,
                &removed,
            )?
        };
        let mut changed_shards: Vec<String> = changed
            .iter()
            .map(|i| format!("shards/part-{i:05}.parquet"))
            .collect();
        changed_shards.sort();
        let lineage = Lineage {
            parent: parent.dataset_id.clone(),
            parent_manifest_sha256: parent_sha.clone(),
            parent_as_of: parent.as_of.clone(),
            changed_shards,
            shards_rewritten: rewritten,
            members_added: added.len() as u64,
            members_removed: removed.len() as u64,
        };
        finish_dataset(
            &cfg,
            tmp,
            &dataset_id,
            inputs,
            summary,
            &shard_key,
            shard_refs,
            pass,
            &commitment,
            &domain,
            Some(lineage),
        )
    })?;
    Ok(RebuildOutput {
        dir: out.dir,
        manifest: out.manifest,
    })
}

/// A rebuild's VRF interval commitment: the parent's keys, minus those of `removed`, plus those
/// of `added` (derived in the parent's key domain).
fn vrf_intervals(
    cfg: &BuildConfig,
    parent_dir: &Path,
    file: &str,
    domain: &str,
    added: &[i64],
    removed: &[i64],
) -> Result<MemberCommitment, BuildError> {
    let parent_tree_path = parent_dir.join(file);
    let DatasetCommitment::Intervals(parent_tree) = read_commitment(&parent_tree_path)? else {
        return Err(BuildError::Input(format!(
            "`{}` is a roster, not the VRF commitment its manifest names",
            parent_tree_path.display()
        )));
    };
    let mut keys: FxHashSet<MemberKey> = parent_tree.keys().iter().copied().collect();
    for k in member_keys(&cfg.member_keys, domain, removed)? {
        if !keys.remove(&k) {
            return Err(BuildError::Input("the parent's member commitment does not hold a member its decisions include (run `consentgate dataset verify --key`)".into()));
        }
    }
    keys.extend(member_keys(&cfg.member_keys, domain, added)?);
    MemberCommitment::intervals(keys.into_iter().collect())
}
