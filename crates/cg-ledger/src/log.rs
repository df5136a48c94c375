//! The transparency log inside the ledger: an RFC 6962 Merkle log of every consent event and
//! every published dataset manifest, stored in the same database as the events and appended in
//! the same transaction (an event and its log entry exist together or not at all).
//!
//! Entries are the [`cg_proof::leaves::Entry`] encodings: a consent event's entry is a salted
//! commitment to the event ([`canonical_event`]), so the log can be served as public tiles
//! without saying who chose what. Checkpoints are C2SP signed notes.
//!
//! This module holds what is the same for every backend: the canonical event form,
//! checkpointing, full verification, proofs and tile export over any [`Store`].

use std::path::Path;

use cg_model::Timestamp;
use cg_proof::leaves::Entry;
use cg_proof::note::{Checkpoint, NoteSigner, NoteVerifier};
use cg_proof::tlog_proof::LogProof;
use cg_proof::{
    CompactRange, Hash, consistency_proof, hex, inclusion_proof, root, verify_consistency,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Store;
use crate::model::{LedgerError, StoredEvent};

/// A stored event and the salt its log entry's commitment uses (`None` for events logged
/// before salts existed).
pub type SaltedEvent = (StoredEvent, Option<Vec<u8>>);

/// One stored log entry, with the consent event it commits to (for event entries).
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// 0-based index.
    pub index: u64,
    /// The entry's bytes.
    pub data: Vec<u8>,
    /// The stored leaf hash.
    pub hash: Hash,
    /// For an event entry: the `seq` it was written for.
    pub event_seq: Option<i64>,
    /// That event as stored now, and its salt (if the event row still exists).
    pub event: Option<SaltedEvent>,
}

/// A stored signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash (hex in JSON).
    #[serde(serialize_with = "ser_hex")]
    pub root: Hash,
    /// The signed note.
    pub note: String,
    /// When it was signed.
    pub created_at: Timestamp,
}

fn ser_hex<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(h))
}

/// The canonical form of a stored event that its log entry commits to: JSON with a fixed field
/// order and the event's salt (hex; `null` for events logged before salts existed).
pub fn canonical_event(e: &StoredEvent, salt: Option<&[u8]>) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        seq: i64,
        event_id: Option<i64>,
        member_id: i64,
        purpose: &'a str,
        granted: bool,
        ts: String,
        source: &'a str,
        notice_version: Option<&'a str>,
        actor: Option<&'a str>,
        metadata: Option<&'a serde_json::Value>,
        recorded_at: String,
        salt: Option<String>,
    }
    let c = Canonical {
        seq: e.seq,
        event_id: e.event.event_id.map(|i| i.0),
        member_id: e.event.member_id.0,
        purpose: e.event.purpose.as_str(),
        granted: e.event.granted,
        ts: e.event.ts.to_string(),
        source: e.event.source.as_str(),
        notice_version: e.event.notice_version.as_deref(),
        actor: e.actor.as_deref(),
        metadata: e.metadata.as_ref(),
        recorded_at: e.recorded_at.to_string(),
        salt: salt.map(hex),
    };
    // Serialising plain fields cannot fail.
    serde_json::to_string(&c).unwrap_or_default()
}

/// The log entry of a stored event.
pub fn event_entry(e: &StoredEvent, salt: Option<&[u8]>) -> Entry {
    Entry::Event {
        seq: e.seq,
        commitment: Sha256::digest(canonical_event(e, salt).as_bytes()).into(),
    }
}

/// Per-transaction salt source: one random seed from the OS, then SHA-256(seed ‖ counter) —
/// one system call per transaction rather than per event.
#[derive(Debug)]
pub(crate) struct Salts {
    seed: [u8; 32],
    counter: u64,
}

impl Salts {
    pub(crate) fn new() -> Result<Salts, LedgerError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| LedgerError::Database {
            backend: "os",
            message: format!("no randomness for event salts: {e}"),
        })?;
        Ok(Salts { seed, counter: 0 })
    }

    pub(crate) fn next(&mut self) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        self.counter += 1;
        let d = h.finalize();
        let mut s = [0u8; 16];
        s.copy_from_slice(&d[..16]);
        s
    }
}

/// Signs a checkpoint of the whole log now (or returns the latest one if the log has not grown).
pub fn checkpoint(
    store: &mut dyn Store,
    signer: &NoteSigner,
) -> Result<StoredCheckpoint, LedgerError> {
    let hashes = store.log_leaf_hashes()?;
    let size = hashes.len() as u64;
    if let Some(last) = store.log_checkpoints()?.pop().filter(|c| c.size == size) {
        return Ok(last);
    }
    let cp = Checkpoint {
        origin: signer.name().to_owned(),
        size,
        root: root(&hashes),
        extensions: vec![],
    };
    let stored = StoredCheckpoint {
        size,
        root: cp.root,
        note: signer.sign(&cp.body()),
        created_at: Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()),
    };
    store.log_add_checkpoint(&stored)?;
    Ok(stored)
}

/// What `log verify` found in a sound log.
#[derive(Clone, Debug, Serialize)]
pub struct LogReport {
    /// Entries.
    pub size: u64,
    /// Consent event entries.
    pub events: u64,
    /// Manifest entries.
    pub manifests: u64,
    /// Policy activation entries.
    pub policy_activations: u64,
    /// Checkpoints, all verified.
    pub checkpoints: u64,
    /// The latest checkpoint's size, if any.
    pub latest_checkpoint_size: Option<u64>,
    /// Root of the whole log (hex).
    pub root: String,
}

/// Recomputes everything: every entry's hash from its bytes, every event entry from the event
/// row, that every event has an entry, every checkpoint's signature, origin and root, and the
/// consistency of each checkpoint with the next. All problems are reported, each naming what.
pub fn verify(store: &mut dyn Store, vkey: &str) -> Result<LogReport, LedgerError> {
    let verifier = NoteVerifier::parse(vkey).map_err(|e| LedgerError::Log(e.to_string()))?;
    let mut problems: Vec<String> = Vec::new();
    let mut hashes: Vec<Hash> = Vec::new();
    let (mut events, mut manifests, mut policy_activations) = (0u64, 0u64, 0u64);
    // Checkpoints first: the log only grows, so every checkpoint read now is covered by the
    // entries scanned next, even while events are being appended (read the other way round, a
    // checkpoint signed between the two reads looks like a checkpoint beyond the log).
    let checkpoints = store.log_checkpoints()?;
    store.log_scan(0, &mut |e: LogEntry| {
        let i = e.index;
        if i != hashes.len() as u64 {
            problems.push(format!("entry {i}: expected index {}", hashes.len()));
        }
        let computed = cg_proof::leaf_hash(&e.data);
        if computed != e.hash {
            problems.push(format!("entry {i}: the stored leaf hash does not match the entry's bytes"));
        }
        match Entry::decode(&e.data) {
            Some(Entry::Event { seq, .. }) => {
                events += 1;
                match (&e.event, e.event_seq) {
                    (Some((ev, salt)), Some(s)) if s == seq => {
                        if event_entry(ev, salt.as_deref()).encode() != e.data {
                            problems.push(format!(
                                "entry {i}: does not match consent event seq {seq} as stored (the event or its entry was altered)"
                            ));
                        }
                    }
                    _ => problems.push(format!("entry {i}: consent event seq {seq} is missing")),
                }
            }
            Some(Entry::Manifest { .. }) => manifests += 1,
            Some(Entry::PolicyActivation { .. }) => policy_activations += 1,
            None => problems.push(format!("entry {i}: not a valid consentgate log entry")),
        }
        hashes.push(computed);
        Ok(())
    })?;
    let unlogged = store.log_unlogged_events()?;
    if unlogged > 0 {
        problems.push(format!("{unlogged} consent event(s) have no log entry"));
    }
    // The root of every checkpointed prefix in one pass (O(entries + checkpoints · log
    // entries), not a full root per checkpoint).
    let mut prefix_roots: std::collections::BTreeMap<u64, Hash> = checkpoints
        .iter()
        .filter(|c| c.size <= hashes.len() as u64)
        .map(|c| (c.size, [0u8; 32]))
        .collect();
    {
        let mut range = CompactRange::new();
        if let Some(r) = prefix_roots.get_mut(&0) {
            *r = root(&[]);
        }
        for (i, h) in hashes.iter().enumerate() {
            range.push(*h);
            if let Some(r) = prefix_roots.get_mut(&(i as u64 + 1)) {
                *r = range.root();
            }
        }
    }
    let mut previous: Option<&StoredCheckpoint> = None;
    for cp in &checkpoints {
        let what = format!("checkpoint at size {}", cp.size);
        let body = match cg_proof::note::open(&cp.note, vkey) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        let parsed = match Checkpoint::parse(&body) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        if parsed.origin != verifier.name() {
            problems.push(format!(
                "{what}: origin `{}` is not this log's `{}`",
                parsed.origin,
                verifier.name()
            ));
        }
        if parsed.size != cp.size || parsed.root != cp.root {
            problems.push(format!(
                "{what}: the signed size or root differs from the stored one"
            ));
        }
        if cp.size > hashes.len() as u64 {
            problems.push(format!("{what}: the log has only {} entries", hashes.len()));
            continue;
        }
        let prefix_ok = prefix_roots.get(&cp.size) == Some(&parsed.root);
        if !prefix_ok {
            problems.push(format!(
                "{what}: the signed root is not the root of the stored entries"
            ));
        }
        // Two checkpoints whose roots are both roots of prefixes of the same stored entries are
        // consistent by construction; prove it explicitly only when a root is already wrong.
        if let Some(prev) = previous.filter(|p| p.size > 0 && !prefix_ok) {
            let ok = consistency_proof(prev.size, &hashes[..cp.size as usize])
                .ok()
                .is_some_and(|proof| {
                    verify_consistency(prev.size, cp.size, &prev.root, &parsed.root, &proof).is_ok()
                });
            if !ok {
                problems.push(format!(
                    "{what}: not consistent with the checkpoint at size {}",
                    prev.size
                ));
            }
        }
        previous = Some(cp);
    }
    if !problems.is_empty() {
        return Err(LedgerError::LogInvalid { problems });
    }
    let mut range = CompactRange::new();
    for h in &hashes {
        range.push(*h);
    }
    Ok(LogReport {
        size: hashes.len() as u64,
        events,
        manifests,
        policy_activations,
        checkpoints: checkpoints.len() as u64,
        latest_checkpoint_size: checkpoints.last().map(|c| c.size),
        root: hex(&range.root()),
    })
}

/// An inclusion proof of entry `index` against the latest checkpoint.
pub fn prove(store: &mut dyn Store, index: u64) -> Result<LogProof, LedgerError> {
    let latest = store.log_checkpoints()?.pop().ok_or_else(|| {
        LedgerError::Log("the log has no checkpoint yet (run `consentgate log checkpoint`)".into())
    })?;
    if index >= latest.size {
        return Err(LedgerError::Log(format!(
            "entry {index} is not covered by the latest checkpoint (size {}); run `consentgate log checkpoint`",
            latest.size
        )));
    }
    let hashes = store.log_leaf_hashes()?;
    let covered = hashes.get(..latest.size as usize).ok_or_else(|| {
        LedgerError::Log(format!(
            "the checkpoint at size {} is beyond the stored log",
            latest.size
        ))
    })?;
    let path = inclusion_proof(index, covered).map_err(|e| LedgerError::Log(e.to_string()))?;
    Ok(LogProof {
        extra: None,
        index,
        path,
        checkpoint: latest.note,
    })
}

/// What `export-tiles` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct TilesReport {
    /// The checkpoint's tree size (what the tiles cover).
    pub size: u64,
    /// Hash tiles written.
    pub tiles: u64,
    /// Entry bundles written.
    pub bundles: u64,
}

/// Writes C2SP `tlog-tiles` for the latest checkpoint into `dir`: `checkpoint`, `tile/<L>/<N>`
/// and `tile/entries/<N>` (partial tiles as `.p/<W>`).
pub fn export_tiles(store: &mut dyn Store, dir: &Path) -> Result<TilesReport, LedgerError> {
    let latest = store.log_checkpoints()?.pop().ok_or_else(|| {
        LedgerError::Log("the log has no checkpoint yet (run `consentgate log checkpoint`)".into())
    })?;
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut hashes: Vec<Hash> = Vec::new();
    store.log_scan(0, &mut |e: LogEntry| {
        if e.index < latest.size {
            hashes.push(e.hash);
            entries.push(e.data);
        }
        Ok(())
    })?;
    let io = |p: &Path, e: std::io::Error| {
        LedgerError::Log(format!("cannot write `{}`: {e}", p.display()))
    };
    let write = |rel: &str, bytes: &[u8]| -> Result<(), LedgerError> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    };
    let tiles = cg_proof::tiles::hash_tiles(&hashes);
    let bundles = cg_proof::tiles::entry_bundles(&entries);
    for (rel, bytes) in tiles.iter().chain(bundles.iter()) {
        write(rel, bytes)?;
    }
    // The checkpoint last: a reader never sees a checkpoint whose tiles are missing.
    write("checkpoint", latest.note.as_bytes())?;
    Ok(TilesReport {
        size: latest.size,
        tiles: tiles.len() as u64,
        bundles: bundles.len() as u64,
    })
}
