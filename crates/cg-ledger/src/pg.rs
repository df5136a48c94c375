//! The production backend: PostgreSQL through the `postgres` client. Same schema and semantics
//! as SQLite (times as µs BIGINT, so both backends compare and fold identically).

use std::collections::HashMap;

use cg_model::consent::{ConsentEvent, ConsentSource};
use cg_model::instant::{date_to_days, days_to_date};
use cg_model::progress::Progress;
use cg_model::{EventId, MemberId, Purpose, Timestamp};
use postgres::{Client, NoTls, Row, Transaction};

use crate::Store;
use crate::import::ImportReport;
use crate::log::{LogEntry, SaltedEvent, Salts, StoredCheckpoint, event_entry};
use crate::model::{
    Erasure, FACT_TABLES, FactRow, FactsBuilder, LedgerError, LedgerFacts, LedgerMember,
    MemberFacts, MemberRecord, NewEvent, Notice, PolicyActivation, Record, Residence,
    SnapshotFolder, SnapshotRow, SnapshotTotals, Stats, StoredEvent, fold_member, merge_by_member,
};
use crate::tokens::TokenRecord;
use cg_proof::Hash;
use cg_proof::leaves::Entry;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE consent_events (
    seq            BIGSERIAL PRIMARY KEY,
    event_id       BIGINT UNIQUE,
    member_id      BIGINT  NOT NULL,
    purpose        TEXT    NOT NULL,
    granted        BOOLEAN NOT NULL,
    ts             BIGINT  NOT NULL,
    source         TEXT    NOT NULL,
    notice_version TEXT,
    actor          TEXT,
    metadata       TEXT,
    recorded_at    BIGINT  NOT NULL
);
CREATE INDEX consent_events_member ON consent_events (member_id, ts, seq);
CREATE FUNCTION consent_events_immutable() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'consent events are immutable'; END $$ LANGUAGE plpgsql;
CREATE TRIGGER consent_events_no_change BEFORE UPDATE OR DELETE ON consent_events
FOR EACH ROW EXECUTE FUNCTION consent_events_immutable();
CREATE TABLE members (
    member_id    BIGINT PRIMARY KEY,
    country      TEXT,
    birth_date   INTEGER,
    created_at   BIGINT,
    closed_at    BIGINT,
    display_name TEXT,
    handle       TEXT
);
CREATE TABLE residences (member_id BIGINT NOT NULL, country TEXT, valid_from BIGINT NOT NULL);
CREATE INDEX residences_member ON residences (member_id, valid_from);
CREATE TABLE notices (member_id BIGINT NOT NULL, notice_version TEXT NOT NULL, delivered_at BIGINT NOT NULL);
CREATE INDEX notices_member ON notices (member_id, delivered_at);
CREATE TABLE erasures (member_id BIGINT NOT NULL, ts BIGINT NOT NULL, recorded_at BIGINT NOT NULL);
CREATE INDEX erasures_member ON erasures (member_id, ts);
"#,
    ),
    (
        2,
        r#"
ALTER TABLE consent_events ADD COLUMN salt BYTEA;
CREATE TABLE log_entries (
    idx       BIGINT PRIMARY KEY,
    event_seq BIGINT UNIQUE,
    dataset   TEXT,
    data      BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);
CREATE INDEX log_entries_dataset ON log_entries (dataset, idx);
CREATE FUNCTION log_immutable() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'log entries and checkpoints are immutable'; END $$ LANGUAGE plpgsql;
CREATE TRIGGER log_entries_no_change BEFORE UPDATE OR DELETE ON log_entries
FOR EACH ROW EXECUTE FUNCTION log_immutable();
CREATE TABLE log_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       BYTEA NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TRIGGER log_checkpoints_no_change BEFORE UPDATE OR DELETE ON log_checkpoints
FOR EACH ROW EXECUTE FUNCTION log_immutable();
"#,
    ),
    (
        3,
        r#"
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    hash       BYTEA NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('member', 'service', 'admin', 'auditor')),
    member_id  BIGINT,
    label      TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
"#,
    ),
    (
        4,
        r#"
CREATE TABLE policy_activations (
    seq          BIGSERIAL PRIMARY KEY,
    activated_at BIGINT NOT NULL,
    actor        TEXT,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    recipe       TEXT NOT NULL                     -- JSON: how to make the policy again
);
"#,
    ),
];

/// Serialises log appends across connections (indices must be gap-free and in commit order).
const LOG_LOCK: &str = "SELECT pg_advisory_xact_lock(7432)";

/// The PostgreSQL store.
pub struct PgStore {
    client: Client,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

impl PgStore {
    /// Appends events in one write transaction; with `stamped`, each event's time is raised to
    /// just after the member's latest recorded event when the clock is behind it (appends are
    /// serialised by the log lock, so the read and the write cannot interleave with another).
    fn append_with(
        &mut self,
        events: &[NewEvent],
        stamped: bool,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        let recorded_at = now();
        let mut tx = self.client.transaction().map_err(LedgerError::pg)?;
        tx.batch_execute(LOG_LOCK).map_err(LedgerError::pg)?;
        let mut salts = Salts::new()?;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let stamped_event;
            let e = if stamped {
                let latest: Option<i64> = tx
                    .query_one(
                        "SELECT MAX(ts) FROM consent_events WHERE member_id = $1",
                        &[&e.event.member_id.0],
                    )
                    .map_err(LedgerError::pg)?
                    .get(0);
                stamped_event = crate::model::stamp_after(e, latest.map(Timestamp::from_micros));
                &stamped_event
            } else {
                e
            };
            match insert_event(&mut tx, e, recorded_at, &mut salts)? {
                Some(seq) => out.push(StoredEvent {
                    seq,
                    new: e.clone(),
                    recorded_at,
                }),
                None => {
                    let id = e.event.event_id.map_or(0, |i| i.0);
                    for r in tx
                        .query(
                            &format!(
                                "SELECT {EVENT_COLUMNS} FROM consent_events WHERE event_id = $1"
                            ),
                            &[&id],
                        )
                        .map_err(LedgerError::pg)?
                    {
                        out.push(row_to_event(&r)?);
                    }
                }
            }
        }
        tx.commit().map_err(LedgerError::pg)?;
        Ok(out)
    }

    /// Connects to `url` and migrates.
    /// Without `connect_timeout` in the URL a connection attempt gives up after 5 s: every
    /// wait is bounded.
    pub fn connect(url: &str) -> Result<PgStore, LedgerError> {
        let mut config: postgres::Config = url.parse().map_err(LedgerError::pg)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let client = config.connect(NoTls).map_err(LedgerError::pg)?;
        let mut store = PgStore { client };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let mut tx = self.client.transaction().map_err(LedgerError::pg)?;
        tx.batch_execute(
            "SELECT pg_advisory_xact_lock(7431); CREATE TABLE IF NOT EXISTS cg_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .map_err(LedgerError::pg)?;
        for (version, sql) in MIGRATIONS {
            let done = tx
                .query_opt(
                    "SELECT version FROM cg_migrations WHERE version = $1",
                    &[version],
                )
                .map_err(LedgerError::pg)?;
            if done.is_none() {
                tx.batch_execute(sql).map_err(LedgerError::pg)?;
                if *version == 2 {
                    backfill_log(&mut tx)?;
                }
                tx.execute(
                    "INSERT INTO cg_migrations (version, applied_at) VALUES ($1, $2)",
                    &[version, &now().micros()],
                )
                .map_err(LedgerError::pg)?;
            }
        }
        tx.commit().map_err(LedgerError::pg)
    }
}

const EVENT_COLUMNS: &str = "seq, event_id, member_id, purpose, granted, ts, source, notice_version, actor, metadata, recorded_at";

/// Rows fetched from a portal at a time by [`Store::facts_by_member`] (per table).
const FACTS_PAGE: i32 = 10_000;

fn row_to_event(r: &Row) -> Result<StoredEvent, LedgerError> {
    row_to_event_at(r, 0)
}

/// A members row (`member_id, country, birth_date, created_at, closed_at, display_name,
/// handle`).
fn row_to_member(r: &Row) -> MemberRecord {
    MemberRecord {
        member_id: MemberId(r.get(0)),
        country: r.get(1),
        birth_date: r.get::<_, Option<i32>>(2).and_then(days_to_date),
        created_at: r.get::<_, Option<i64>>(3).map(Timestamp::from_micros),
        closed_at: r.get::<_, Option<i64>>(4).map(Timestamp::from_micros),
        display_name: r.get(5),
        handle: r.get(6),
    }
}

/// A residences row (`member_id, country, valid_from`).
fn row_to_residence(r: &Row) -> Residence {
    Residence {
        member_id: MemberId(r.get(0)),
        country: r.get(1),
        valid_from: Timestamp::from_micros(r.get(2)),
    }
}

/// A notices row (`member_id, notice_version, delivered_at`).
fn row_to_notice(r: &Row) -> Notice {
    Notice {
        member_id: MemberId(r.get(0)),
        notice_version: r.get(1),
        delivered_at: Timestamp::from_micros(r.get(2)),
    }
}

/// An erasures row (`member_id, ts`).
fn row_to_erasure(r: &Row) -> Erasure {
    Erasure {
        member_id: MemberId(r.get(0)),
        ts: Timestamp::from_micros(r.get(1)),
    }
}

/// A read-only `REPEATABLE READ` transaction: every read in it sees one snapshot, whatever
/// commits meanwhile.
fn read_snapshot(client: &mut Client) -> Result<Transaction<'_>, LedgerError> {
    client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(LedgerError::pg)
}

const TOKEN_COLUMNS: &str = "id, hash, role, member_id, label, created_at, expires_at, revoked_at";

fn row_to_token(r: &Row) -> TokenRecord {
    TokenRecord {
        id: r.get(0),
        hash: to_hash(r.get::<_, &[u8]>(1)),
        role: r.get(2),
        member_id: r.get(3),
        label: r.get(4),
        created_at: Timestamp::from_micros(r.get(5)),
        expires_at: r.get::<_, Option<i64>>(6).map(Timestamp::from_micros),
        revoked_at: r.get::<_, Option<i64>>(7).map(Timestamp::from_micros),
    }
}

fn to_hash(bytes: &[u8]) -> Hash {
    <Hash>::try_from(bytes).unwrap_or([0u8; 32])
}

/// Runs `sql` with the member ids as `$1` and hands each row to `f`.
fn each_row(
    tx: &mut Transaction<'_>,
    sql: &str,
    ids: &[i64],
    mut f: impl FnMut(&Row),
) -> Result<(), LedgerError> {
    for r in tx.query(sql, &[&ids]).map_err(LedgerError::pg)? {
        f(&r);
    }
    Ok(())
}

/// The raw facts of member `id` in `raw`, empty at first.
fn entry(raw: &mut HashMap<i64, MemberFacts>, id: i64) -> &mut MemberFacts {
    raw.entry(id).or_insert_with(|| MemberFacts {
        record: None,
        residences: Vec::new(),
        notices: Vec::new(),
        erasures: Vec::new(),
    })
}

/// [`EVENT_COLUMNS`] starting at column `o`.
fn row_to_event_at(r: &Row, o: usize) -> Result<StoredEvent, LedgerError> {
    let purpose: String = r.get(o + 3);
    let seq: i64 = r.get(o);
    let metadata: Option<String> = r.get(o + 9);
    Ok(StoredEvent {
        seq,
        new: NewEvent {
            event: ConsentEvent {
                event_id: r.get::<_, Option<i64>>(o + 1).map(EventId),
                member_id: MemberId(r.get(o + 2)),
                purpose: Purpose::new(&purpose).map_err(|_| LedgerError::Database {
                    backend: "postgres",
                    message: format!("event {seq} has an invalid purpose"),
                })?,
                granted: r.get(o + 4),
                ts: Timestamp::from_micros(r.get(o + 5)),
                source: ConsentSource::from(r.get::<_, String>(o + 6)),
                notice_version: r.get(o + 7),
            },
            actor: r.get(o + 8),
            metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        },
        recorded_at: Timestamp::from_micros(r.get(o + 10)),
    })
}

/// Ledgers made before the log existed: every event gets its entry, in `seq` order, unsalted.
fn backfill_log(tx: &mut Transaction<'_>) -> Result<(), LedgerError> {
    let rows = tx
        .query(
            &format!("SELECT {EVENT_COLUMNS} FROM consent_events ORDER BY seq"),
            &[],
        )
        .map_err(LedgerError::pg)?;
    for r in &rows {
        let e = row_to_event(r)?;
        append_entry(tx, &event_entry(&e, None), Some(e.seq), None)?;
    }
    Ok(())
}

/// Appends one log entry at the next index (the caller holds [`LOG_LOCK`]).
fn append_entry(
    tx: &mut Transaction<'_>,
    entry: &Entry,
    event_seq: Option<i64>,
    dataset: Option<&str>,
) -> Result<u64, LedgerError> {
    let data = entry.encode();
    let hash = cg_proof::leaf_hash(&data).to_vec();
    let row = tx
        .query_one(
            "INSERT INTO log_entries (idx, event_seq, dataset, data, hash)
             SELECT COALESCE(MAX(idx) + 1, 0), $1, $2, $3, $4 FROM log_entries RETURNING idx",
            &[&event_seq, &dataset, &data, &hash],
        )
        .map_err(LedgerError::pg)?;
    Ok(row.get::<_, i64>(0) as u64)
}

fn insert_event(
    tx: &mut Transaction<'_>,
    e: &NewEvent,
    recorded_at: Timestamp,
    salts: &mut Salts,
) -> Result<Option<i64>, LedgerError> {
    let metadata = e.metadata.as_ref().map(|m| m.to_string());
    let salt = salts.next().to_vec();
    let row = tx
        .query_opt(
            "INSERT INTO consent_events (event_id, member_id, purpose, granted, ts, source, notice_version, actor, metadata, recorded_at, salt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (event_id) DO NOTHING RETURNING seq",
            &[
                &e.event.event_id.map(|i| i.0),
                &e.event.member_id.0,
                &e.event.purpose.as_str(),
                &e.event.granted,
                &e.event.ts.micros(),
                &e.event.source.as_str(),
                &e.event.notice_version,
                &e.actor,
                &metadata,
                &recorded_at.micros(),
                &salt,
            ],
        )
        .map_err(LedgerError::pg)?;
    if let Some(row) = row {
        let seq: i64 = row.get(0);
        let stored = StoredEvent {
            seq,
            new: e.clone(),
            recorded_at,
        };
        append_entry(tx, &event_entry(&stored, Some(&salt)), Some(seq), None)?;
        return Ok(Some(seq));
    }
    let id = e.event.event_id.map_or(0, |i| i.0);
    let existing = tx
        .query_opt(
            &format!("SELECT {EVENT_COLUMNS} FROM consent_events WHERE event_id = $1"),
            &[&id],
        )
        .map_err(LedgerError::pg)?;
    match existing.map(|r| row_to_event(&r)).transpose()? {
        Some(stored) if stored.new.same_fact(e) => Ok(None),
        _ => Err(LedgerError::Conflict { event_id: id }),
    }
}

fn insert_record(
    tx: &mut Transaction<'_>,
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
            tx.execute(
                "INSERT INTO members (member_id, country, birth_date, created_at, closed_at, display_name, handle)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (member_id) DO UPDATE SET
                   country = COALESCE(excluded.country, members.country),
                   birth_date = COALESCE(excluded.birth_date, members.birth_date),
                   created_at = COALESCE(excluded.created_at, members.created_at),
                   closed_at = LEAST(members.closed_at, excluded.closed_at),
                   display_name = COALESCE(excluded.display_name, members.display_name),
                   handle = COALESCE(excluded.handle, members.handle)",
                &[
                    &m.member_id.0,
                    &m.country,
                    &m.birth_date.map(date_to_days),
                    &m.created_at.map(Timestamp::micros),
                    &m.closed_at.map(Timestamp::micros),
                    &m.display_name,
                    &m.handle,
                ],
            )
            .map_err(LedgerError::pg)?;
            report.members += 1;
        }
        Record::Residence(x) => {
            tx.execute(
                "INSERT INTO residences (member_id, country, valid_from) VALUES ($1, $2, $3)",
                &[&x.member_id.0, &x.country, &x.valid_from.micros()],
            )
            .map_err(LedgerError::pg)?;
            report.residences += 1;
        }
        Record::Notice(n) => {
            tx.execute(
                "INSERT INTO notices (member_id, notice_version, delivered_at) VALUES ($1, $2, $3)",
                &[&n.member_id.0, &n.notice_version, &n.delivered_at.micros()],
            )
            .map_err(LedgerError::pg)?;
            report.notices += 1;
        }
        Record::Erasure(x) => {
            tx.execute(
                "INSERT INTO erasures (member_id, ts, recorded_at) VALUES ($1, $2, $3)",
                &[&x.member_id.0, &x.ts.micros(), &recorded_at.micros()],
            )
            .map_err(LedgerError::pg)?;
            report.erasures += 1;
        }
    }
    Ok(())
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn is_broken(&mut self) -> bool {
        self.client.is_closed()
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
        let mut tx = self.client.transaction().map_err(LedgerError::pg)?;
        tx.batch_execute(LOG_LOCK).map_err(LedgerError::pg)?;
        let mut report = ImportReport::default();
        let mut salts = Salts::new()?;
        let mut pending = 0u64;
        for r in records {
            insert_record(&mut tx, &r?, recorded_at, &mut report, &mut salts)?;
            pending += 1;
            if pending == 8192 {
                progress.advance(pending);
                pending = 0;
            }
        }
        progress.advance(pending);
        tx.commit().map_err(LedgerError::pg)?;
        Ok(report)
    }

    fn deciding_events(
        &mut self,
        member: MemberId,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Vec<StoredEvent>, LedgerError> {
        self.client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM consent_events WHERE seq IN (\
                     (SELECT seq FROM consent_events WHERE member_id = $1 AND purpose = $2 AND ts <= $3 AND source <> 'gpc' ORDER BY ts DESC, seq DESC LIMIT 1), \
                     (SELECT seq FROM consent_events WHERE member_id = $1 AND purpose = $2 AND ts <= $3 AND source = 'gpc' AND NOT granted ORDER BY ts DESC, seq DESC LIMIT 1), \
                     (SELECT seq FROM consent_events WHERE member_id = $1 AND purpose <> $2 AND ts <= $3 AND source <> 'gpc' AND granted LIMIT 1)) \
                     ORDER BY seq"
                ),
                &[&member.0, &purpose.as_str(), &as_of.micros()],
            )
            .map_err(LedgerError::pg)?
            .iter()
            .map(row_to_event)
            .collect()
    }

    fn members_facts(
        &mut self,
        members: &[MemberId],
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<Vec<Option<cg_model::MemberFacts>>, LedgerError> {
        let ids: Vec<i64> = members.iter().map(|m| m.0).collect();
        // One snapshot for the five reads, whatever commits meanwhile.
        let mut tx = read_snapshot(&mut self.client)?;
        let mut raw: HashMap<i64, MemberFacts> = HashMap::new();
        each_row(
            &mut tx,
            "SELECT member_id, country, birth_date, created_at, closed_at, display_name, handle FROM members WHERE member_id = ANY($1)",
            &ids,
            |r| {
                let record = row_to_member(r);
                let id = record.member_id.0;
                entry(&mut raw, id).record = Some(record);
            },
        )?;
        each_row(
            &mut tx,
            "SELECT member_id, country, valid_from FROM residences WHERE member_id = ANY($1) ORDER BY member_id, valid_from",
            &ids,
            |r| {
                let member_id = MemberId(r.get(0));
                let (country, valid_from) = (r.get(1), Timestamp::from_micros(r.get(2)));
                entry(&mut raw, member_id.0).residences.push(Residence {
                    member_id,
                    country,
                    valid_from,
                });
            },
        )?;
        each_row(
            &mut tx,
            "SELECT member_id, notice_version, delivered_at FROM notices WHERE member_id = ANY($1) ORDER BY member_id, delivered_at",
            &ids,
            |r| {
                let member_id = MemberId(r.get(0));
                let (notice_version, delivered_at) = (r.get(1), Timestamp::from_micros(r.get(2)));
                entry(&mut raw, member_id.0).notices.push(Notice {
                    member_id,
                    notice_version,
                    delivered_at,
                });
            },
        )?;
        each_row(
            &mut tx,
            "SELECT member_id, ts FROM erasures WHERE member_id = ANY($1) ORDER BY member_id, ts",
            &ids,
            |r| {
                let member_id = MemberId(r.get(0));
                let ts = Timestamp::from_micros(r.get(1));
                entry(&mut raw, member_id.0)
                    .erasures
                    .push(Erasure { member_id, ts });
            },
        )?;
        // The events that decide (as in `deciding_events`), for every member at once.
        let mut events: HashMap<i64, Vec<StoredEvent>> = HashMap::new();
        for r in tx
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM consent_events WHERE seq IN (\
                     SELECT d.seq FROM unnest($1::bigint[]) AS m(id) CROSS JOIN LATERAL (\
                     (SELECT seq FROM consent_events WHERE member_id = m.id AND purpose = $2 AND ts <= $3 AND source <> 'gpc' ORDER BY ts DESC, seq DESC LIMIT 1) \
                     UNION ALL \
                     (SELECT seq FROM consent_events WHERE member_id = m.id AND purpose = $2 AND ts <= $3 AND source = 'gpc' AND NOT granted ORDER BY ts DESC, seq DESC LIMIT 1) \
                     UNION ALL \
                     (SELECT seq FROM consent_events WHERE member_id = m.id AND purpose <> $2 AND ts <= $3 AND source <> 'gpc' AND granted LIMIT 1)) AS d(seq)) \
                     ORDER BY seq"
                ),
                &[&ids, &purpose.as_str(), &as_of.micros()],
            )
            .map_err(LedgerError::pg)?
        {
            let e = row_to_event(&r)?;
            events.entry(e.event.member_id.0).or_default().push(e);
        }
        tx.commit().map_err(LedgerError::pg)?;
        Ok(members
            .iter()
            .map(|m| {
                let raw = raw.get(&m.0)?.clone();
                let events = events.get(&m.0).cloned().unwrap_or_default();
                fold_member(*m, raw, events, purpose, as_of)
            })
            .collect())
    }

    fn history(&mut self, member: MemberId) -> Result<Vec<StoredEvent>, LedgerError> {
        self.client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM consent_events WHERE member_id = $1 ORDER BY seq"
                ),
                &[&member.0],
            )
            .map_err(LedgerError::pg)?
            .iter()
            .map(row_to_event)
            .collect()
    }

    fn member(&mut self, member: MemberId) -> Result<Option<MemberFacts>, LedgerError> {
        let c = &mut self.client;
        let record = c
            .query_opt(
                "SELECT member_id, country, birth_date, created_at, closed_at, display_name, handle FROM members WHERE member_id = $1",
                &[&member.0],
            )
            .map_err(LedgerError::pg)?
            .map(|r| row_to_member(&r));
        let residences: Vec<Residence> = c
            .query("SELECT country, valid_from FROM residences WHERE member_id = $1 ORDER BY valid_from", &[&member.0])
            .map_err(LedgerError::pg)?
            .iter()
            .map(|r| Residence { member_id: member, country: r.get(0), valid_from: Timestamp::from_micros(r.get(1)) })
            .collect();
        let notices: Vec<Notice> = c
            .query("SELECT notice_version, delivered_at FROM notices WHERE member_id = $1 ORDER BY delivered_at", &[&member.0])
            .map_err(LedgerError::pg)?
            .iter()
            .map(|r| Notice { member_id: member, notice_version: r.get(0), delivered_at: Timestamp::from_micros(r.get(1)) })
            .collect();
        let erasures: Vec<Erasure> = c
            .query(
                "SELECT ts FROM erasures WHERE member_id = $1 ORDER BY ts",
                &[&member.0],
            )
            .map_err(LedgerError::pg)?
            .iter()
            .map(|r| Erasure {
                member_id: member,
                ts: Timestamp::from_micros(r.get(0)),
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
        let mut tx = self.client.transaction().map_err(LedgerError::pg)?;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM consent_events WHERE ts <= $1 ORDER BY member_id, ts, seq"
        );
        let portal = tx.bind(&sql, &[&as_of.micros()]).map_err(LedgerError::pg)?;
        let mut folder = SnapshotFolder::new(purpose);
        loop {
            let rows = tx.query_portal(&portal, 50_000).map_err(LedgerError::pg)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                folder.push(row_to_event(row)?, f)?;
            }
        }
        let n = folder.finish(f)?;
        tx.commit().map_err(LedgerError::pg)?;
        Ok(n)
    }

    fn facts_as_of(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
    ) -> Result<LedgerFacts, LedgerError> {
        // One snapshot for every table: REPEATABLE READ, read only.
        let mut tx = read_snapshot(&mut self.client)?;
        let mut b = FactsBuilder::new(purpose, as_of);
        for r in tx
            .query("SELECT member_id, country, birth_date, created_at, closed_at, display_name, handle FROM members", &[])
            .map_err(LedgerError::pg)?
        {
            b.member(row_to_member(&r));
        }
        for r in tx
            .query("SELECT member_id, country, valid_from FROM residences", &[])
            .map_err(LedgerError::pg)?
        {
            b.residence(row_to_residence(&r));
        }
        for r in tx
            .query(
                "SELECT member_id, notice_version, delivered_at FROM notices",
                &[],
            )
            .map_err(LedgerError::pg)?
        {
            b.notice(row_to_notice(&r));
        }
        for r in tx
            .query("SELECT member_id, ts FROM erasures", &[])
            .map_err(LedgerError::pg)?
        {
            b.erasure(row_to_erasure(&r));
        }
        let sql = format!("SELECT {EVENT_COLUMNS} FROM consent_events WHERE ts <= $1 ORDER BY seq");
        let portal = tx.bind(&sql, &[&as_of.micros()]).map_err(LedgerError::pg)?;
        loop {
            let rows = tx.query_portal(&portal, 50_000).map_err(LedgerError::pg)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                b.event(row_to_event(row)?);
            }
        }
        tx.commit().map_err(LedgerError::pg)?;
        Ok(b.finish())
    }

    fn facts_by_member(
        &mut self,
        purpose: &Purpose,
        as_of: Timestamp,
        f: &mut dyn FnMut(i64, LedgerMember) -> Result<(), LedgerError>,
    ) -> Result<SnapshotTotals, LedgerError> {
        // One snapshot (REPEATABLE READ, read only); each table read in member order through
        // a portal of its own, a page at a time, so only a page of each is held.
        let mut tx = read_snapshot(&mut self.client)?;
        let events = format!(
            "SELECT {EVENT_COLUMNS} FROM consent_events WHERE ts <= $1 ORDER BY member_id, ts, seq"
        );
        let as_of_micros = as_of.micros();
        let queries: [(&str, &[&(dyn postgres::types::ToSql + Sync)]); FACT_TABLES] = [
            (
                "SELECT member_id, country, birth_date, created_at, closed_at, display_name, handle FROM members ORDER BY member_id",
                &[],
            ),
            (
                "SELECT member_id, country, valid_from FROM residences ORDER BY member_id",
                &[],
            ),
            (
                "SELECT member_id, notice_version, delivered_at FROM notices ORDER BY member_id",
                &[],
            ),
            ("SELECT member_id, ts FROM erasures ORDER BY member_id", &[]),
            (events.as_str(), &[&as_of_micros]),
        ];
        let mut pages = Vec::with_capacity(FACT_TABLES);
        for (sql, params) in queries {
            let portal = tx.bind(sql, params).map_err(LedgerError::pg)?;
            pages.push((portal, std::collections::VecDeque::new(), false));
        }
        let totals = merge_by_member(
            purpose,
            as_of,
            |table| {
                let (portal, page, done) = &mut pages[table];
                if page.is_empty() && !*done {
                    page.extend(
                        tx.query_portal(portal, FACTS_PAGE)
                            .map_err(LedgerError::pg)?,
                    );
                    *done = page.is_empty();
                }
                let Some(r) = page.pop_front() else {
                    return Ok(None);
                };
                Ok(Some(match table {
                    0 => FactRow::Member(row_to_member(&r)),
                    1 => FactRow::Residence(row_to_residence(&r)),
                    2 => FactRow::Notice(row_to_notice(&r)),
                    3 => FactRow::Erasure(row_to_erasure(&r)),
                    _ => FactRow::Event(row_to_event(&r)?),
                }))
            },
            f,
        )?;
        tx.commit().map_err(LedgerError::pg)?;
        Ok(totals)
    }

    fn policy_activation_record(&mut self, a: &PolicyActivation) -> Result<u64, LedgerError> {
        let entry = a.log_entry()?;
        let mut tx = self.client.transaction().map_err(LedgerError::pg)?;
        tx.batch_execute(LOG_LOCK).map_err(LedgerError::pg)?;
        tx.execute(
            "INSERT INTO policy_activations (activated_at, actor, name, hash, recipe) VALUES ($1, $2, $3, $4, $5)",
            &[&a.activated_at.micros(), &a.actor, &a.name, &a.hash, &a.recipe],
        )
        .map_err(LedgerError::pg)?;
        let index = append_entry(&mut tx, &entry, None, None)?;
        tx.commit().map_err(LedgerError::pg)?;
        Ok(index)
    }

    fn policy_activation_latest(&mut self) -> Result<Option<PolicyActivation>, LedgerError> {
        Ok(self
            .client
            .query_opt(
                "SELECT activated_at, actor, name, hash, recipe FROM policy_activations ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .map_err(LedgerError::pg)?
            .map(|r| PolicyActivation {
                activated_at: Timestamp::from_micros(r.get(0)),
                actor: r.get(1),
                name: r.get(2),
                hash: r.get(3),
                recipe: r.get(4),
                accepted_widening: None,
            }))
    }

    fn stats(&mut self) -> Result<Stats, LedgerError> {
        let mut count = |t: &str| -> Result<u64, LedgerError> {
            self.client
                .query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
                .map(|r| r.get::<_, i64>(0) as u64)
                .map_err(LedgerError::pg)
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
        let data = entry.encode();
        let mut tx = self.client.transaction().map_err(LedgerError::pg)?;
        tx.batch_execute(LOG_LOCK).map_err(LedgerError::pg)?;
        let existing = tx
            .query_opt(
                "SELECT idx FROM log_entries WHERE dataset = $1 AND data = $2",
                &[&dataset_id, &data],
            )
            .map_err(LedgerError::pg)?;
        let index = match existing {
            Some(r) => r.get::<_, i64>(0) as u64,
            None => append_entry(&mut tx, &entry, None, Some(dataset_id))?,
        };
        tx.commit().map_err(LedgerError::pg)?;
        Ok(index)
    }

    fn log_scan(
        &mut self,
        from: u64,
        f: &mut dyn FnMut(LogEntry) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let sql = format!(
            "SELECT l.idx, l.data, l.hash, l.event_seq, e.salt, {} FROM log_entries l
             LEFT JOIN consent_events e ON e.seq = l.event_seq WHERE l.idx >= $1 ORDER BY l.idx",
            EVENT_COLUMNS
                .split(", ")
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut tx = self.client.transaction().map_err(LedgerError::pg)?;
        let from = from as i64;
        let portal = tx.bind(&sql, &[&from]).map_err(LedgerError::pg)?;
        loop {
            let rows = tx.query_portal(&portal, 50_000).map_err(LedgerError::pg)?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let seq: Option<i64> = r.get(5);
                let event = match seq {
                    Some(_) => Some((row_to_event_at(r, 5)?, r.get::<_, Option<Vec<u8>>>(4))),
                    None => None,
                };
                f(LogEntry {
                    index: r.get::<_, i64>(0) as u64,
                    data: r.get(1),
                    hash: to_hash(r.get::<_, &[u8]>(2)),
                    event_seq: r.get(3),
                    event,
                })?;
            }
        }
        tx.commit().map_err(LedgerError::pg)
    }

    fn log_leaf_hashes(&mut self) -> Result<Vec<Hash>, LedgerError> {
        Ok(self
            .client
            .query("SELECT hash FROM log_entries ORDER BY idx", &[])
            .map_err(LedgerError::pg)?
            .iter()
            .map(|r| to_hash(r.get::<_, &[u8]>(0)))
            .collect())
    }

    fn log_unlogged_events(&mut self) -> Result<u64, LedgerError> {
        self.client
            .query_one(
                "SELECT COUNT(*) FROM consent_events e WHERE NOT EXISTS (SELECT 1 FROM log_entries l WHERE l.event_seq = e.seq)",
                &[],
            )
            .map(|r| r.get::<_, i64>(0) as u64)
            .map_err(LedgerError::pg)
    }

    fn log_index_of_event(&mut self, seq: i64) -> Result<Option<u64>, LedgerError> {
        Ok(self
            .client
            .query_opt("SELECT idx FROM log_entries WHERE event_seq = $1", &[&seq])
            .map_err(LedgerError::pg)?
            .map(|r| r.get::<_, i64>(0) as u64))
    }

    fn log_manifest_entries(&mut self, dataset_id: &str) -> Result<Vec<(u64, Hash)>, LedgerError> {
        let rows = self
            .client
            .query(
                "SELECT idx, data FROM log_entries WHERE dataset = $1 ORDER BY idx",
                &[&dataset_id],
            )
            .map_err(LedgerError::pg)?;
        Ok(rows
            .iter()
            .filter_map(|r| match Entry::decode(r.get::<_, &[u8]>(1)) {
                Some(Entry::Manifest { sha256, .. }) => Some((r.get::<_, i64>(0) as u64, sha256)),
                _ => None,
            })
            .collect())
    }

    fn event_by_seq(&mut self, seq: i64) -> Result<Option<SaltedEvent>, LedgerError> {
        let row = self
            .client
            .query_opt(
                &format!("SELECT {EVENT_COLUMNS}, salt FROM consent_events WHERE seq = $1"),
                &[&seq],
            )
            .map_err(LedgerError::pg)?;
        row.map(|r| Ok((row_to_event(&r)?, r.get::<_, Option<Vec<u8>>>(11))))
            .transpose()
    }

    fn log_add_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), LedgerError> {
        self.client
            .execute(
                "INSERT INTO log_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING",
                &[&(cp.size as i64), &cp.root.to_vec(), &cp.note, &cp.created_at.micros()],
            )
            .map(|_| ())
            .map_err(LedgerError::pg)
    }

    fn log_checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, LedgerError> {
        Ok(self
            .client
            .query(
                "SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size",
                &[],
            )
            .map_err(LedgerError::pg)?
            .iter()
            .map(|r| StoredCheckpoint {
                size: r.get::<_, i64>(0) as u64,
                root: to_hash(r.get::<_, &[u8]>(1)),
                note: r.get(2),
                created_at: Timestamp::from_micros(r.get(3)),
            })
            .collect())
    }

    fn token_insert(&mut self, t: &TokenRecord) -> Result<(), LedgerError> {
        self.client
            .execute(
                "INSERT INTO api_tokens (id, hash, role, member_id, label, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &t.id,
                    &t.hash.to_vec(),
                    &t.role,
                    &t.member_id,
                    &t.label,
                    &t.created_at.micros(),
                    &t.expires_at.map(Timestamp::micros),
                    &t.revoked_at.map(Timestamp::micros),
                ],
            )
            .map(|_| ())
            .map_err(LedgerError::pg)
    }

    fn token_get(&mut self, id: &str) -> Result<Option<TokenRecord>, LedgerError> {
        Ok(self
            .client
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"),
                &[&id],
            )
            .map_err(LedgerError::pg)?
            .map(|r| row_to_token(&r)))
    }

    fn token_revoke(&mut self, id: &str, at: Timestamp) -> Result<bool, LedgerError> {
        self.client
            .execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at.micros()],
            )
            .map(|n| n == 1)
            .map_err(LedgerError::pg)
    }

    fn tokens(&mut self) -> Result<Vec<TokenRecord>, LedgerError> {
        Ok(self
            .client
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"),
                &[],
            )
            .map_err(LedgerError::pg)?
            .iter()
            .map(row_to_token)
            .collect())
    }
}
