//! The client's side of a distributed pass: the executors wrote the shards and the decision
//! records ([`crate::sink`]); the client reads their summaries, keeps one attempt per task
//! (Ballista may report a re-run task twice), checks that every file is there and whole and that
//! the records cover every row the pass reads (counted here: a Parquet file's metadata), merges
//! the records into `decisions.parquet` (finding repeated and missing content ids, counting),
//! writes the shards no task had rows for, takes the member keys the executors derived (checked
//! against the record's members, a few re-derived) and derives the rest, and removes what only
//! the pass needed (the records, the key runs, files of failed attempts).
//!
//! What the client receives from the cluster is one summary row per file written: its size
//! does not grow with the rows. It still reads the records (48 bytes a row) from the shared
//! directory, to write the one `decisions.parquet` the layout has.
//!
//! The wait for the cluster is bounded (the engine URL's `timeout=SECS`, a day by default):
//! past it the client cancels the job on the scheduler and fails; nothing is published.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::ExecutionPlan;
use futures_lite::StreamExt;
use rustc_hash::FxHashSet;

use crate::BuildError;
use crate::config::BuildConfig;
use crate::gate::Gate;
use crate::layout::{ShardOut, keyed_shard};
use crate::manifest::FileRef;
use crate::pass::{
    PassOut, PassSpec, RECORD_BYTES, RECORDS_PREFIX, Records, find_duplicates, tally, write_record,
};
use crate::sink::{KEY_RECORD_BYTES, KEYS_PREFIX, Output, SinkItem, scratch_dir, summary_items};
use crate::store::StoredShard;

/// A distributed pass's job on the cluster.
pub(crate) struct Job {
    /// The sink's summaries.
    pub streams: Vec<SendableRecordBatchStream>,
    /// The job's physical plan (to cancel it by).
    pub plan: Option<Arc<dyn ExecutionPlan>>,
}

/// Asks the scheduler to cancel the job `plan` runs as (its tasks stop; files they would still
/// write land in a scratch directory the client removes). Returns the job's id if the scheduler
/// took the request; a cluster that does not answer within seconds is left as it is.
#[cfg(feature = "ballista")]
async fn cancel(scheduler: &str, plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    crate::distributed::cancel_job(scheduler, plan).await
}

/// Without the `ballista` feature there is no cluster to cancel a job on.
#[cfg(not(feature = "ballista"))]
async fn cancel(_scheduler: &str, _plan: &Arc<dyn ExecutionPlan>) -> Option<String> {
    None
}

/// Finishes a distributed pass from the sink's summaries.
pub(crate) fn finish(
    cfg: &BuildConfig,
    gate: &Gate,
    shard_key: &[u8],
    spec: &PassSpec<'_>,
    job: Job,
    runtime: &tokio::runtime::Runtime,
    progress: &dyn cg_model::progress::Progress,
) -> Result<PassOut, BuildError> {
    let out = finish_unswept(cfg, gate, shard_key, spec, job, runtime, progress);
    // Records, key runs and files of failed attempts are scratch, whether the pass succeeded
    // or not.
    let swept = sweep(spec.dir);
    let out = out?;
    swept?;
    Ok(out)
}

fn finish_unswept(
    cfg: &BuildConfig,
    gate: &Gate,
    shard_key: &[u8],
    spec: &PassSpec<'_>,
    job: Job,
    runtime: &tokio::runtime::Runtime,
    progress: &dyn cg_model::progress::Progress,
) -> Result<PassOut, BuildError> {
    let received = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    let Job { streams, plan } = job;
    let wait = cfg
        .engine
        .timeout()
        .unwrap_or(Duration::from_secs(crate::config::DEFAULT_TIMEOUT_SECS));
    let summaries = async {
        let mut items = Vec::new();
        for mut stream in streams {
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|e| crate::engine_error(&cfg.content, e))?;
                for (counter, n) in
                    received
                        .iter()
                        .zip([1, batch.num_rows() as u64, ipc_bytes(&batch)?])
                {
                    counter.fetch_add(n, Ordering::Relaxed);
                }
                items.extend(summary_items(&batch)?);
            }
        }
        Ok::<_, BuildError>(items)
    };
    let items = runtime.block_on(async {
        match tokio::time::timeout(wait, summaries).await {
            Ok(items) => items,
            Err(_) => {
                let cancelled = match (&plan, cfg.engine.ballista()) {
                    (Some(plan), Some((scheduler, _))) => cancel(scheduler, plan).await,
                    _ => None,
                };
                Err(BuildError::Engine(format!(
                    "the cluster did not finish the build within {} s (the engine URL's `timeout=SECS`); {}nothing is published",
                    wait.as_secs(),
                    cancelled.map_or(String::new(), |job| format!("job {job} cancelled; ")),
                )))
            }
        }
    });
    let result = items.and_then(|items| {
        let items = one_attempt_per_task(items)?;
        let (written, stored) = checked(spec, cfg.shards, &items)?;
        let mut runs = Vec::new();
        let mut run_paths = Vec::new();
        let scratch = scratch_dir(spec.dir);
        for item in items.iter().filter(|i| i.output == Output::Records) {
            // Every read of a run checks it is the bytes its task reported (the merge into
            // `decisions.parquet`, the scan for repeated ids, the roster).
            run_paths.push((scratch.join(&item.file), item.sha256.clone()));
            runs.push(Records::on_disk(
                scratch.join(&item.file),
                item.sha256.clone(),
            ));
            progress.advance(item.rows);
        }
        // Every row the pass reads has its record: an output the cluster did not list would
        // otherwise be a row missing from `decisions.parquet` and its shard.
        let recorded: u64 = items
            .iter()
            .filter(|i| i.output == Output::Records)
            .map(|i| i.rows)
            .sum();
        let expected = runtime.block_on(crate::pass::count_rows(
            cfg,
            shard_key,
            spec.only_shards.as_ref(),
        ))?;
        if recorded != expected {
            return Err(BuildError::Engine(format!(
                "the cluster returned the decisions of {recorded} rows, the content has {expected}"
            )));
        }
        let later_copies = find_duplicates(cfg, &runs, runtime)?;
        if !later_copies.is_empty() {
            // `find_duplicates` refuses every repeated id in a distributed build.
            return Err(BuildError::Engine(
                "a distributed pass cannot quarantine repeated content ids".into(),
            ));
        }
        // The roster is written from the tasks' runs, one task's members at a time, not
        // collected from the merged record (which would hold every member).
        let record = write_record(
            crate::pass::Merged::new(&runs)?,
            &later_copies,
            spec.decisions.then_some(spec.dir),
            spec.collect,
            false,
        )?;
        let roster = match spec.roster {
            Some((secret, domain)) => Some(crate::commit_runs::write_roster(
                &run_paths,
                &scratch,
                &spec.dir.join("members.commitment"),
                secret,
                domain,
            )?),
            None => None,
        };
        Ok((written, stored, record, roster, items))
    });
    let (written, stored, record, roster, items) = result?;

    let mut out = PassOut {
        received: crate::publish::Received {
            batches: received[0].load(Ordering::Relaxed),
            rows: received[1].load(Ordering::Relaxed),
            bytes: received[2].load(Ordering::Relaxed),
            member_keys: 0,
            tasks: 0,
        },
        ..PassOut::default()
    };
    let spooled: FxHashSet<u32> = spec.shards.iter().copied().collect();
    if spec.text && !spec.shards.is_empty() {
        // Every member with a kept row in a written shard is in exactly that shard.
        let in_shards: u64 = written.values().map(|(_, members)| members).sum();
        // (member, its shard), ascending by member: each member's shard hashed once.
        let members: Vec<(i64, u32)> = record
            .kept_members
            .iter()
            .map(|&m| (m, keyed_shard(shard_key, m, cfg.shards)))
            .filter(|(_, shard)| spooled.contains(shard))
            .collect();
        if in_shards != members.len() as u64 {
            return Err(BuildError::Engine(format!(
                "the shards hold {in_shards} members, the decision record {}",
                members.len()
            )));
        }
        // And every kept row of the record is in a shard file.
        let shard_rows: u64 = written.values().map(|(file, _)| file.rows).sum();
        let kept_rows: u64 = record
            .counts
            .iter()
            .filter(|((code, _), _)| cg_policy::verdict_of(*code).decision().is_kept())
            .map(|(_, n)| n)
            .sum();
        if shard_rows != kept_rows {
            return Err(BuildError::Engine(format!(
                "the shards hold {shard_rows} rows, the decision record keeps {kept_rows}"
            )));
        }
        // Shards no task had a row for are written here, as an embedded build writes them.
        for &shard in &spec.shards {
            let file = match written.get(&shard) {
                Some((file, _)) => file.clone(),
                None => {
                    let (_, sha256) = ShardOut::create(spec.dir, shard)?.finish()?;
                    FileRef {
                        file: format!("shards/part-{shard:05}.parquet"),
                        rows: 0,
                        sha256,
                    }
                }
            };
            out.shards.push((shard, file));
        }
        if let Some((secret, domain)) = spec.member_keys {
            let (written, from_executors) = write_member_keys(
                &scratch_dir(spec.dir),
                &items,
                &members,
                secret,
                domain,
                &spec.dir.join("members.commitment"),
            )?;
            out.commitment_written = Some(written);
            out.received.member_keys = from_executors;
        }
    }
    out.stored = stored;
    out.kept_members = record.kept_members;
    out.roster = record.roster;
    if roster.is_some() {
        out.commitment_written = roster;
    }
    out.rows = record.rows;
    out.decisions = record.decisions;
    tally(&mut out, record.counts, gate);
    Ok(out)
}

/// The summaries of one attempt per task. After losing an executor Ballista may report two
/// completed attempts of one task. Tasks of the sink's stage receive disjoint sets of routing
/// shards, so attempts whose sets meet are attempts of one task: they decided the same rows and
/// must have seen the same shards and written the same files (shards with the same digest, rows
/// and members; as many records) — anything else fails the build — and one of them is kept
/// (their shards are the same bytes; the other's records are swept).
fn one_attempt_per_task(items: Vec<SinkItem>) -> Result<Vec<SinkItem>, BuildError> {
    let bad = |what: String| BuildError::Engine(format!("the cluster's output: {what}"));
    // One attempt's output can also arrive twice (Ballista listed a re-run stage's output
    // locations twice): the same file is the same summary row.
    let mut attempts: BTreeMap<String, BTreeMap<String, SinkItem>> = BTreeMap::new();
    for item in items {
        let files = attempts.entry(item.attempt.clone()).or_default();
        match files.get(&item.file) {
            Some(same) if *same != item => {
                return Err(bad(format!(
                    "`{}` reported twice, differently, by attempt {}",
                    item.file, item.attempt
                )));
            }
            Some(_) => {}
            None => {
                files.insert(item.file.clone(), item);
            }
        }
    }
    let outcome = |items: &[SinkItem]| {
        let mut o: Vec<(Output, u64, String, u64)> = items
            .iter()
            .map(|i| (i.output, i.rows, i.sha256.clone(), i.members))
            .collect();
        o.sort();
        o
    };
    let mut kept: Vec<(Vec<u32>, Vec<SinkItem>)> = Vec::new();
    let mut owner: rustc_hash::FxHashMap<u32, usize> = rustc_hash::FxHashMap::default();
    for (attempt, files) in attempts {
        let items: Vec<SinkItem> = files.into_values().collect();
        let mut records = items.iter().filter(|i| i.output == Output::Records);
        let (Some(record), None) = (records.next(), records.next()) else {
            return Err(bad(format!(
                "attempt {attempt} did not report one run of records"
            )));
        };
        if items
            .iter()
            .filter(|i| i.output == Output::MemberKeys)
            .count()
            > 1
        {
            return Err(bad(format!(
                "attempt {attempt} reported two runs of member keys"
            )));
        }
        let seen = record.seen.clone();
        let met: FxHashSet<usize> = seen.iter().filter_map(|s| owner.get(s).copied()).collect();
        match met.iter().next() {
            None => {
                for s in &seen {
                    owner.insert(*s, kept.len());
                }
                kept.push((seen, items));
            }
            Some(&k) if met.len() == 1 && kept[k].0 == seen => {
                if outcome(&kept[k].1) != outcome(&items) {
                    return Err(bad(format!(
                        "two attempts of one task (routing shards {}..) wrote different files",
                        seen.first().copied().unwrap_or_default()
                    )));
                }
            }
            Some(_) => {
                return Err(bad(
                    "the rows of one shard reached two tasks (the plan did not route rows by shard)"
                        .into(),
                ));
            }
        }
    }
    Ok(kept.into_iter().flat_map(|(_, items)| items).collect())
}

/// Shards written by a pass's tasks: their manifest entries and distinct members, by shard.
type WrittenShards = BTreeMap<u32, (FileRef, u64)>;

/// The shards the summaries name (file, members), after checking each file: a shard of this
/// pass, written by one task only, present with the size the task reported (in `shards/`, or
/// for a build publishing to a store, under its attempt's prefix there: those are also
/// returned as [`StoredShard`]s); runs (records, member keys) whole, by a name of theirs in the
/// scratch directory.
fn checked(
    spec: &PassSpec<'_>,
    shards: u32,
    items: &[SinkItem],
) -> Result<(WrittenShards, Vec<StoredShard>), BuildError> {
    let bad = |what: String| BuildError::Engine(format!("the cluster's output: {what}"));
    let wanted: FxHashSet<u32> = spec.shards.iter().copied().collect();
    let scratch = scratch_dir(spec.dir);
    let mut written = BTreeMap::new();
    let mut stored = Vec::new();
    for item in items {
        let run = |prefix: &str| {
            let ok = item.file.starts_with(prefix)
                && item.file.ends_with(".bin")
                && !item.file.contains("..")
                && !item.file.contains('/');
            (scratch.join(&item.file), ok)
        };
        let (path, name_ok) = match item.output {
            Output::Shard(shard) => {
                if shard >= shards || !spec.text || !wanted.contains(&shard) {
                    return Err(bad(format!("shard {shard} was not to be written")));
                }
                let ok = item.file == format!("shards/part-{shard:05}.parquet");
                (spec.dir.join(&item.file), ok)
            }
            Output::Records => {
                if item.bytes != item.rows * RECORD_BYTES as u64 {
                    return Err(bad(format!("`{}`: records of another size", item.file)));
                }
                run(RECORDS_PREFIX)
            }
            Output::MemberKeys => {
                if spec.member_keys.is_none() || !spec.text {
                    return Err(bad(format!(
                        "`{}`: member keys were not asked for",
                        item.file
                    )));
                }
                if item.bytes != item.rows * KEY_RECORD_BYTES as u64 || item.rows != item.members {
                    return Err(bad(format!("`{}`: member keys of another size", item.file)));
                }
                run(KEYS_PREFIX)
            }
        };
        if !name_ok {
            return Err(bad(format!("unexpected file `{}`", item.file)));
        }
        match (item.output, spec.store) {
            (Output::Shard(shard), Some(prefix)) => stored.push(StoredShard {
                from: crate::sink::shard_object(prefix, &item.attempt, shard)?,
                name: item.file.clone(),
                bytes: item.bytes,
                sha256: item.sha256.clone(),
            }),
            _ => {
                let size = std::fs::metadata(&path)
                    .map_err(|e| BuildError::io(&path, e))?
                    .len();
                if size != item.bytes {
                    return Err(bad(format!(
                        "`{}` holds {size} bytes, its task wrote {}",
                        item.file, item.bytes
                    )));
                }
            }
        }
        if let Output::Shard(shard) = item.output {
            let file = FileRef {
                file: item.file.clone(),
                rows: item.rows,
                sha256: item.sha256.clone(),
            };
            if written.insert(shard, (file, item.members)).is_some() {
                return Err(bad(format!(
                    "shard {shard} was written by two tasks (the plan did not route rows by shard)"
                )));
            }
        }
    }
    // The objects on the store, a `HEAD` each: there, with the size their tasks reported.
    let urls: Vec<_> = stored.iter().map(|s| s.from.clone()).collect();
    for (shard, size) in stored.iter().zip(crate::store::sizes_of_objects(&urls)?) {
        if size != shard.bytes {
            return Err(bad(format!(
                "`{}` holds {size} bytes, its task wrote {}",
                shard.from, shard.bytes
            )));
        }
    }
    Ok((written, stored))
}

/// Removes the scratch directory (the runs of records and member keys, partial files of
/// attempts that did not finish) and every file in `shards/` that is not a finished shard.
///
/// This fences attempts the scheduler gave up on but that still run: tasks create files only
/// in the scratch directory and never create it, so once it is gone such an attempt can
/// neither create a file nor rename one into `shards/` (its source is gone with it) — nothing
/// it does can reach the published dataset. (A finished shard it renamed before this point has
/// the same bytes as the kept attempt's.)
fn sweep(dir: &Path) -> Result<(), BuildError> {
    let scratch = scratch_dir(dir);
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(|e| BuildError::io(&scratch, e))?;
    }
    let shards = dir.join("shards");
    let Ok(entries) = std::fs::read_dir(&shards) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| BuildError::io(&shards, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let finished = name
            .strip_prefix("part-")
            .and_then(|n| n.strip_suffix(".parquet"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !finished {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| BuildError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Writes the VRF commitment of `members` (ascending: every member with a kept row in the
/// pass's shards) to `out` as a stream, and returns how many of the keys the executors
/// derived. A task whose executor holds the member-key secret wrote the keys of its shards'
/// members, sorted by key ([`crate::key_run`]); each such run is read, checked (its digest;
/// together they hold exactly the record's members of those shards; a few keys of each
/// re-derived here) and merged as it is. The keys of the other shards' members are derived
/// here, one shard at a time on every core, and written as sorted runs of their own in
/// `scratch`. A member is never left out of the commitment, and the client never holds more
/// than one run's keys ([`crate::commit_runs::write_intervals`]). An executor's run is read
/// twice, checked and then merged, and its digest is checked on both reads: one altered in
/// between (by whoever can write the shared staging directory) fails the build.
fn write_member_keys(
    scratch: &Path,
    items: &[SinkItem],
    members: &[(i64, u32)],
    secret: &cg_proof::member_key::MemberKeySecret,
    domain: &str,
    out: &Path,
) -> Result<(crate::commit_runs::WrittenCommitment, u64), BuildError> {
    let keyed_attempts: FxHashSet<&str> = items
        .iter()
        .filter(|i| i.output == Output::MemberKeys)
        .map(|i| i.attempt.as_str())
        .collect();
    let keyed_shards: FxHashSet<u32> = items
        .iter()
        .filter(|i| keyed_attempts.contains(i.attempt.as_str()))
        .filter_map(|i| i.output.shard())
        .collect();
    let mut runs: Vec<crate::commit_runs::Run> = Vec::new();
    let mut from_runs: Vec<i64> = Vec::new();
    for item in items.iter().filter(|i| i.output == Output::MemberKeys) {
        let path = scratch.join(&item.file);
        let pairs = crate::key_run::read(&path, &item.sha256)?;
        crate::key_run::spot_check(&pairs, secret, domain, &item.file)?;
        from_runs.extend(pairs.iter().map(|(_, member)| *member));
        // The merge hashes the run again: one changed since this check fails the build.
        runs.push(crate::commit_runs::Run {
            path,
            record: KEY_RECORD_BYTES,
            sha256: Some(item.sha256.clone()),
        });
    }
    from_runs.sort_unstable();
    let mut in_runs = Vec::new();
    let mut here: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for &(member, shard) in members {
        if keyed_shards.contains(&shard) {
            in_runs.push(member);
        } else {
            here.entry(shard).or_default().push(member);
        }
    }
    if from_runs != in_runs {
        return Err(BuildError::Engine(format!(
            "the executors derived the keys of {} members of their shards, the decision record has {} (or other members)",
            from_runs.len(),
            in_runs.len()
        )));
    }
    let from_executors = from_runs.len() as u64;
    drop((from_runs, in_runs));
    let mut keys = from_executors;
    for (shard, ids) in here {
        let mut derived = crate::commitment::member_keys(secret, domain, &ids)?;
        derived.sort_unstable();
        let path = scratch.join(format!("{KEYS_PREFIX}client-{shard:05}.bin"));
        let file = std::fs::File::create(&path).map_err(|e| BuildError::io(&path, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        for key in &derived {
            std::io::Write::write_all(&mut w, key).map_err(|e| BuildError::io(&path, e))?;
        }
        std::io::Write::flush(&mut w).map_err(|e| BuildError::io(&path, e))?;
        keys += derived.len() as u64;
        runs.push(crate::commit_runs::Run {
            path,
            record: 32,
            sha256: None,
        });
    }
    let written = crate::commit_runs::write_intervals(&runs, keys, out)?;
    Ok((written, from_executors))
}

/// The bytes a batch takes as Arrow IPC messages — what an Arrow Flight stream carries for it
/// (message headers and buffers, before any transport compression): the client's count of what
/// it received. (A batch's in-memory size counted its buffers' capacity instead, ~14 KB for
/// a batch of a few summary rows.)
fn ipc_bytes(batch: &arrow::array::RecordBatch) -> Result<u64, BuildError> {
    use arrow_ipc::writer::{
        DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions,
    };
    let (dictionaries, encoded) = IpcDataGenerator::default().encode(
        batch,
        &mut DictionaryTracker::new(false),
        &IpcWriteOptions::default(),
        &mut IpcWriteContext::default(),
    )?;
    Ok(dictionaries
        .iter()
        .chain(std::iter::once(&encoded))
        .map(|d| (d.ipc_message.len() + d.arrow_data.len()) as u64)
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A received batch counts as the bytes of its IPC message — what a stream writer puts
    /// on the wire for it, but for the 8-byte frame prefix and the padding (the header to 8
    /// bytes, the body to 64) — not its buffers' capacity, which is far larger for a few
    /// summary rows.
    #[test]
    fn a_received_batch_counts_as_its_ipc_bytes() {
        use arrow::array::{RecordBatch, StringArray};
        let mut ids = arrow::array::Int64Builder::with_capacity(4096);
        ids.append_slice(&[1, 2, 3]);
        let batch = RecordBatch::try_from_iter([
            ("rows", std::sync::Arc::new(ids.finish()) as _),
            (
                "file",
                std::sync::Arc::new(StringArray::from(vec!["a", "bb", "ccc"])) as _,
            ),
        ])
        .unwrap();
        let counted = ipc_bytes(&batch).unwrap();
        let stream = |batches: &[&RecordBatch]| {
            let mut w =
                arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
            for b in batches {
                w.write(b).unwrap();
            }
            w.into_inner().unwrap().len() as u64
        };
        let on_the_wire = stream(&[&batch]) - stream(&[]);
        assert!(
            counted <= on_the_wire && on_the_wire - counted < 8 + 8 + 64,
            "{counted} counted, {on_the_wire} written"
        );
        assert!(counted < batch.get_array_memory_size() as u64 / 4);
    }

    fn records(attempt: &str, rows: u64, seen: &[u32]) -> SinkItem {
        SinkItem {
            attempt: attempt.into(),
            output: Output::Records,
            file: format!("records-00000-{attempt}.bin"),
            rows,
            bytes: rows * RECORD_BYTES as u64,
            sha256: String::new(),
            members: 0,
            seen: seen.to_vec(),
        }
    }

    fn shard(attempt: &str, shard: u32, sha: &str) -> SinkItem {
        SinkItem {
            attempt: attempt.into(),
            output: Output::Shard(shard),
            file: format!("shards/part-{shard:05}.parquet"),
            rows: 3,
            bytes: 100,
            sha256: sha.into(),
            members: 2,
            seen: Vec::new(),
        }
    }

    #[test]
    fn one_attempt_of_each_task_is_kept() {
        // Task a saw routes 1 and 3, task b route 2; a was re-run as c (same rows, same
        // files), and b's output arrived twice.
        let items = vec![
            records("a", 10, &[1, 3]),
            shard("a", 1, "x1"),
            shard("a", 3, "x3"),
            records("b", 4, &[2]),
            shard("b", 2, "x2"),
            records("b", 4, &[2]),
            shard("b", 2, "x2"),
            records("c", 10, &[1, 3]),
            shard("c", 3, "x3"),
            shard("c", 1, "x1"),
        ];
        let kept = one_attempt_per_task(items).unwrap();
        let mut attempts: Vec<&str> = kept.iter().map(|i| i.attempt.as_str()).collect();
        attempts.sort();
        assert_eq!(attempts, ["a", "a", "a", "b", "b"]);
        // An attempt without rows (an empty task) is kept: it adds nothing.
        let kept = one_attempt_per_task(vec![records("a", 0, &[]), records("b", 0, &[])]);
        assert_eq!(kept.unwrap().len(), 2);
    }

    proptest::proptest! {
        /// However Ballista repeats attempts and outputs, one attempt of each task is kept and
        /// every file of it once.
        #[test]
        fn one_attempt_of_each_task_survives_any_repetition(
            tasks in proptest::collection::vec(
                (proptest::collection::btree_set(0u32..64, 0..6), 0usize..3, 0usize..3),
                1..6,
            ),
        ) {
            let mut owner = std::collections::BTreeMap::new();
            let mut items = Vec::new();
            let mut expected = 0;
            for (t, (routes, extra_attempts, repeats)) in tasks.iter().enumerate() {
                // Tasks see disjoint routes: drop what an earlier task already holds.
                let routes: Vec<u32> = routes
                    .iter()
                    .copied()
                    .filter(|r| owner.insert(*r, t).is_none())
                    .collect();
                let task_items = |attempt: &str| {
                    let mut v = vec![records(attempt, routes.len() as u64 * 3, &routes)];
                    v.extend(routes.iter().map(|r| shard(attempt, *r, &format!("d{r}"))));
                    v
                };
                expected += 1 + routes.len();
                for a in 0..=*extra_attempts {
                    let attempt = format!("t{t}-a{a}");
                    // Without routes, every attempt is kept (they hold nothing).
                    if routes.is_empty() && a > 0 {
                        expected += 1;
                    }
                    for _ in 0..=*repeats {
                        items.extend(task_items(&attempt));
                    }
                }
            }
            let kept = one_attempt_per_task(items).unwrap();
            proptest::prop_assert_eq!(kept.len(), expected);
            let mut shards: Vec<u32> = kept.iter().filter_map(|i| i.output.shard()).collect();
            let n = shards.len();
            shards.sort_unstable();
            shards.dedup();
            proptest::prop_assert_eq!(shards.len(), n, "a shard kept twice");
        }
    }

    #[test]
    fn attempts_that_disagree_or_overlap_fail_the_build() {
        // A re-run that wrote another shard digest.
        let differ = vec![
            records("a", 10, &[1]),
            shard("a", 1, "x1"),
            records("c", 10, &[1]),
            shard("c", 1, "other"),
        ];
        assert!(one_attempt_per_task(differ).is_err());
        // Two tasks that both saw rows of route 1 (the plan did not route by shard).
        let overlap = vec![records("a", 10, &[1, 2]), records("b", 5, &[2, 3])];
        let err = one_attempt_per_task(overlap).unwrap_err().to_string();
        assert!(err.contains("two tasks"), "{err}");
        // An attempt that reported no records, or the same file twice with other figures.
        assert!(one_attempt_per_task(vec![shard("a", 1, "x1")]).is_err());
        let mut twice = records("a", 10, &[1]);
        twice.rows = 11;
        assert!(one_attempt_per_task(vec![records("a", 10, &[1]), twice]).is_err());
    }

    /// A text pass writing shards 0 and 1 of two into `dir`.
    fn text_pass(dir: &Path) -> PassSpec<'_> {
        PassSpec {
            text: true,
            only_shards: None,
            dir,
            decisions: true,
            shards: vec![0, 1],
            member_keys: None,
            collect: false,
            roster: None,
            store: None,
        }
    }

    #[test]
    fn shards_on_a_store_are_accepted_only_under_their_attempts_name_and_size() {
        let s3 = cg_test_support::S3Server::start("cg-shards");
        crate::store::use_test_server(&s3, "cg-shards");
        let root = cg_test_support::tempdir();
        let dir = root.path().join(".ds-2.partial-7");
        let scratch = scratch_dir(&dir);
        std::fs::create_dir_all(dir.as_path().join("shards")).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(
            scratch.join("records-00000-a.bin"),
            [0u8; 10 * RECORD_BYTES],
        )
        .unwrap();
        // Attempt `a` put shard 1 under its own name (100 bytes, as `shard` reports).
        s3.put("out/.ds-2.attempts-1/a/part-00001.parquet", vec![0u8; 100]);
        let prefix = crate::store::ObjectUrl::parse("s3://cg-shards/out/.ds-2.attempts-1").unwrap();
        let spec = PassSpec {
            store: Some(&prefix),
            ..text_pass(&dir)
        };
        let good = vec![records("a", 10, &[1]), shard("a", 1, "x1")];
        let (written, stored) = checked(&spec, 2, &good).unwrap();
        assert_eq!(written.keys().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(
            stored,
            [StoredShard {
                from: prefix.join("a/part-00001.parquet"),
                name: "shards/part-00001.parquet".into(),
                bytes: 100,
                sha256: "x1".into(),
            }]
        );
        // Not in `shards/` on the shared directory: nothing there is looked at.
        assert_eq!(std::fs::read_dir(dir.join("shards")).unwrap().count(), 0);
        // Another size, another attempt's name (no object), an attempt name that would leave
        // the prefix: each refused.
        for bad in [
            vec![
                records("a", 10, &[1]),
                SinkItem {
                    bytes: 99,
                    ..shard("a", 1, "x1")
                },
            ],
            vec![records("b", 10, &[1]), shard("b", 1, "x1")],
            vec![records("../x", 10, &[1]), shard("../x", 1, "x1")],
        ] {
            assert!(checked(&spec, 2, &bad).is_err());
        }
    }

    #[test]
    fn only_files_as_reported_are_accepted_and_the_rest_is_swept() {
        let root = cg_test_support::tempdir();
        let dir = root.path().join(".ds-1.partial-7");
        let scratch = scratch_dir(&dir);
        std::fs::create_dir_all(dir.as_path().join("shards")).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(dir.as_path().join("shards/part-00001.parquet"), [0u8; 100]).unwrap();
        std::fs::write(
            scratch.join("records-00000-a.bin"),
            [0u8; 10 * RECORD_BYTES],
        )
        .unwrap();
        let spec = text_pass(&dir);
        let good = vec![records("a", 10, &[1]), shard("a", 1, "x1")];
        let (written, stored) = checked(&spec, 2, &good).unwrap();
        assert_eq!(written.keys().copied().collect::<Vec<_>>(), [1]);
        assert!(stored.is_empty());
        // A shard not of this pass, a file of another size, a path outside the directory, a
        // shard twice: each refused.
        for bad in [
            vec![shard("a", 5, "x")],
            vec![SinkItem {
                bytes: 99,
                ..shard("a", 1, "x1")
            }],
            vec![SinkItem {
                file: "records-/../../etc/passwd.bin".into(),
                ..records("a", 10, &[1])
            }],
            vec![SinkItem {
                file: "keys-00000-a.bin".into(),
                ..records("a", 10, &[1])
            }],
            vec![shard("a", 1, "x1"), shard("b", 1, "x1")],
        ] {
            assert!(checked(&spec, 2, &bad).is_err());
        }

        // The scratch directory (a lost attempt's partial shard, the records) is swept, and any
        // stray file in `shards/`; finished shards stay.
        std::fs::write(scratch.join("part-00000.parquet.77-ab.partial"), b"half").unwrap();
        std::fs::write(dir.as_path().join("shards/stray"), b"?").unwrap();
        sweep(dir.as_path()).unwrap();
        let left: Vec<String> = std::fs::read_dir(dir.as_path().join("shards"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["part-00001.parquet"]);
        assert!(!scratch.exists());

        // An attempt that still runs after the sweep can create nothing: not a shard (its
        // partial file), not a run, in the scratch directory or anywhere else.
        let late = crate::layout::ShardOut::create_attempt(dir.as_path(), &scratch, 0, "88-cd");
        assert!(late.is_err());
        let secret = cg_proof::member_key::MemberKeySecret::from_seed(&[7u8; 32]).unwrap();
        assert!(crate::key_run::write(&scratch, 0, "88-cd", &secret, "ds", &[1]).is_err());
        assert!(!scratch.exists());
        assert_eq!(
            files_under(root.path()),
            [".ds-1.partial-7/shards/part-00001.parquet"]
        );
    }

    #[test]
    fn member_keys_come_from_the_runs_where_executors_wrote_them_and_from_here_elsewhere() {
        let dir = cg_test_support::tempdir();
        let secret = cg_proof::member_key::MemberKeySecret::from_seed(&[7u8; 32]).unwrap();
        let (key, shards) = (b"k".as_slice(), 4);
        let members: Vec<i64> = (1..=40).collect();
        let with_shards: Vec<(i64, u32)> = members
            .iter()
            .map(|&m| (m, keyed_shard(key, m, shards)))
            .collect();
        let of = |s: u32| -> Vec<i64> {
            members
                .iter()
                .copied()
                .filter(|m| keyed_shard(key, *m, shards) == s)
                .collect()
        };
        // Task a wrote shards 0 and 1 and their keys; task b wrote shards 2 and 3 without keys
        // (its executor holds no secret).
        let a_members: Vec<i64> = of(0).into_iter().chain(of(1)).collect();
        let run = crate::key_run::write(dir.path(), 0, "a", &secret, "ds", &a_members).unwrap();
        let items = vec![
            shard("a", 0, "x0"),
            shard("a", 1, "x1"),
            run.clone(),
            shard("b", 2, "x2"),
            shard("b", 3, "x3"),
        ];
        let out = dir.path().join("members.commitment");
        let (written, from_executors) =
            write_member_keys(dir.path(), &items, &with_shards, &secret, "ds", &out).unwrap();
        assert_eq!(from_executors, a_members.len() as u64);
        // The keys of every member, each once: the commitment made from all of them in memory.
        let held = cg_proof::commitment::Commitment::from_keys(secret.member_keys("ds", &members))
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), held.encode());
        assert_eq!(written.root, held.root());
        assert_eq!(written.included, members.len() as u64);
        // Without any executor's keys, the client derives them all, to the same file.
        let items = vec![
            shard("a", 0, "x0"),
            shard("a", 1, "x1"),
            shard("b", 2, "x2"),
            shard("b", 3, "x3"),
        ];
        let alone = dir.path().join("alone.commitment");
        let (written, from_executors) =
            write_member_keys(dir.path(), &items, &with_shards, &secret, "ds", &alone).unwrap();
        assert_eq!(from_executors, 0);
        assert_eq!(std::fs::read(&alone).unwrap(), held.encode());
        assert_eq!(written.root, held.root());

        // A run that misses a member of its shards, or holds one of another shard, fails.
        for wrong in [
            a_members[1..].to_vec(),
            a_members
                .iter()
                .copied()
                .chain(of(2).into_iter().take(1))
                .collect(),
        ] {
            let dir = cg_test_support::tempdir();
            let run = crate::key_run::write(dir.path(), 0, "a", &secret, "ds", &wrong).unwrap();
            let items = vec![shard("a", 0, "x0"), shard("a", 1, "x1"), run];
            let out = dir.path().join("members.commitment");
            assert!(
                write_member_keys(dir.path(), &items, &with_shards, &secret, "ds", &out).is_err()
            );
        }
        // Keys derived with another secret fail the spot check.
        let other = cg_proof::member_key::MemberKeySecret::from_seed(&[8u8; 32]).unwrap();
        let dir = cg_test_support::tempdir();
        let run = crate::key_run::write(dir.path(), 0, "a", &other, "ds", &a_members).unwrap();
        let items = vec![shard("a", 0, "x0"), shard("a", 1, "x1"), run];
        let out = dir.path().join("members.commitment");
        let err = write_member_keys(dir.path(), &items, &with_shards, &secret, "ds", &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another member key"), "{err}");
    }

    #[test]
    fn the_sweep_removes_key_runs_too() {
        let root = cg_test_support::tempdir();
        let dir = root.path().join(".ds-1.partial-7");
        let scratch = scratch_dir(&dir);
        std::fs::create_dir_all(&scratch).unwrap();
        let secret = cg_proof::member_key::MemberKeySecret::from_seed(&[7u8; 32]).unwrap();
        crate::key_run::write(&scratch, 0, "a", &secret, "ds", &[1, 2]).unwrap();
        sweep(&dir).unwrap();
        assert!(!scratch.exists());
        assert!(files_under(root.path()).is_empty());
    }

    /// Every file under `root`, relative, sorted.
    fn files_under(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}
