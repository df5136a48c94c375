//! The build: load member facts, run one pass (decide, redact, write shards and decisions),
//! commit to the members, publish atomically with the manifest last.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::commitment::MemberCommitment;
use cg_model::progress::Progress;
use cg_policy::EvalContext;
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::config::{BuildConfig, Engine, FactInputs, shard_key_of};
use crate::facts::{LoadedFacts, MemberSide, load_facts, load_facts_by_shard};
use crate::facts_data;
use crate::facts_runs::Sharding;
use crate::gate::Gate;
use crate::layout::{file_name, hex};
use crate::manifest::{InputRef, Manifest};
use crate::publish::{BuildOutput, Received, finish_dataset, finish_shards, publish};
use crate::spec::{GateRef, GateSpec};
use crate::store::{ObjectUrl, PrivateDir};

/// Runs a build and publishes it.
///
/// `cfg.out` may be an object prefix (`s3://bucket/prefix`): the dataset is then written to a
/// private staging directory and uploaded, manifest last ([`crate::store`]); the output's `dir`
/// is the dataset's URL.
pub fn build(mut cfg: BuildConfig, progress: &dyn Progress) -> Result<BuildOutput, BuildError> {
    if cfg.shards == 0 {
        return Err(BuildError::Input("--shards must be at least 1".into()));
    }
    let remote_out = ObjectUrl::of_path(&cfg.out).transpose()?;
    if let Some(c) = ObjectUrl::of_path(&cfg.content) {
        c?;
    }
    let shard_key = shard_key_of(&cfg);
    // The content's digest (a read of the whole file) runs beside the member facts' load,
    // which is mostly one thread's work. An embedded build holds every member (its gate
    // decides every row); a distributed build's client only writes the facts out per shard
    // for the executors, so it splits the member-side rows by shard and folds a shard at a
    // time (`load_facts_by_shard`).
    let (facts, content_sha256) = std::thread::scope(|scope| {
        let digest = scope.spawn(|| crate::store::sha256_of(&cfg.content));
        let inputs = FactInputs::of(&cfg);
        let facts = match cfg.engine {
            Engine::Embedded => {
                load_facts(&inputs, &cfg.purpose, cfg.as_of, progress).map(LoadedFacts::held)
            }
            _ => load_facts_by_shard(
                &inputs,
                &cfg.purpose,
                cfg.as_of,
                Sharding {
                    key: &shard_key,
                    shards: cfg.shards,
                },
                cfg.staging.as_deref(),
                progress,
            ),
        };
        let digest = digest.join().unwrap_or_else(|_| {
            Err(BuildError::Engine(
                "the content digest thread panicked".into(),
            ))
        });
        (facts, digest)
    });
    let mut facts = facts?;
    facts.inputs.push(InputRef {
        table: "content".into(),
        source: file_name(&cfg.content),
        sha256: content_sha256?,
    });

    let mut id = Sha256::new();
    id.update(format!(
        "{}\0{}\0{}\0{}\0{}\0{}\0",
        env!("CARGO_PKG_VERSION"),
        cfg.purpose,
        cfg.as_of,
        cfg.policy.hash(),
        cfg.shards,
        cfg.quarantine
    ));
    id.update(&shard_key);
    // A licence is part of the card and so of the output (absent: the ids of builds without
    // one are unchanged).
    if let Some(l) = &cfg.license {
        id.update(format!("license\0{l}\0"));
    }
    for i in &facts.inputs {
        id.update(format!("{}\0{}\0", i.table, i.sha256));
    }
    let dataset_id = format!("ds-{}", &hex(&id.finalize())[..16]);

    // Bound for a store: refuse a published dataset before the work, and write to staging.
    let staging = match &remote_out {
        Some(prefix) => {
            let dest = prefix.join(&dataset_id);
            if crate::store::dataset_exists(&dest)? {
                return Err(BuildError::Exists(PathBuf::from(dest.to_string())));
            }
            let dir = PrivateDir::new(cfg.staging.as_deref(), "staging")?;
            cfg.out = dir.path().to_owned();
            Some(dir)
        }
        None => None,
    };
    // A cluster's executors put the shards of a store-bound build on the store themselves,
    // each attempt under its own prefix here, beside where the dataset goes.
    let attempts = match (&remote_out, &cfg.engine) {
        (Some(prefix), Engine::Ballista(_)) => Some(prefix.join(&attempts_name(&dataset_id))),
        _ => None,
    };

    let mut received = Received::default();
    let mut stored = Vec::new();
    let published = publish(&cfg.out, &dataset_id, |tmp| {
        write_dataset(
            &cfg,
            facts,
            tmp,
            &dataset_id,
            &shard_key,
            attempts.as_ref(),
            progress,
            &mut received,
            &mut stored,
        )
    })
    .and_then(|mut out| {
        progress.finish_stage();
        out.received = received;
        if let (Some(prefix), Some(_staging)) = (&remote_out, &staging) {
            let dest = prefix.join(&dataset_id);
            progress.stage("upload", None);
            out.uploaded = crate::store::upload_dataset(&out.dir, &dest, &stored)?;
            progress.finish_stage();
            out.dir = PathBuf::from(dest.to_string());
        }
        Ok(out)
    });
    // The attempts' objects go whether the build was published or not: the kept ones were
    // copied into the dataset, the others are never part of one.
    if let Some(attempts) = &attempts {
        match (crate::store::remove_prefix(attempts), &published) {
            (Ok(_), _) => {}
            // The build failed: its error is the one to report.
            (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) => log::warn!(
                "the dataset is published, but its executors' shard uploads under `{attempts}` could not all be removed: {e}"
            ),
        }
    }
    published
}

/// The name of a store-bound distributed build's attempts prefix: the dataset's, marked as
/// not a dataset (a leading `.`), unique to this build.
fn attempts_name(dataset_id: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(".{dataset_id}.attempts-{}-{nanos:x}", std::process::id())
}

/// Writes a dataset from loaded facts (`facts.inputs` include the content's digest). With
/// `attempts` (a distributed build bound for a store) the executors put the shards on the
/// store; they are returned in `stored`, to be copied into the dataset there.
#[expect(clippy::too_many_arguments, reason = "one build's parts")]
fn write_dataset(
    cfg: &BuildConfig,
    facts: LoadedFacts<MemberSide>,
    dir: &Path,
    dataset_id: &str,
    shard_key: &[u8],
    attempts: Option<&crate::store::ObjectUrl>,
    progress: &dyn Progress,
    received: &mut Received,
    stored: &mut Vec<crate::store::StoredShard>,
) -> Result<Manifest, BuildError> {
    let LoadedFacts {
        members,
        inputs,
        mut summary,
    } = facts;
    progress.stage("compile members", None);
    let (gate, member_sources) = new_gate(cfg, members, &inputs, shard_key, dir)?;
    if member_sources.is_some() {
        summary.member_sources = member_sources;
    }
    progress.stage("decide", None);
    let mut pass = crate::pass::run_pass(
        cfg,
        &gate,
        shard_key,
        crate::pass::PassSpec {
            text: true,
            only_shards: None,
            dir,
            decisions: true,
            shards: (0..cfg.shards).collect(),
            // VRF keys are derived by the shard writers, where the members are; a roster is
            // made from the decision record's members (a distributed pass's from its tasks'
            // runs, as a stream).
            member_keys: (cfg.key_scheme == crate::KeyScheme::Vrf)
                .then_some((&*cfg.member_keys, dataset_id)),
            roster: (cfg.key_scheme == crate::KeyScheme::Roster)
                .then_some((&*cfg.member_keys, dataset_id)),
            collect: false,
            store: attempts,
        },
        progress,
    )?;
    // An embedded build decided every row with this gate; a distributed build's executors
    // decided them with their own (their count is theirs).
    if matches!(cfg.engine, Engine::Embedded)
        && let Ok(g) = gate.gate()
    {
        let tuples = g.engine().memo().len();
        progress.figure("attribute tuples decided by Cedar", tuples as u64);
    }
    progress.stage("commit and publish", None);
    drop(gate);
    facts_data::discard(dir)?;
    *received = pass.received;
    *stored = std::mem::take(&mut pass.stored);
    let shard_refs = finish_shards(cfg.shards, std::mem::take(&mut pass.shards), |_| None)?;
    // A distributed pass wrote the commitment from its tasks' runs; an embedded one collected
    // the keys or the roster's members.
    let commitment = match (pass.commitment_written.take(), cfg.key_scheme) {
        (Some(written), _) => MemberCommitment::written(written),
        (None, crate::KeyScheme::Vrf) => {
            MemberCommitment::intervals(std::mem::take(&mut pass.member_keys))?
        }
        (None, crate::KeyScheme::Roster) => MemberCommitment::roster_of(
            pass.roster
                .take()
                .ok_or_else(|| BuildError::Engine("the pass collected no roster".into()))?,
            &cfg.member_keys,
            dataset_id,
        )?,
    };
    let scheme = match cfg.key_scheme {
        crate::KeyScheme::Vrf => cg_proof::member_key::KEY_SCHEME,
        crate::KeyScheme::Roster => cg_proof::roster::ROSTER_SCHEME,
    };
    if commitment.scheme() != scheme {
        return Err(BuildError::Engine(format!(
            "the pass made a `{}` commitment, the build asked for `{scheme}`",
            commitment.scheme()
        )));
    }
    // Both commitments must hold exactly the members with a row in the shards.
    if commitment.members != pass.kept_members.len() as u64 {
        return Err(BuildError::Engine(format!(
            "the member commitment has {} members in the dataset, the decision record {}",
            commitment.members,
            pass.kept_members.len()
        )));
    }
    finish_dataset(
        cfg,
        dir,
        dataset_id,
        inputs,
        summary,
        shard_key,
        shard_refs,
        pass,
        &commitment,
        dataset_id,
        None,
    )
}

/// The gate of a build (`inputs`: the manifest's inputs, `dir`: the build's temporary
/// directory). For a distributed build the member facts are written there as data
/// ([`crate::facts_data`]) and the gate is made over that data, as the executors' are (the
/// client compiles no member); it carries the spec executors make theirs from. The caller
/// removes the data with [`crate::facts_data::discard`] before publishing. Also returns where
/// the members came from when only folding them told (a ledger's snapshot split by shard:
/// [`crate::facts::ShardedFacts::finish_folds`]), for the manifest's `member_sources`.
pub(crate) fn new_gate(
    cfg: &BuildConfig,
    members: MemberSide,
    inputs: &[InputRef],
    shard_key: &[u8],
    dir: &Path,
) -> Result<(Arc<GateRef>, Option<crate::manifest::MemberSources>), BuildError> {
    let ctx = EvalContext {
        purpose: cfg.purpose.clone(),
        as_of: cfg.as_of,
    };
    if cfg.engine == Engine::Embedded {
        let routing = crate::gate::Routing {
            key: shard_key,
            shards: cfg.shards,
        };
        let (members, sources) = members.into_held()?;
        let gate = Gate::new(
            cfg.policy.clone(),
            ctx,
            members,
            cfg.quarantine,
            Some(routing),
        )
        .map_err(BuildError::from)?;
        return Ok((Arc::new(GateRef::ready(None, Arc::new(gate))), sources));
    }
    // A distributed build's client never decides a row: it writes the facts as data, and each
    // shard's mentions file from its members compiled and dropped in turn, and keeps a gate
    // over that data (which compiles nothing unless asked) instead of every member compiled.
    let facts_dir = dir.join(facts_data::DIR);
    let engine = cg_policy::Engine::new(cfg.policy.clone(), ctx.purpose.clone(), ctx.as_of);
    let (shards, sources) = match members {
        MemberSide::Held(members) => {
            let shards =
                facts_data::write_shards(&members, shard_key, cfg.shards, &facts_dir, &engine)?;
            (shards, None)
        }
        // One shard's members folded and written at a time.
        MemberSide::ByShard(sharded) => {
            if sharded.shards() != cfg.shards {
                return Err(BuildError::Engine(format!(
                    "the member facts were split into {} shards, the build has {}",
                    sharded.shards(),
                    cfg.shards
                )));
            }
            std::fs::create_dir_all(&facts_dir).map_err(|e| BuildError::io(&facts_dir, e))?;
            write_folded_shards(cfg, &engine, &sharded, shard_key, &facts_dir)?
        }
    };
    let dir = std::fs::canonicalize(&facts_dir).map_err(|e| BuildError::io(&facts_dir, e))?;
    let data = facts_data::FactsData {
        dir,
        key: hex(shard_key),
        shards,
    };
    let spec = GateSpec::new(
        data.clone(),
        &cfg.content,
        inputs,
        &cfg.purpose,
        cfg.as_of,
        cfg.quarantine,
        &cfg.policy,
    );
    let gate = Gate::from_data(cfg.policy.clone(), ctx, data, cfg.quarantine)
        .map_err(|e| BuildError::Gate(Box::new(e)))?;
    Ok((
        Arc::new(GateRef::ready(Some(Arc::new(spec)), Arc::new(gate))),
        sources,
    ))
}

/// Folds the members of each shard ([`crate::facts::ShardedFacts::fold`]) and writes its facts
/// and mentions files, a shard at a time on every core (each worker holds the shard it folds).
/// Returns the files in shard order, and where the members came from when the ledger was read
/// ([`crate::facts::ShardedFacts::finish_folds`]).
fn write_folded_shards(
    cfg: &BuildConfig,
    engine: &cg_policy::Engine,
    sharded: &crate::facts::ShardedFacts,
    shard_key: &[u8],
    facts_dir: &Path,
) -> Result<
    (
        Vec<facts_data::ShardFacts>,
        Option<crate::manifest::MemberSources>,
    ),
    BuildError,
> {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let next = AtomicU32::new(0);
    let failed = AtomicBool::new(false);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(cfg.shards as usize)
        .max(1);
    let work = || {
        let mut written = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let shard = next.fetch_add(1, Ordering::Relaxed);
            if shard >= cfg.shards {
                break;
            }
            let done = sharded.fold(shard).and_then(|members| {
                facts_data::write_shard(facts_dir, shard, shard_key, cfg.shards, &members, engine)
            });
            match done {
                Ok(file) => written.push((shard, file)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err((shard, e));
                }
            }
        }
        Ok(written)
    };
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err((
                        0,
                        BuildError::Engine("a member-facts worker panicked".into()),
                    ))
                })
            })
            .collect::<Vec<_>>()
    });
    let mut files: Vec<Option<facts_data::ShardFacts>> = vec![None; cfg.shards as usize];
    let mut first_error: Option<(u32, BuildError)> = None;
    for result in results {
        match result {
            Ok(written) => {
                for (shard, file) in written {
                    files[shard as usize] = Some(file);
                }
            }
            // The lowest shard's error, whichever worker met it first.
            Err((shard, e)) => {
                if first_error.as_ref().is_none_or(|(s, _)| shard < *s) {
                    first_error = Some((shard, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    let sources = sharded.finish_folds()?;
    let files = files
        .into_iter()
        .enumerate()
        .map(|(shard, f)| {
            f.ok_or_else(|| {
                BuildError::Engine(format!(
                    "the member facts of shard {shard} were not written"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((files, sources))
}
