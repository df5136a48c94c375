//! A store on its own thread, for async callers.
//!
//! The `postgres` client runs its own Tokio runtime and panics when called from a thread that is
//! already inside one (an axum handler, `spawn_blocking`). [`open_threaded`] opens the store on a
//! dedicated OS thread and returns a [`Store`] whose every call is handed to that thread and
//! waited for. Calls stay serialised, as with a mutex; callbacks (`snapshot`, `log_scan`) are
//! collected on the store's thread and replayed on the caller's.

use std::sync::mpsc;

use cg_model::progress::{NoProgress, Progress};
use cg_model::{MemberId, Purpose, Timestamp};
use cg_proof::Hash;

use crate::log::{LogEntry, SaltedEvent, StoredCheckpoint};
use crate::model::{LedgerError, MemberFacts, NewEvent, Record, SnapshotRow, Stats, StoredEvent};
use crate::tokens::TokenRecord;
use crate::{ImportReport, Store};

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// The caller's side of a store thread.
#[derive(Debug)]
pub struct ThreadedStore {
    jobs: mpsc::Sender<Job>,
    backend: &'static str,
}

fn gone() -> LedgerError {
    LedgerError::Database {
        backend: "thread",
        message: "the store thread stopped".into(),
    }
}

/// Opens `url` (as [`crate::open`] does) on a dedicated thread.
pub fn open_threaded(url: &str) -> Result<ThreadedStore, LedgerError> {
    let (jobs, rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<&'static str, LedgerError>>();
    let url = url.to_owned();
    std::thread::Builder::new()
        .name("cg-ledger-store".into())
        .spawn(move || {
            let mut store = match crate::open(&url) {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(s.backend()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            for job in rx {
                job(store.as_mut());
            }
        })
        .map_err(|e| LedgerError::Database {
            backend: "thread",
            message: format!("cannot start the store thread: {e}"),
        })?;
    let backend = ready_rx.recv().map_err(|_| gone())??;
    Ok(ThreadedStore { jobs, backend })
}

impl ThreadedStore {
    /// Runs `f` on the store's thread and waits for its result.
    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<R, LedgerError> + Send + 'static,
    ) -> Result<R, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |s: &mut dyn Store| {
                let _ = tx.send(f(s));
            }))
            .map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }
}

impl Store for ThreadedStore {
    fn backend(&self) -> &'static str {
        self.backend
    }

    fn is_broken(&mut self) -> bool {
        self.call(|s| Ok(s.is_broken())).unwrap_or(true)
    }

    fn append(&mut self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LedgerError> {
        let events = events.to_vec();
        self.call(move |s| s.append(&events))
    }

    fn append_stamped(&mut self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LedgerError> {
        let events = events.to_vec();
        self.call(move |s| s.append_stamped(&events))
    }

    fn import(
        &mut self,
        records: &mut dyn Iterator<Item = Result<Record, LedgerError>>,
        progress: &dyn Progress,
    ) -> Result<ImportReport, LedgerError> {
        let records: Vec<Record> = records.collect::<Result<_, _>>()?;
        let n = records.len() as u64;
        let report = self.call(move |s| s.import(&mut records.into_iter().map(Ok), &NoProgress))?;
        progress.advance(n);
        Ok(report)
    }

    fn history(&mut self, member: MemberId) -> Result<Vec<StoredEvent>, LedgerError> {
        self.call(move |s| s.history(member))
    }

    fn deciding_events(
        &mut self,
        member: MemberId,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        let purpose = purpose.clone();
        self.call(move |s| s.deciding_events(member, &purpose, as_of))
    }

    fn member(&mut self, member: MemberId) -> Result<Option<MemberFacts>, LedgerError> {
        self.call(move |s| s.member(member))
    }

    fn snapshot(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        let purpose = purpose.clone();
        let rows = self.call(move |s| {
            let mut rows = Vec::new();
            s.snapshot(&purpose, as_of, &mut |r| {
                rows.push(r);
                Ok(())
            })?;
            Ok(rows)
        })?;
        let n = rows.len() as u64;
        for r in rows {
            f(r)?;
        }
        Ok(n)
    }

    fn stats(&mut self) -> Result<Stats, LedgerError> {
        self.call(|s| s.stats())
    }

    fn policy_activation_record(
        &mut self,
        a: &crate::PolicyActivation,
    ) -> Result<u64, LedgerError> {
        let a = a.clone();
        self.call(move |s| s.policy_activation_record(&a))
    }

    fn policy_activation_latest(&mut self) -> Result<Option<crate::PolicyActivation>, LedgerError> {
        self.call(|s| s.policy_activation_latest())
    }

    fn facts_as_of(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<crate::LedgerFacts, LedgerError> {
        let purpose = purpose.clone();
        self.call(move |s| s.facts_as_of(&purpose, as_of))
    }

    fn member_facts(
        &mut self,
        member: MemberId,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Option<cg_model::MemberFacts>, LedgerError> {
        let purpose = purpose.clone();
        self.call(move |s| s.member_facts(member, &purpose, as_of))
    }

    fn log_append_manifest(&mut self, dataset_id: &str, sha256: &Hash) -> Result<u64, LedgerError> {
        let (id, sha) = (dataset_id.to_owned(), *sha256);
        self.call(move |s| s.log_append_manifest(&id, &sha))
    }

    fn log_scan(
        &mut self,
        from: u64,
        f: &mut dyn FnMut(LogEntry) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let entries = self.call(move |s| {
            let mut entries = Vec::new();
            s.log_scan(from, &mut |e| {
                entries.push(e);
                Ok(())
            })?;
            Ok(entries)
        })?;
        for e in entries {
            f(e)?;
        }
        Ok(())
    }

    fn log_leaf_hashes(&mut self) -> Result<Vec<Hash>, LedgerError> {
        self.call(|s| s.log_leaf_hashes())
    }

    fn log_unlogged_events(&mut self) -> Result<u64, LedgerError> {
        self.call(|s| s.log_unlogged_events())
    }

    fn log_index_of_event(&mut self, seq: i64) -> Result<Option<u64>, LedgerError> {
        self.call(move |s| s.log_index_of_event(seq))
    }

    fn log_manifest_entries(&mut self, dataset_id: &str) -> Result<Vec<(u64, Hash)>, LedgerError> {
        let id = dataset_id.to_owned();
        self.call(move |s| s.log_manifest_entries(&id))
    }

    fn event_by_seq(&mut self, seq: i64) -> Result<Option<SaltedEvent>, LedgerError> {
        self.call(move |s| s.event_by_seq(seq))
    }

    fn log_add_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), LedgerError> {
        let cp = cp.clone();
        self.call(move |s| s.log_add_checkpoint(&cp))
    }

    fn log_checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, LedgerError> {
        self.call(|s| s.log_checkpoints())
    }

    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), LedgerError> {
        let t = t.clone();
        self.call(move |s| s.token_insert(&t))
    }

    fn token_get(&mut self, id: &str) -> Result<Option<TokenRecord>, LedgerError> {
        let id = id.to_owned();
        self.call(move |s| s.token_get(&id))
    }

    fn token_revoke(&mut self, id: &str, at: Timestamp) -> Result<bool, LedgerError> {
        let id = id.to_owned();
        self.call(move |s| s.token_revoke(&id, at))
    }

    fn tokens(&mut self) -> Result<Vec<TokenRecord>, LedgerError> {
        self.call(|s| s.tokens())
    }
}
