//! # cg-ledger — the consent ledger
//!
//! The system of record for who agreed to what, where and when. Consent events are immutable
//! and totally ordered (`seq`); the state of a member for a purpose at any instant is the fold of
//! the events up to it, never rewritten afterwards (GDPR Art 7(3)). One [`Store`] trait, two
//! backends, one conformance suite:
//!
//! - **SQLite** (embedded default): a file, WAL, `synchronous=FULL` — an acknowledged write
//!   survives a crash or power loss;
//! - **PostgreSQL** (production): `postgres://` URLs.
//!
//! Both keep member facts for the online check (country, residence history, birth date, closure),
//! notices and erasure requests; both refuse `UPDATE`/`DELETE` on events with a trigger.
//!
//! ```no_run
//! use cg_ledger::{open, NewEvent};
//! use cg_model::{MemberId, Purpose, Timestamp};
//! let mut store = open("sqlite:ledger.db").unwrap();
//! let at = Timestamp::parse("2025-01-10").unwrap();
//! store.append(&[NewEvent::new(MemberId(1), Purpose::genai_training(), false, at)]).unwrap();
//! let (state, _) = store.state_at(MemberId(1), &Purpose::genai_training(), at).unwrap();
//! assert_eq!(state.granted(true), Some(false));
//! ```

#![deny(missing_docs)]

mod import;
pub mod log;
mod model;
mod pg;
pub mod receipts;
mod sqlite;
mod threaded;
pub mod tokens;

pub use import::{ImportReport, import_file, import_file_with, table_of};
pub use model::{
    Erasure, LedgerError, LedgerFacts, LedgerMember, MemberFacts, MemberRecord, NewEvent, Notice,
    PolicyActivation, Record, Residence, SnapshotRow, SnapshotTotals, Stats, StoredEvent,
    fold_stored,
};
pub use pg::PgStore;
pub use sqlite::SqliteStore;
pub use threaded::{ThreadedStore, open_threaded};

use cg_model::progress::Progress;
use cg_model::{ConsentState, MemberId, Purpose, Timestamp};
use cg_proof::Hash;
pub use log::{LogEntry, SaltedEvent, StoredCheckpoint};

/// A consent store. Every method is one transaction: it happens entirely or not at all.
pub trait Store: Send {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Whether the connection is known to be gone (a PostgreSQL session that was terminated or
    /// lost): a long-lived holder opens a new one instead of failing every call. An embedded
    /// store is never broken this way.
    fn is_broken(&mut self) -> bool {
        false
    }

    /// Appends events atomically. An event whose `event_id` is already stored with the same
    /// content is not stored again (idempotent retry); with different content it is a conflict
    /// and nothing is written.
    fn append(&mut self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LedgerError>;

    /// Appends events the service records *now*: like [`Store::append`], but in the same
    /// transaction each event's time is raised to 1 µs after its member's latest recorded event
    /// when the clock says otherwise, so times are monotonic per member (a server clock that
    /// steps back cannot let an older grant beat a newer opt-out). Imports keep their times.
    fn append_stamped(&mut self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LedgerError>;

    /// Imports records in one transaction; any error rolls everything back.
    fn import(
        &mut self,
        records: &mut dyn Iterator<Item = Result<Record, LedgerError>>,
        progress: &dyn Progress,
    ) -> Result<ImportReport, LedgerError>;

    /// Every event of a member, in `seq` order.
    fn history(&mut self, member: MemberId) -> Result<Vec<StoredEvent>, LedgerError>;

    /// What is known about a member (country, residence history, birth date, closure, notices,
    /// erasures), if anything.
    fn member(&mut self, member: MemberId) -> Result<Option<MemberFacts>, LedgerError>;

    /// Calls `f` for every member with at least one event up to `as_of`, in member order, with
    /// their state for `purpose` as of `as_of` (members with no row have no event at all).
    fn snapshot(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError>;

    /// Every member fact the ledger holds as of `as_of` for `purpose` — members rows,
    /// residence history, notices, erasure requests and the consent fold — read in one
    /// snapshot (one read transaction), so no write can fall between two tables.
    fn facts_as_of(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<LedgerFacts, LedgerError>;

    /// [`Store::facts_as_of`] a member at a time: every member's [`LedgerMember`] handed to
    /// `f` in ascending id order, read in one snapshot, the same facts `facts_as_of` holds
    /// for them — but the backends read each table in member order and hold one member's rows
    /// at a time, so a caller that does not keep every member (a distributed build's client)
    /// does not hold them all. Returns the snapshot's counts. The default reads
    /// `facts_as_of` whole and hands its members out.
    fn facts_by_member(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
        f: &mut dyn FnMut(i64, LedgerMember) -> Result<(), LedgerError>,
    ) -> Result<SnapshotTotals, LedgerError> {
        let facts = self.facts_as_of(purpose, as_of)?;
        let members = facts.members.len() as u64;
        for (id, member) in facts.members {
            f(id, member)?;
        }
        Ok(SnapshotTotals {
            members,
            ignored_purposes: facts.ignored_purposes,
            events: facts.events,
        })
    }

    /// One member's facts as of `as_of` for `purpose`, or `None` when the ledger has no row
    /// for the member (an unknown member). Folded exactly as [`Store::facts_as_of`] folds.
    fn member_facts(
        &mut self,
        member: MemberId,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Option<cg_model::MemberFacts>, LedgerError> {
        let Some(raw) = self.member(member)? else {
            return Ok(None);
        };
        if raw.record.is_none() {
            return Ok(None);
        }
        let events = self.deciding_events(member, purpose, as_of)?;
        Ok(model::fold_member(member, raw, events, purpose, as_of))
    }

    /// [`Store::member_facts`] of many members, in their order (an unknown member `None`, a
    /// member named twice answered twice): the same answers, read together where a query costs
    /// a round trip (PostgreSQL reads a batch's members in one snapshot with five queries,
    /// where one by one took five each). The default asks one member at a time.
    fn members_facts(
        &mut self,
        members: &[MemberId],
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Vec<Option<cg_model::MemberFacts>>, LedgerError> {
        members
            .iter()
            .map(|m| self.member_facts(*m, purpose, as_of))
            .collect()
    }

    /// The events of `member` that decide its consent fold for `purpose` as of `as_of`, in
    /// `seq` order: folding them gives exactly what folding the whole history gives. At most
    /// three: the latest explicit choice for the purpose, the latest GPC opt-out signal for it
    /// (both by `(ts, seq)`), and one grant for another purpose (the other-purpose flag). A
    /// check then reads a few rows, not a member's whole history. The default reads the
    /// history.
    fn deciding_events(
        &mut self,
        member: MemberId,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        let _ = purpose;
        Ok(self
            .history(member)?
            .into_iter()
            .filter(|e| e.event.ts <= as_of)
            .collect())
    }

    /// Records that a policy was put in force and appends its entry to the transparency log,
    /// in one transaction; returns the entry's log index.
    fn policy_activation_record(&mut self, a: &PolicyActivation) -> Result<u64, LedgerError>;

    /// The latest policy activation, if any.
    fn policy_activation_latest(&mut self) -> Result<Option<PolicyActivation>, LedgerError>;

    /// Row counts.
    fn stats(&mut self) -> Result<Stats, LedgerError>;

    /// Appends a dataset manifest's entry to the log (idempotent: the same dataset and digest
    /// return the existing index).
    fn log_append_manifest(&mut self, dataset_id: &str, sha256: &Hash) -> Result<u64, LedgerError>;

    /// Calls `f` for every log entry from index `from` on, in index order, with the event it
    /// commits to.
    fn log_scan(
        &mut self,
        from: u64,
        f: &mut dyn FnMut(LogEntry) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError>;

    /// Every stored leaf hash, in index order.
    fn log_leaf_hashes(&mut self) -> Result<Vec<Hash>, LedgerError>;

    /// Consent events without a log entry (0 in a sound ledger).
    fn log_unlogged_events(&mut self) -> Result<u64, LedgerError>;

    /// The log index of the event with this `seq`.
    fn log_index_of_event(&mut self, seq: i64) -> Result<Option<u64>, LedgerError>;

    /// The log index and digest of every manifest entry of a dataset, oldest first (a dataset
    /// published twice, e.g. by an embedded and a distributed build, has one entry per
    /// distinct manifest).
    fn log_manifest_entries(&mut self, dataset_id: &str) -> Result<Vec<(u64, Hash)>, LedgerError>;

    /// The stored event with this `seq` and its salt.
    fn event_by_seq(&mut self, seq: i64) -> Result<Option<SaltedEvent>, LedgerError>;

    /// Stores a signed checkpoint (a second one at the same size is ignored).
    fn log_add_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), LedgerError>;

    /// Every stored checkpoint, by size.
    fn log_checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, LedgerError>;

    /// Stores a new API token record.
    fn token_insert(&mut self, t: &tokens::TokenRecord) -> Result<(), LedgerError>;

    /// The token with this id.
    fn token_get(&mut self, id: &str) -> Result<Option<tokens::TokenRecord>, LedgerError>;

    /// Revokes a token; false if there is no such token (or it was already revoked).
    fn token_revoke(&mut self, id: &str, at: Timestamp) -> Result<bool, LedgerError>;

    /// Every token, newest first.
    fn tokens(&mut self) -> Result<Vec<tokens::TokenRecord>, LedgerError>;

    /// The member's state for `purpose` at `at`, and the stored events that decided it
    /// (explicit choice, GPC signal).
    fn state_at(
        &mut self,
        member: MemberId,
        purpose: &Purpose,
        at: Timestamp,
    ) -> Result<(ConsentState, Vec<StoredEvent>), LedgerError> {
        let events: Vec<StoredEvent> = self
            .history(member)?
            .into_iter()
            .filter(|e| &e.event.purpose == purpose)
            .collect();
        Ok(fold_stored(&events, at))
    }
}

/// The default embedded store: `$CG_DATA_DIR/ledger.sqlite`, or `.consentgate/ledger.sqlite`.
pub fn default_url() -> String {
    let dir = std::env::var("CG_DATA_DIR").unwrap_or_else(|_| ".consentgate".to_owned());
    format!("sqlite:{dir}/ledger.sqlite")
}

/// The file of an embedded ledger's URL (`sqlite:PATH`, `sqlite://PATH` or a plain path);
/// `None` for PostgreSQL (`postgres://…`, `postgresql://…`).
fn sqlite_path(url: &str) -> Option<&std::path::Path> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    Some(std::path::Path::new(path))
}

/// Opens an existing store for reading: like [`open`], but a SQLite file that does not exist is
/// an error rather than a new, empty ledger (an empty ledger would read as "nobody ever chose
/// anything" — for a gate, a fail-open answer).
pub fn open_existing(url: &str) -> Result<Box<dyn Store>, LedgerError> {
    if let Some(path) = sqlite_path(url)
        && !path.exists()
    {
        return Err(LedgerError::Database {
            backend: "sqlite",
            message: format!("no ledger at `{}`", path.display()),
        });
    }
    open(url)
}

/// A connection for point reads on the caller's own thread, where the backend allows it
/// cheaply: an existing embedded (SQLite) ledger opened read-only with a busy wait of `busy` at
/// most ([`SqliteStore::open_reader`]). `None` for PostgreSQL, whose calls are network round
/// trips that belong on a pool thread.
pub fn open_reader(
    url: &str,
    busy: std::time::Duration,
) -> Option<Result<Box<dyn Store>, LedgerError>> {
    let path = sqlite_path(url)?;
    Some(SqliteStore::open_reader(path, busy).map(|s| Box::new(s) as Box<dyn Store>))
}

/// Opens a store by URL: `postgres://…` / `postgresql://…`, `sqlite:PATH`, or a plain path
/// (SQLite), creating an embedded ledger if missing. Migrations are applied on open.
pub fn open(url: &str) -> Result<Box<dyn Store>, LedgerError> {
    match sqlite_path(url) {
        Some(path) => Ok(Box::new(SqliteStore::open(path)?)),
        None => Ok(Box::new(PgStore::connect(url)?)),
    }
}
