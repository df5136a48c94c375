//! The embedded backend: one SQLite file, WAL, `synchronous=FULL`.

use std::path::Path;

use cg_model::consent::{ConsentEvent, ConsentSource};
use cg_model::instant::{date_to_days, days_to_date};
use cg_model::progress::Progress;
use cg_model::{EventId, MemberId, Purpose, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::Store;
use crate::import::ImportReport;
use crate::log::{LogEntry, SaltedEvent, Salts, StoredCheckpoint, event_entry};
use crate::model::{
    Erasure, FactRow, FactsBuilder, LedgerError, LedgerFacts, LedgerMember, MemberFacts,
    MemberRecord, NewEvent, Notice, PolicyActivation, Record, Residence, SnapshotFolder,
    SnapshotRow, SnapshotTotals, Stats, StoredEvent, merge_by_member,
};
use crate::tokens::TokenRecord;
use cg_proof::Hash;
use cg_proof::leaves::Entry;

/// Append-only migrations; each runs once, in order.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE consent_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       INTEGER UNIQUE,
    member_id      INTEGER NOT NULL,
    purpose        TEXT    NOT NULL,
    granted        INTEGER NOT NULL CHECK (granted IN (0, 1)),
    ts             INTEGER NOT NULL,   -- µs since the Unix epoch, UTC
    source         TEXT    NOT NULL,
    notice_version TEXT,
    actor          TEXT,
    metadata       TEXT,               -- JSON: proof-of-consent fields
    recorded_at    INTEGER NOT NULL
);
CREATE INDEX consent_events_member ON consent_events (member_id, ts, seq);
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are immutable'); END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are immutable'); END;
CREATE TABLE members (
    member_id    INTEGER PRIMARY KEY,
    country      TEXT,
    birth_date   INTEGER,              -- days since 1970-01-01
    created_at   INTEGER,
    closed_at    INTEGER,
    display_name TEXT,
    handle       TEXT
);
CREATE TABLE residences (member_id INTEGER NOT NULL, country TEXT, valid_from INTEGER NOT NULL);
CREATE INDEX residences_member ON residences (member_id, valid_from);
CREATE TABLE notices (member_id INTEGER NOT NULL, notice_version TEXT NOT NULL, delivered_at INTEGER NOT NULL);
CREATE INDEX notices_member ON notices (member_id, delivered_at);
CREATE TABLE erasures (member_id INTEGER NOT NULL, ts INTEGER NOT NULL, recorded_at INTEGER NOT NULL);
CREATE INDEX erasures_member ON erasures (member_id, ts);
"#,
    ),
    (
        2,
        r#"
ALTER TABLE consent_events ADD COLUMN salt BLOB;   -- the log commitment's salt
CREATE TABLE log_entries (
    idx       INTEGER PRIMARY KEY,                 -- 0-based, gap-free
    event_seq INTEGER UNIQUE,                      -- for consent event entries
    dataset   TEXT,                                -- for manifest entries
    data      BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE INDEX log_entries_dataset ON log_entries (dataset, idx);
CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries
BEGIN SELECT RAISE(ABORT, 'log entries are immutable'); END;
CREATE TRIGGER log_entries_no_delete BEFORE DELETE ON log_entries
BEGIN SELECT RAISE(ABORT, 'log entries are immutable'); END;
CREATE TABLE log_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TRIGGER log_checkpoints_no_update BEFORE UPDATE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are immutable'); END;
CREATE TRIGGER log_checkpoints_no_delete BEFORE DELETE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are immutable'); END;
"#,
    ),
    (
        3,
        r#"
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    hash       BLOB NOT NULL,                     -- SHA-256 of the secret; never the secret
    role       TEXT NOT NULL CHECK (role IN ('member', 'service', 'admin', 'auditor')),
    member_id  INTEGER,
    label      TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
"#,
    ),
    (
        4,
        r#"
CREATE TABLE policy_activations (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    activated_at INTEGER NOT NULL,
    actor        TEXT,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    recipe       TEXT NOT NULL                     -- JSON: how to make the policy again
);
"#,
    ),
];

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

/// Creates an empty file readable and writable by its owner only (0600 on Unix), unless it
/// exists already.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map(drop)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, creating its directory, and migrates.
    pub fn open(path: &Path) -> Result<SqliteStore, LedgerError> {
        let cannot = |what: &Path, e: std::io::Error| LedgerError::Database {
            backend: "sqlite",
            message: format!("cannot create `{}`: {e}", what.display()),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            cg_io::private_dir(dir).map_err(|e| cannot(dir, e))?;
        }
        // The ledger holds personal data: a new file is readable by its owner only (SQLite
        // gives the -wal and -shm files the database file's mode).
        if !path.exists() {
            private_file(path).map_err(|e| cannot(path, e))?;
        }
        let conn = Connection::open(path).map_err(|e| LedgerError::Database {
            backend: "sqlite",
            message: format!("cannot open `{}`: {e}", path.display()),
        })?;
        // WAL with synchronous=FULL: a commit is on disk when it returns.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        )
        .map_err(LedgerError::sqlite)?;
        let mut store = SqliteStore { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing database for point reads on the caller's thread: no migration, no
    /// write (`query_only`: a write through it is an error, not a change), and a busy wait of
    /// `busy` at most. In WAL mode a reader never waits for the writer, so the wait only
    /// matters in the rare moments SQLite rebuilds its shared index; the caller is expected to
    /// fall back to a pooled connection when it elapses.
    pub fn open_reader(path: &Path, busy: std::time::Duration) -> Result<SqliteStore, LedgerError> {
        if !path.exists() {
            return Err(LedgerError::Database {
                backend: "sqlite",
                message: format!("no ledger at `{}`", path.display()),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| LedgerError::Database {
            backend: "sqlite",
            message: format!("cannot open `{}`: {e}", path.display()),
        })?;
        conn.busy_timeout(busy).map_err(LedgerError::sqlite)?;
        conn.execute_batch("PRAGMA query_only = ON;")
            .map_err(LedgerError::sqlite)?;
        Ok(SqliteStore { conn })
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let tx = self.conn.transaction().map_err(LedgerError::sqlite)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS cg_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            .map_err(LedgerError::sqlite)?;
        for (version, sql) in MIGRATIONS {
            let done: Option<i64> = tx
                .query_row(
                    "SELECT version FROM cg_migrations WHERE version = ?1",
                    [version],
                    |r| r.get(0),
                )
                .optional()
                .map_err(LedgerError::sqlite)?;
            if done.is_none() {
                tx.execute_batch(sql).map_err(LedgerError::sqlite)?;
                if *version == 2 {
                    backfill_log(&tx)?;
                }
                tx.execute(
                    "INSERT INTO cg_migrations (version, applied_at) VALUES (?1, ?2)",
                    params![version, now().micros()],
                )
                .map_err(LedgerError::sqlite)?;
            }
        }
        tx.commit().map_err(LedgerError::sqlite)
    }

    /// Appends events in one write transaction; with `stamped`, each event's time is raised to
    /// just after the member's latest recorded event when the clock is behind it.
    fn append_with(
        &mut self,
        events: &[NewEvent],
        stamped: bool,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        let recorded_at = now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sqlite)?;
        let mut salts = Salts::new()?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let stamped_event;
            let e = if stamped {
                let latest: Option<i64> = tx
                    .prepare_cached("SELECT MAX(ts) FROM consent_events WHERE member_id = ?1")
                    .and_then(|mut st| st.query_row([e.event.member_id.0], |r| r.get(0)))
                    .map_err(LedgerError::sqlite)?;
                stamped_event = crate::model::stamp_after(e, latest.map(Timestamp::from_micros));
                &stamped_event
            } else {
                e
            };
            match insert_event(&tx, e, recorded_at, &mut salts)? {
                Some(seq) => out.push(StoredEvent {
                    seq,
                    new: e.clone(),
                    recorded_at,
                }),
                None => {
                    let id = e.event.event_id.map_or(0, |i| i.0);
                    out.extend(select_events(&tx, "WHERE event_id = ?1", params![id])?);
                }
            }
        }
        tx.commit().map_err(LedgerError::sqlite)?;
        Ok(out)
    }

    /// `PRAGMA integrity_check` (for crash tests).
    pub fn integrity_check(&self) -> Result<String, LedgerError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(LedgerError::sqlite)
    }
}

/// Ledgers made before the log existed: every event gets its entry, in `seq` order, without a
/// salt (their commitments are then only as private as the events are hard to guess).
fn backfill_log(tx: &Transaction<'_>) -> Result<(), LedgerError> {
    for e in select_events(tx, "", [])? {
        append_entry(tx, &event_entry(&e, None), Some(e.seq), None)?;
    }
    Ok(())
}

/// Appends one log entry at the next index.
fn append_entry(
    tx: &Transaction<'_>,
    entry: &Entry,
    event_seq: Option<i64>,
    dataset: Option<&str>,
) -> Result<u64, LedgerError> {
    let next: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(LedgerError::sqlite)?;
    let data = entry.encode();
    tx.prepare_cached(
        "INSERT INTO log_entries (idx, event_seq, dataset, data, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            next,
            event_seq,
            dataset,
            data,
            cg_proof::leaf_hash(&data).to_vec()
        ])
    })
    .map_err(LedgerError::sqlite)?;
    Ok(next as u64)
}

fn insert_event(
    tx: &Transaction<'_>,
    e: &NewEvent,
    recorded_at: Timestamp,
    salts: &mut Salts,
) -> Result<Option<i64>, LedgerError> {
    let metadata = e.metadata.as_ref().map(|m| m.to_string());
    let salt = salts.next();
    let mut stmt = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO consent_events (event_id, member_id, purpose, granted, ts, source, notice_version, actor, metadata, recorded_at, salt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(LedgerError::sqlite)?;
    let n = stmt
        .execute(params![
            e.event.event_id.map(|i| i.0),
            e.event.member_id.0,
            e.event.purpose.as_str(),
            e.event.granted,
            e.event.ts.micros(),
            e.event.source.as_str(),
            e.event.notice_version,
            e.actor,
            metadata,
            recorded_at.micros(),
            salt.to_vec()
        ])
        .map_err(LedgerError::sqlite)?;
    if n == 1 {
        let seq = tx.last_insert_rowid();
        let stored = StoredEvent {
            seq,
            new: e.clone(),
            recorded_at,
        };
        // The event's log entry, in the same transaction.
        append_entry(tx, &event_entry(&stored, Some(&salt)), Some(seq), None)?;
        return Ok(Some(seq));
    }
    // Ignored: the event id exists. Same fact → idempotent; different → conflict.
    let id = e.event.event_id.map_or(0, |i| i.0);
    let existing = select_events(tx, "WHERE event_id = ?1", params![id])?;
    match existing.first() {
        Some(stored) if stored.new.same_fact(e) => Ok(None),
        _ => Err(LedgerError::Conflict { event_id: id }),
    }
}

const EVENT_COLUMNS: &str = "seq, event_id, member_id, purpose, granted, ts, source, notice_version, actor, metadata, recorded_at";

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    row_to_event_at(r, 0)
}

/// A members row (`member_id, country, birth_date, created_at, closed_at, display_name,
/// handle`).
fn row_to_residence(r: &rusqlite::Row<'_>) -> rusqlite::Result<Residence> {
    Ok(Residence {
        member_id: MemberId(r.get(0)?),
        country: r.get(1)?,
        valid_from: Timestamp::from_micros(r.get(2)?),
    })
}

fn row_to_notice(r: &rusqlite::Row<'_>) -> rusqlite::Result<Notice> {
    Ok(Notice {
        member_id: MemberId(r.get(0)?),
        notice_version: r.get(1)?,
        delivered_at: Timestamp::from_micros(r.get(2)?),
    })
}

fn row_to_erasure(r: &rusqlite::Row<'_>) -> rusqlite::Result<Erasure> {
    Ok(Erasure {
        member_id: MemberId(r.get(0)?),
        ts: Timestamp::from_micros(r.get(1)?),
    })
}

fn row_to_member(r: &rusqlite::Row<'_>) -> rusqlite::Result<MemberRecord> {
    Ok(MemberRecord {
        member_id: MemberId(r.get(0)?),
        country: r.get(1)?,
        birth_date: r.get::<_, Option<i32>>(2)?.and_then(days_to_date),
        created_at: r.get::<_, Option<i64>>(3)?.map(Timestamp::from_micros),
        closed_at: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_micros),
        display_name: r.get(5)?,
        handle: r.get(6)?,
    })
}

const TOKEN_COLUMNS: &str = "id, hash, role, member_id, label, created_at, expires_at, revoked_at";

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        hash: to_hash(&r.get::<_, Vec<u8>>(1)?),
        role: r.get(2)?,
        member_id: r.get(3)?,
        label: r.get(4)?,
        created_at: Timestamp::from_micros(r.get(5)?),
        expires_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_micros),
        revoked_at: r.get::<_, Option<i64>>(7)?.map(Timestamp::from_micros),
    })
}

/// A stored hash column as a hash (a wrong length reads as zeros and then fails verification).
fn to_hash(bytes: &[u8]) -> Hash {
    <Hash>::try_from(bytes).unwrap_or([0u8; 32])
}

/// [`EVENT_COLUMNS`] starting at column `o`. A stored purpose that is not a valid name is an
/// error (never read as some default purpose).
fn row_to_event_at(r: &rusqlite::Row<'_>, o: usize) -> rusqlite::Result<StoredEvent> {
    let purpose: String = r.get(o + 3)?;
    let seq: i64 = r.get(o)?;
    let purpose = Purpose::new(&purpose).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            o + 3,
            rusqlite::types::Type::Text,
            format!("event {seq}: {e}").into(),
        )
    })?;
    let metadata: Option<String> = r.get(o + 9)?;
    Ok(StoredEvent {
        seq,
        new: NewEvent {
            event: ConsentEvent {
                event_id: r.get::<_, Option<i64>>(o + 1)?.map(EventId),
                member_id: MemberId(r.get(o + 2)?),
                purpose,
                granted: r.get(o + 4)?,
                ts: Timestamp::from_micros(r.get(o + 5)?),
                source: ConsentSource::from(r.get::<_, String>(o + 6)?),
                notice_version: r.get(o + 7)?,
            },
            actor: r.get(o + 8)?,
            metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        },
        recorded_at: Timestamp::from_micros(r.get(o + 10)?),
    })
}

fn select_events(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredEvent>, LedgerError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM consent_events {filter} ORDER BY seq");
    let mut stmt = conn.prepare_cached(&sql).map_err(LedgerError::sqlite)?;
    let rows = stmt
        .query_map(params, row_to_event)
        .map_err(LedgerError::sqlite)?;
    rows.collect::<Result<_, _>>().map_err(LedgerError::sqlite)
}

fn insert_record(
    tx: &Transaction<'_>,
    r: &Record,
    recorded_at: Timestamp,
    report: &mut ImportReport,
    salts: &mut Salts,
) -> Result<(), LedgerError> {
    match r {
        Record::Event(e) => match insert_event(tx, e, recorded_at, salts)? {
            Some(_) => report.events += 1,
            None => report.duplicates += 1,
        },
        Record::Member(m) => {
            tx.prepare_cached(
                "INSERT INTO members (member_id, country, birth_date, created_at, closed_at, display_name, handle)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (member_id) DO UPDATE SET
                   country = COALESCE(excluded.country, members.country),
                   birth_date = COALESCE(excluded.birth_date, members.birth_date),
                   created_at = COALESCE(excluded.created_at, members.created_at),
                   closed_at = CASE WHEN members.closed_at IS NULL THEN excluded.closed_at
                                    WHEN excluded.closed_at IS NULL THEN members.closed_at
                                    ELSE MIN(members.closed_at, excluded.closed_at) END,
                   display_name = COALESCE(excluded.display_name, members.display_name),
                   handle = COALESCE(excluded.handle, members.handle)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    m.member_id.0,
                    m.country,
                    m.birth_date.map(date_to_days),
                    m.created_at.map(Timestamp::micros),
                    m.closed_at.map(Timestamp::micros),
                    m.display_name,
                    m.handle
                ])
            })
            .map_err(LedgerError::sqlite)?;
            report.members += 1;
        }
        Record::Residence(x) => {
            tx.prepare_cached(
                "INSERT INTO residences (member_id, country, valid_from) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![x.member_id.0, x.country, x.valid_from.micros()]))
            .map_err(LedgerError::sqlite)?;
            report.residences += 1;
        }
        Record::Notice(n) => {
            tx.prepare_cached(
                "INSERT INTO notices (member_id, notice_version, delivered_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    n.member_id.0,
                    n.notice_version,
                    n.delivered_at.micros()
                ])
            })
            .map_err(LedgerError::sqlite)?;
            report.notices += 1;
        }
        Record::Erasure(x) => {
            tx.prepare_cached(
                "INSERT INTO erasures (member_id, ts, recorded_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| {
                s.execute(params![x.member_id.0, x.ts.micros(), recorded_at.micros()])
            })
            .map_err(LedgerError::sqlite)?;
            report.erasures += 1;
        }
    }
    Ok(())
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn append(&mut self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LedgerError> {
        self.append_with(events, false)
    }

    fn append_stamped(&mut self, events: &[NewEvent]) -> Result<Vec<StoredEvent>, LedgerError> {
        self.append_with(events, true)
    }

    fn import(
        &mut self,
        records: &mut dyn Iterator<Item = Result<Record, LedgerError>>,
        progress: &dyn Progress,
    ) -> Result<ImportReport, LedgerError> {
        let recorded_at = now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sqlite)?;
        let mut report = ImportReport::default();
        let mut salts = Salts::new()?;
        let mut pending = 0u64;
        for r in records {
            insert_record(&tx, &r?, recorded_at, &mut report, &mut salts)?;
            pending += 1;
            if pending == 8192 {
                progress.advance(pending);
                pending = 0;
            }
        }
        progress.advance(pending);
        tx.commit().map_err(LedgerError::sqlite)?;
        Ok(report)
    }

    fn history(&mut self, member: MemberId) -> Result<Vec<StoredEvent>, LedgerError> {
        select_events(&self.conn, "WHERE member_id = ?1", params![member.0])
    }

    fn deciding_events(
        &mut self,
        member: MemberId,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        select_events(
            &self.conn,
            "WHERE seq IN (\
             (SELECT seq FROM consent_events WHERE member_id = ?1 AND purpose = ?2 AND ts <= ?3 AND source <> 'gpc' ORDER BY ts DESC, seq DESC LIMIT 1), \
             (SELECT seq FROM consent_events WHERE member_id = ?1 AND purpose = ?2 AND ts <= ?3 AND source = 'gpc' AND granted = 0 ORDER BY ts DESC, seq DESC LIMIT 1), \
             (SELECT seq FROM consent_events WHERE member_id = ?1 AND purpose <> ?2 AND ts <= ?3 AND source <> 'gpc' AND granted = 1 LIMIT 1))",
            params![member.0, purpose.as_str(), as_of.micros()],
        )
    }

    fn member(&mut self, member: MemberId) -> Result<Option<MemberFacts>, LedgerError> {
        let c = &self.conn;
        let record = c
            .query_row(
                "SELECT member_id, country, birth_date, created_at, closed_at, display_name, handle FROM members WHERE member_id = ?1",
                [member.0],
                row_to_member,
            )
            .optional()
            .map_err(LedgerError::sqlite)?;
        let collect = |sql: &str| -> Result<Vec<(Option<String>, i64)>, LedgerError> {
            let mut s = c.prepare_cached(sql).map_err(LedgerError::sqlite)?;
            let rows = s
                .query_map([member.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(LedgerError::sqlite)?;
            rows.collect::<Result<_, _>>().map_err(LedgerError::sqlite)
        };
        let residences: Vec<Residence> = collect(
            "SELECT country, valid_from FROM residences WHERE member_id = ?1 ORDER BY valid_from",
        )?
        .into_iter()
        .map(|(country, t)| Residence {
            member_id: member,
            country,
            valid_from: Timestamp::from_micros(t),
        })
        .collect();
        let notices: Vec<Notice> = collect("SELECT notice_version, delivered_at FROM notices WHERE member_id = ?1 ORDER BY delivered_at")?
            .into_iter()
            .map(|(v, t)| Notice { member_id: member, notice_version: v.unwrap_or_default(), delivered_at: Timestamp::from_micros(t) })
            .collect();
        let erasures: Vec<Erasure> =
            collect("SELECT NULL, ts FROM erasures WHERE member_id = ?1 ORDER BY ts")?
                .into_iter()
                .map(|(_, t)| Erasure {
                    member_id: member,
                    ts: Timestamp::from_micros(t),
                })
                .collect();
        if record.is_none() && residences.is_empty() && notices.is_empty() && erasures.is_empty() {
            return Ok(None);
        }
        Ok(Some(MemberFacts {
            record,
            residences,
            notices,
            erasures,
        }))
    }

    fn snapshot(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
        f: &mut dyn FnMut(SnapshotRow) -> Result<(), LedgerError>,
    ) -> Result<u64, LedgerError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM consent_events WHERE ts <= ?1 ORDER BY member_id, ts, seq"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(LedgerError::sqlite)?;
        let mut rows = stmt.query([as_of.micros()]).map_err(LedgerError::sqlite)?;
        let mut folder = SnapshotFolder::new(purpose);
        while let Some(row) = rows.next().map_err(LedgerError::sqlite)? {
            let e = row_to_event(row).map_err(LedgerError::sqlite)?;
            folder.push(e, f)?;
        }
        folder.finish(f)
    }

    fn facts_as_of(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<LedgerFacts, LedgerError> {
        // One read transaction: in WAL mode every statement below sees the same snapshot.
        let tx = self.conn.transaction().map_err(LedgerError::sqlite)?;
        let mut b = FactsBuilder::new(purpose, as_of);
        {
            let mut stmt = tx
                .prepare("SELECT member_id, country, birth_date, created_at, closed_at, display_name, handle FROM members")
                .map_err(LedgerError::sqlite)?;
            let rows = stmt
                .query_map([], row_to_member)
                .map_err(LedgerError::sqlite)?;
            for r in rows {
                b.member(r.map_err(LedgerError::sqlite)?);
            }
            let mut stmt = tx
                .prepare("SELECT member_id, country, valid_from FROM residences")
                .map_err(LedgerError::sqlite)?;
            let rows = stmt
                .query_map([], row_to_residence)
                .map_err(LedgerError::sqlite)?;
            for r in rows {
                b.residence(r.map_err(LedgerError::sqlite)?);
            }
            let mut stmt = tx
                .prepare("SELECT member_id, notice_version, delivered_at FROM notices")
                .map_err(LedgerError::sqlite)?;
            let rows = stmt
                .query_map([], row_to_notice)
                .map_err(LedgerError::sqlite)?;
            for r in rows {
                b.notice(r.map_err(LedgerError::sqlite)?);
            }
            let mut stmt = tx
                .prepare("SELECT member_id, ts FROM erasures")
                .map_err(LedgerError::sqlite)?;
            let rows = stmt
                .query_map([], row_to_erasure)
                .map_err(LedgerError::sqlite)?;
            for r in rows {
                b.erasure(r.map_err(LedgerError::sqlite)?);
            }
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM consent_events WHERE ts <= ?1 ORDER BY seq"
                ))
                .map_err(LedgerError::sqlite)?;
            let rows = stmt
                .query_map([as_of.micros()], row_to_event)
                .map_err(LedgerError::sqlite)?;
            for r in rows {
                b.event(r.map_err(LedgerError::sqlite)?);
            }
        }
        tx.commit().map_err(LedgerError::sqlite)?;
        Ok(b.finish())
    }

    fn facts_by_member(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
        f: &mut dyn FnMut(i64, LedgerMember) -> Result<(), LedgerError>,
    ) -> Result<SnapshotTotals, LedgerError> {
        // One read transaction (one snapshot), every table read in member order by its index
        // on `member_id`, all five statements stepped together.
        let tx = self.conn.transaction().map_err(LedgerError::sqlite)?;
        let totals = {
            let mut members = tx
                .prepare("SELECT member_id, country, birth_date, created_at, closed_at, display_name, handle FROM members ORDER BY member_id")
                .map_err(LedgerError::sqlite)?;
            let mut members = members
                .query_map([], |r| row_to_member(r).map(FactRow::Member))
                .map_err(LedgerError::sqlite)?;
            let mut residences = tx
                .prepare("SELECT member_id, country, valid_from FROM residences ORDER BY member_id")
                .map_err(LedgerError::sqlite)?;
            let mut residences = residences
                .query_map([], |r| row_to_residence(r).map(FactRow::Residence))
                .map_err(LedgerError::sqlite)?;
            let mut notices = tx
                .prepare("SELECT member_id, notice_version, delivered_at FROM notices ORDER BY member_id")
                .map_err(LedgerError::sqlite)?;
            let mut notices = notices
                .query_map([], |r| row_to_notice(r).map(FactRow::Notice))
                .map_err(LedgerError::sqlite)?;
            let mut erasures = tx
                .prepare("SELECT member_id, ts FROM erasures ORDER BY member_id")
                .map_err(LedgerError::sqlite)?;
            let mut erasures = erasures
                .query_map([], |r| row_to_erasure(r).map(FactRow::Erasure))
                .map_err(LedgerError::sqlite)?;
            let mut events = tx
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM consent_events WHERE ts <= ?1 ORDER BY member_id, ts, seq"
                ))
                .map_err(LedgerError::sqlite)?;
            let mut events = events
                .query_map([as_of.micros()], |r| row_to_event(r).map(FactRow::Event))
                .map_err(LedgerError::sqlite)?;
            merge_by_member(
                purpose,
                as_of,
                |table| {
                    let next = match table {
                        0 => members.next(),
                        1 => residences.next(),
                        2 => notices.next(),
                        3 => erasures.next(),
                        _ => events.next(),
                    };
                    next.transpose().map_err(LedgerError::sqlite)
                },
                f,
            )?
        };
        tx.commit().map_err(LedgerError::sqlite)?;
        Ok(totals)
    }

    fn policy_activation_record(&mut self, a: &PolicyActivation) -> Result<u64, LedgerError> {
        let entry = a.log_entry()?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sqlite)?;
        tx.execute(
            "INSERT INTO policy_activations (activated_at, actor, name, hash, recipe) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.activated_at.micros(), a.actor, a.name, a.hash, a.recipe],
        )
        .map_err(LedgerError::sqlite)?;
        let index = append_entry(&tx, &entry, None, None)?;
        tx.commit().map_err(LedgerError::sqlite)?;
        Ok(index)
    }

    fn policy_activation_latest(&mut self) -> Result<Option<PolicyActivation>, LedgerError> {
        self.conn
            .query_row(
                "SELECT activated_at, actor, name, hash, recipe FROM policy_activations ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(PolicyActivation {
                        activated_at: Timestamp::from_micros(r.get(0)?),
                        actor: r.get(1)?,
                        name: r.get(2)?,
                        hash: r.get(3)?,
                        recipe: r.get(4)?,
                        accepted_widening: None,
                    })
                },
            )
            .optional()
            .map_err(LedgerError::sqlite)
    }

    fn stats(&mut self) -> Result<Stats, LedgerError> {
        let count = |t: &str| -> Result<u64, LedgerError> {
            self.conn
                .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
                .map_err(LedgerError::sqlite)
        };
        Ok(Stats {
            events: count("consent_events")?,
            members: count("members")?,
            residences: count("residences")?,
            notices: count("notices")?,
            erasures: count("erasures")?,
        })
    }

    fn log_append_manifest(&mut self, dataset_id: &str, sha256: &Hash) -> Result<u64, LedgerError> {
        let entry = Entry::Manifest {
            dataset_id: dataset_id.to_owned(),
            sha256: *sha256,
        };
        // IMMEDIATE: take the write lock before reading the next index, so two processes
        // appending at once wait for each other instead of failing on a stale snapshot.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(LedgerError::sqlite)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT idx FROM log_entries WHERE dataset = ?1 AND data = ?2",
                params![dataset_id, entry.encode()],
                |r| r.get(0),
            )
            .optional()
            .map_err(LedgerError::sqlite)?;
        let index = match existing {
            Some(i) => i as u64,
            None => append_entry(&tx, &entry, None, Some(dataset_id))?,
        };
        tx.commit().map_err(LedgerError::sqlite)?;
        Ok(index)
    }

    fn log_scan(
        &mut self,
        from: u64,
        f: &mut dyn FnMut(LogEntry) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let sql = format!(
            "SELECT l.idx, l.data, l.hash, l.event_seq, e.salt, {} FROM log_entries l
             LEFT JOIN consent_events e ON e.seq = l.event_seq WHERE l.idx >= ?1 ORDER BY l.idx",
            EVENT_COLUMNS
                .split(", ")
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(LedgerError::sqlite)?;
        let mut rows = stmt.query([from as i64]).map_err(LedgerError::sqlite)?;
        while let Some(r) = rows.next().map_err(LedgerError::sqlite)? {
            let hash: Vec<u8> = r.get(2).map_err(LedgerError::sqlite)?;
            let seq: Option<i64> = r.get(5).map_err(LedgerError::sqlite)?;
            let event = match seq {
                Some(_) => {
                    let e = row_to_event_at(r, 5).map_err(LedgerError::sqlite)?;
                    Some((
                        e,
                        r.get::<_, Option<Vec<u8>>>(4)
                            .map_err(LedgerError::sqlite)?,
                    ))
                }
                None => None,
            };
            f(LogEntry {
                index: r.get::<_, i64>(0).map_err(LedgerError::sqlite)? as u64,
                data: r.get(1).map_err(LedgerError::sqlite)?,
                hash: to_hash(&hash),
                event_seq: r.get(3).map_err(LedgerError::sqlite)?,
                event,
            })?;
        }
        Ok(())
    }

    fn log_leaf_hashes(&mut self) -> Result<Vec<Hash>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash FROM log_entries ORDER BY idx")
            .map_err(LedgerError::sqlite)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(LedgerError::sqlite)?;
        rows.map(|h| h.map(|h| to_hash(&h)).map_err(LedgerError::sqlite))
            .collect()
    }

    fn log_unlogged_events(&mut self) -> Result<u64, LedgerError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM consent_events e WHERE NOT EXISTS (SELECT 1 FROM log_entries l WHERE l.event_seq = e.seq)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(LedgerError::sqlite)
    }

    fn log_index_of_event(&mut self, seq: i64) -> Result<Option<u64>, LedgerError> {
        self.conn
            .query_row(
                "SELECT idx FROM log_entries WHERE event_seq = ?1",
                [seq],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|i| i.map(|i| i as u64))
            .map_err(LedgerError::sqlite)
    }

    fn log_manifest_entries(&mut self, dataset_id: &str) -> Result<Vec<(u64, Hash)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare("SELECT idx, data FROM log_entries WHERE dataset = ?1 ORDER BY idx")
            .map_err(LedgerError::sqlite)?;
        let rows = stmt
            .query_map([dataset_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(LedgerError::sqlite)?;
        let mut out = Vec::new();
        for row in rows {
            let (i, data) = row.map_err(LedgerError::sqlite)?;
            if let Some(Entry::Manifest { sha256, .. }) = Entry::decode(&data) {
                out.push((i as u64, sha256));
            }
        }
        Ok(out)
    }

    fn event_by_seq(&mut self, seq: i64) -> Result<Option<SaltedEvent>, LedgerError> {
        let sql = format!("SELECT {EVENT_COLUMNS}, salt FROM consent_events WHERE seq = ?1");
        self.conn
            .query_row(&sql, [seq], |r| {
                Ok((row_to_event(r)?, r.get::<_, Option<Vec<u8>>>(11)?))
            })
            .optional()
            .map_err(LedgerError::sqlite)
    }

    fn log_add_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO log_checkpoints (size, root, note, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![cp.size as i64, cp.root.to_vec(), cp.note, cp.created_at.micros()],
            )
            .map(|_| ())
            .map_err(LedgerError::sqlite)
    }

    fn log_checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size",
            )
            .map_err(LedgerError::sqlite)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredCheckpoint {
                    size: r.get::<_, i64>(0)? as u64,
                    root: to_hash(&r.get::<_, Vec<u8>>(1)?),
                    note: r.get(2)?,
                    created_at: Timestamp::from_micros(r.get(3)?),
                })
            })
            .map_err(LedgerError::sqlite)?;
        rows.collect::<Result<_, _>>().map_err(LedgerError::sqlite)
    }

    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "INSERT INTO api_tokens (id, hash, role, member_id, label, created_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    t.id,
                    t.hash.to_vec(),
                    t.role,
                    t.member_id,
                    t.label,
                    t.created_at.micros(),
                    t.expires_at.map(Timestamp::micros),
                    t.revoked_at.map(Timestamp::micros)
                ],
            )
            .map(|_| ())
            .map_err(LedgerError::sqlite)
    }

    fn token_get(&mut self, id: &str) -> Result<Option<TokenRecord>, LedgerError> {
        self.conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"),
                [id],
                row_to_token,
            )
            .optional()
            .map_err(LedgerError::sqlite)
    }

    fn token_revoke(&mut self, id: &str, at: Timestamp) -> Result<bool, LedgerError> {
        self.conn
            .execute(
                "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at.micros()],
            )
            .map(|n| n == 1)
            .map_err(LedgerError::sqlite)
    }

    fn tokens(&mut self) -> Result<Vec<TokenRecord>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"
            ))
            .map_err(LedgerError::sqlite)?;
        let rows = stmt
            .query_map([], row_to_token)
            .map_err(LedgerError::sqlite)?;
        rows.collect::<Result<_, _>>().map_err(LedgerError::sqlite)
    }
}
