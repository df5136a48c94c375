//! The ledger's records and errors.

use cg_model::consent::{ConsentChoice, ConsentEvent, ConsentSource};
use cg_model::{ConsentState, MemberId, Purpose, Timestamp};
use serde::Serialize;
use time::Date;

/// Errors of the ledger. Every variant says what and where.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database could not be opened, read or written.
    #[error("{backend}: {message}")]
    Database {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The driver's message.
        message: String,
    },
    /// An event id was reused for a different event.
    #[error("event id {event_id} is already recorded with different content; nothing was written")]
    Conflict {
        /// The client-supplied id.
        event_id: i64,
    },
    /// An input file violates the input contract.
    #[error(transparent)]
    Input(#[from] cg_io::ReadError),
    /// An input row has a bad value (e.g. an unknown purpose).
    #[error("`{file}`: row {row}, column `{column}`: {message}")]
    BadRow {
        /// The file.
        file: String,
        /// 1-based row.
        row: u64,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A transparency log operation cannot be done (no checkpoint yet, unknown entry, ...).
    #[error("log: {0}")]
    Log(String),
    /// `log verify` found problems; each names the entry or checkpoint.
    #[error("the log does not verify:\n  - {}", problems.join("\n  - "))]
    LogInvalid {
        /// What is wrong, one line each.
        problems: Vec<String>,
    },
    /// A file that is not one of the importable tables.
    #[error("`{file}`: cannot tell which table this is ({message})")]
    UnknownTable {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
}

impl LedgerError {
    pub(crate) fn sqlite(e: rusqlite::Error) -> LedgerError {
        LedgerError::Database {
            backend: "sqlite",
            message: e.to_string(),
        }
    }

    pub(crate) fn pg(e: postgres::Error) -> LedgerError {
        let message = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        LedgerError::Database {
            backend: "postgres",
            message,
        }
    }
}

/// An event to append: the input contract's fields plus provenance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NewEvent {
    /// The consent event.
    #[serde(flatten)]
    pub event: ConsentEvent,
    /// Who recorded it (a service name, `member`, `import`), if known.
    pub actor: Option<String>,
    /// Proof-of-consent metadata (ISO/IEC TS 27560 / Kantara fields that apply: collection
    /// method, language, policy URL, jurisdiction at capture, GPC provenance, ...), as JSON.
    pub metadata: Option<serde_json::Value>,
}

impl NewEvent {
    /// A settings event without an id or metadata.
    pub fn new(member: MemberId, purpose: Purpose, granted: bool, ts: Timestamp) -> NewEvent {
        NewEvent {
            event: ConsentEvent {
                event_id: None,
                member_id: member,
                purpose,
                granted,
                ts,
                source: ConsentSource::Settings,
                notice_version: None,
            },
            actor: None,
            metadata: None,
        }
    }

    /// Whether two events are the same fact (for idempotent retries).
    pub(crate) fn same_fact(&self, other: &NewEvent) -> bool {
        self.event == other.event && self.actor == other.actor && self.metadata == other.metadata
    }
}

/// A stored event: the event, its position in the total order, and when it was recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredEvent {
    /// Position in the ledger's total order (1, 2, ...).
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub new: NewEvent,
    /// When the ledger recorded it.
    pub recorded_at: Timestamp,
}

impl std::ops::Deref for StoredEvent {
    type Target = NewEvent;
    fn deref(&self) -> &NewEvent {
        &self.new
    }
}

/// Folds stored events (one member and purpose, in `seq` order) as of `at`; returns the state
/// and the events that decided it.
pub fn fold_stored(events: &[StoredEvent], at: Timestamp) -> (ConsentState, Vec<StoredEvent>) {
    let mut relevant: Vec<&StoredEvent> = events.iter().filter(|e| e.event.ts <= at).collect();
    relevant.sort_by_key(|e| (e.event.ts, e.seq));
    let mut state = ConsentState::default();
    let (mut explicit, mut gpc): (Option<&StoredEvent>, Option<&StoredEvent>) = (None, None);
    for e in relevant {
        state.apply(&e.event);
        if e.event.is_gpc_signal() {
            gpc = Some(e);
        } else if e.event.source != ConsentSource::Gpc {
            explicit = Some(e);
            gpc = None;
        }
    }
    let deciding = explicit.into_iter().chain(gpc).cloned().collect();
    (state, deciding)
}

/// A member's facts as the members input carries them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberRecord {
    /// Id.
    pub member_id: MemberId,
    /// Raw country code.
    pub country: Option<String>,
    /// Birth date.
    pub birth_date: Option<Date>,
    /// Sign-up.
    pub created_at: Option<Timestamp>,
    /// Closure.
    pub closed_at: Option<Timestamp>,
    /// Display name.
    pub display_name: Option<String>,
    /// Handle.
    pub handle: Option<String>,
}

/// A residence history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Residence {
    /// Member.
    pub member_id: MemberId,
    /// Raw country code.
    pub country: Option<String>,
    /// From when.
    pub valid_from: Timestamp,
}

/// A notice delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Member.
    pub member_id: MemberId,
    /// Notice version.
    pub notice_version: String,
    /// When delivered.
    pub delivered_at: Timestamp,
}

/// An erasure request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// Member.
    pub member_id: MemberId,
    /// When requested.
    pub ts: Timestamp,
}

/// Everything known about one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberFacts {
    /// The members row, if imported.
    pub record: Option<MemberRecord>,
    /// Residence history.
    pub residences: Vec<Residence>,
    /// Notices delivered.
    pub notices: Vec<Notice>,
    /// Erasure requests.
    pub erasures: Vec<Erasure>,
}

/// One importable record.
#[derive(Clone, Debug)]
pub enum Record {
    /// A consent event.
    Event(NewEvent),
    /// A member (upserted).
    Member(MemberRecord),
    /// A residence entry.
    Residence(Residence),
    /// A notice delivery.
    Notice(Notice),
    /// An erasure request.
    Erasure(Erasure),
}

/// A member's as-of state for one purpose, as exported for builds.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotRow {
    /// Member.
    pub member_id: MemberId,
    /// The latest explicit choice for the purpose.
    pub explicit: Option<ConsentChoice>,
    /// Its `seq`.
    pub explicit_seq: Option<i64>,
    /// A GPC signal after the latest explicit choice.
    pub gpc_at: Option<Timestamp>,
    /// A grant for another purpose (and no event for this one).
    pub other_purpose_grant: bool,
}

/// Row counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Consent events.
    pub events: u64,
    /// Members.
    pub members: u64,
    /// Residence entries.
    pub residences: u64,
    /// Notices.
    pub notices: u64,
    /// Erasure requests.
    pub erasures: u64,
}

/// Folds the events of one member (all purposes, `(ts, seq)` order) for `purpose`.
pub(crate) fn snapshot_of(
    member: MemberId,
    events: &[(NewEvent, i64)],
    purpose: &Purpose,
) -> SnapshotRow {
    let mut state = ConsentState::default();
    let mut explicit_seq = None;
    let mut other = false;
    for (e, seq) in events {
        if &e.event.purpose == purpose {
            state.apply(&e.event);
            if !e.event.is_gpc_signal() && e.event.source != ConsentSource::Gpc {
                explicit_seq = Some(*seq);
            }
        } else if e.event.granted && e.event.source != ConsentSource::Gpc {
            other = true;
        }
    }
    let other_purpose_grant = other && state.explicit.is_none();
    SnapshotRow {
        member_id: member,
        explicit: state.explicit,
        explicit_seq,
        gpc_at: state.gpc_signal.map(|g| g.at),
        other_purpose_grant,
    }
}

/// Folds a stream of stored events ordered by `(member_id, ts, seq)` into one [`SnapshotRow`]
/// per member (shared by the backends' `snapshot`).
pub(crate) struct SnapshotFolder<'p> {
    purpose: &'p Purpose,
    current: Option<MemberId>,
    events: Vec<(NewEvent, i64)>,
    rows: u64,
}

impl<'p> SnapshotFolder<'p> {
    pub(crate) fn new(purpose: &'p Purpose) -> Self {
        SnapshotFolder {
            purpose,
            current: None,
            events: Vec::new(),
            rows: 0,
        }
    }

    /// Adds the next event; emits the previous member's row when the member changes.
    pub(crate) fn push(
        &mut self,
        e: StoredEvent,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        if self.current != Some(e.event.member_id) {
            self.flush(f)?;
            self.current = Some(e.event.member_id);
        }
        self.events.push((e.new, e.seq));
        Ok(())
    }

    fn flush(
        &mut self,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        if let Some(m) = self.current.take() {
            f(snapshot_of(m, &self.events, self.purpose))?;
            self.rows += 1;
        }
        self.events.clear();
        Ok(())
    }

    /// Emits the last member's row; returns the number of rows.
    pub(crate) fn finish(
        mut self,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        self.flush(f)?;
        Ok(self.rows)
    }
}
