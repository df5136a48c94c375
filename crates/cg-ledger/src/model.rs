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

/// `e` with its time raised to 1 µs after `latest` when it is not already later: how the
/// service stamps the events it records, so a server clock stepping back cannot order a new
/// choice before an older one.
pub(crate) fn stamp_after(e: &NewEvent, latest: Option<Timestamp>) -> NewEvent {
    let mut e = e.clone();
    if let Some(latest) = latest
        && e.event.ts <= latest
    {
        e.event.ts = Timestamp::from_micros(latest.micros().saturating_add(1));
    }
    e
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

/// One member's facts as of `as_of` for `purpose`, folded from its raw facts and the events
/// that decide (or its whole history up to `as_of`): what [`crate::Store::member_facts`]
/// answers. `None` without a members row (an unknown member).
pub(crate) fn fold_member(
    member: MemberId,
    raw: MemberFacts,
    events: impl IntoIterator<Item = StoredEvent>,
    purpose: &Purpose,
    as_of: Timestamp,
) -> Option<cg_model::MemberFacts> {
    let record = raw.record?;
    let mut b = FactsBuilder::new(purpose, as_of);
    b.member(record);
    raw.residences.into_iter().for_each(|r| b.residence(r));
    raw.notices.into_iter().for_each(|n| b.notice(n));
    raw.erasures.into_iter().for_each(|e| b.erasure(e));
    for e in events {
        b.event(e);
    }
    b.finish().members.remove(&member.0).map(|m| m.facts)
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

/// Folds the events of one member (all purposes, `(ts, seq)` order) for `purpose`, through the
/// same [`cg_model::member::ConsentFold`] every loader uses.
pub(crate) fn snapshot_of(
    member: MemberId,
    events: &[(NewEvent, i64)],
    purpose: &Purpose,
) -> SnapshotRow {
    let mut fold = cg_model::member::ConsentFold::new(purpose, Timestamp::MAX);
    let mut explicit_seq = None;
    for (e, seq) in events {
        if &e.event.purpose == purpose && e.event.source != ConsentSource::Gpc {
            explicit_seq = Some(*seq);
        }
        fold.push(e.event.clone());
    }
    let (state, other_purpose_grant) = fold.finish();
    SnapshotRow {
        member_id: member,
        explicit_seq: state.explicit.as_ref().and(explicit_seq),
        explicit: state.explicit.map(|c| *c),
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

/// One member as the ledger knows them for a build: the facts, and whether the ledger holds
/// the member's row (a member with events or erasures but no row is not a known member).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerMember {
    /// The members table has a row for this member.
    pub recorded: bool,
    /// Every fact, as of the cut-off.
    pub facts: cg_model::MemberFacts,
}

/// Every member fact the ledger holds as of a cut-off, for one purpose, read in one snapshot.
#[derive(Clone, Debug, Default)]
pub struct LedgerFacts {
    /// Members by id.
    pub members: std::collections::BTreeMap<i64, LedgerMember>,
    /// Events up to the cut-off of purposes other than the one decided, by name.
    pub ignored_purposes: cg_model::member::IgnoredPurposes,
    /// Consent events up to the cut-off.
    pub events: u64,
}

/// Assembles [`LedgerFacts`] from the rows of the ledger's tables (shared by the backends).
pub(crate) struct FactsBuilder<'p> {
    purpose: &'p Purpose,
    as_of: Timestamp,
    out: LedgerFacts,
    folds: std::collections::BTreeMap<i64, cg_model::member::ConsentFold<'p>>,
}

impl<'p> FactsBuilder<'p> {
    pub(crate) fn new(purpose: &'p Purpose, as_of: Timestamp) -> Self {
        FactsBuilder {
            purpose,
            as_of,
            out: LedgerFacts::default(),
            folds: std::collections::BTreeMap::new(),
        }
    }

    fn entry(&mut self, id: MemberId) -> &mut cg_model::MemberFacts {
        &mut self.out.members.entry(id.0).or_default().facts
    }

    pub(crate) fn member(&mut self, r: MemberRecord) {
        let m = self.out.members.entry(r.member_id.0).or_default();
        m.recorded = true;
        let f = &mut m.facts;
        f.country = r.country;
        f.birth_date = r.birth_date;
        f.closed_at = r.closed_at;
        f.display_name = r.display_name;
        f.handle = r.handle;
    }

    pub(crate) fn residence(&mut self, r: Residence) {
        self.entry(r.member_id)
            .residences
            .push((r.valid_from, r.country));
    }

    pub(crate) fn notice(&mut self, n: Notice) {
        let f = self.entry(n.member_id);
        f.notice_at = Some(
            f.notice_at
                .map_or(n.delivered_at, |t| t.min(n.delivered_at)),
        );
    }

    pub(crate) fn erasure(&mut self, e: Erasure) {
        let f = self.entry(e.member_id);
        f.erasure_requested_at = Some(f.erasure_requested_at.map_or(e.ts, |t| t.min(e.ts)));
    }

    /// Events must come in `seq` order (ties in time then follow the ledger's order).
    pub(crate) fn event(&mut self, e: StoredEvent) {
        let event = e.new.event;
        if event.ts > self.as_of {
            return;
        }
        self.out.events += 1;
        if &event.purpose != self.purpose {
            *self
                .out
                .ignored_purposes
                .entry(event.purpose.as_str().to_owned())
                .or_default() += 1;
        }
        let (purpose, as_of) = (self.purpose, self.as_of);
        self.folds
            .entry(event.member_id.0)
            .or_insert_with(|| cg_model::member::ConsentFold::new(purpose, as_of))
            .push(event);
    }

    pub(crate) fn finish(mut self) -> LedgerFacts {
        for (id, fold) in std::mem::take(&mut self.folds) {
            fold.finish_into(&mut self.out.members.entry(id).or_default().facts);
        }
        for m in self.out.members.values_mut() {
            m.facts.sort_residences();
        }
        self.out
    }
}

/// The counts of a snapshot streamed by [`crate::Store::facts_by_member`] (its members went
/// to the caller one at a time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotTotals {
    /// Members streamed (with a row, or with only events, notices, residences or erasures).
    pub members: u64,
    /// Events up to the cut-off of purposes other than the one decided, by name.
    pub ignored_purposes: cg_model::member::IgnoredPurposes,
    /// Consent events up to the cut-off.
    pub events: u64,
}

/// One row of one of the ledger's member tables, for [`merge_by_member`].
#[derive(Debug)]
pub(crate) enum FactRow {
    /// `members`.
    Member(MemberRecord),
    /// `residences`.
    Residence(Residence),
    /// `notices`.
    Notice(Notice),
    /// `erasures`.
    Erasure(Erasure),
    /// `consent_events` (up to the cut-off).
    Event(StoredEvent),
}

impl FactRow {
    fn member_id(&self) -> i64 {
        match self {
            FactRow::Member(r) => r.member_id.0,
            FactRow::Residence(r) => r.member_id.0,
            FactRow::Notice(r) => r.member_id.0,
            FactRow::Erasure(r) => r.member_id.0,
            FactRow::Event(e) => e.new.event.member_id.0,
        }
    }
}

/// How many tables [`merge_by_member`] reads: members, residences, notices, erasures and
/// consent events, by index in that order.
pub(crate) const FACT_TABLES: usize = 5;

/// Merges the ledger's member tables, each read in member order (`pull(t)` gives table `t`'s
/// next row, `None` at its end; events in `(ts, seq)` order within a member), into one
/// [`LedgerMember`] per member, handed to `f` in ascending id order — each folded by the
/// [`FactsBuilder`] [`crate::Store::facts_as_of`] uses, so the facts are the same, while only
/// one member's rows are held at a time. A table whose rows go back in member order fails
/// the read (it would split a member in two).
pub(crate) fn merge_by_member(
    purpose: &Purpose,
    as_of: Timestamp,
    mut pull: impl FnMut(usize) -> Result<Option<FactRow>, LedgerError>,
    f: &mut dyn FnMut(i64, LedgerMember) -> Result<(), LedgerError>,
) -> Result<SnapshotTotals, LedgerError> {
    let mut heads = (0..FACT_TABLES)
        .map(&mut pull)
        .collect::<Result<Vec<_>, _>>()?;
    let mut totals = SnapshotTotals::default();
    let mut last: Option<i64> = None;
    while let Some(id) = heads.iter().flatten().map(FactRow::member_id).min() {
        if let Some(before) = last
            && id <= before
        {
            return Err(LedgerError::Database {
                backend: "ledger",
                message: format!(
                    "the member tables were not read in member order (member {id} after {before})"
                ),
            });
        }
        last = Some(id);
        let mut b = FactsBuilder::new(purpose, as_of);
        for (t, head) in heads.iter_mut().enumerate() {
            while head.as_ref().is_some_and(|r| r.member_id() == id) {
                match head.take() {
                    Some(FactRow::Member(r)) => b.member(r),
                    Some(FactRow::Residence(r)) => b.residence(r),
                    Some(FactRow::Notice(r)) => b.notice(r),
                    Some(FactRow::Erasure(r)) => b.erasure(r),
                    Some(FactRow::Event(e)) => b.event(e),
                    None => {}
                }
                *head = pull(t)?;
            }
        }
        let facts = b.finish();
        totals.events += facts.events;
        for (purpose, n) in facts.ignored_purposes {
            *totals.ignored_purposes.entry(purpose).or_default() += n;
        }
        for (id, member) in facts.members {
            totals.members += 1;
            f(id, member)?;
        }
    }
    Ok(totals)
}

/// A policy put in force by the service: who, when, which (name and hash) and how to make it
/// again (the recipe, JSON), so the service restarts with the policy an admin activated.
/// Recording one also appends a `policy-activation` entry to the transparency log (with the
/// reason a widening change was accepted, if it was one), in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyActivation {
    /// When.
    pub activated_at: Timestamp,
    /// Who (a token id or label; never a secret).
    pub actor: Option<String>,
    /// The policy's name.
    pub name: String,
    /// The policy's content hash.
    pub hash: String,
    /// How to make it again (`cg_policy::PolicyRecipe` as JSON).
    pub recipe: String,
    /// Why a change that admits something the previous policy denied was put in force anyway
    /// (logged in the transparency log next to the activation); `None` otherwise. Kept in the
    /// log entry only: [`crate::Store::policy_activation_latest`] reads it back as `None`.
    pub accepted_widening: Option<String>,
}

impl PolicyActivation {
    /// The activation's log entry; the hash must be one line without spaces.
    pub(crate) fn log_entry(&self) -> Result<cg_proof::leaves::Entry, LedgerError> {
        if self.hash.is_empty() || self.hash.chars().any(char::is_whitespace) {
            return Err(LedgerError::Log(format!(
                "policy hash `{}` cannot be logged: it must be one word",
                self.hash
            )));
        }
        Ok(cg_proof::leaves::Entry::PolicyActivation {
            policy_hash: self.hash.clone(),
            accepted_widening: self.accepted_widening.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: i64) -> FactRow {
        FactRow::Member(MemberRecord {
            member_id: MemberId(id),
            country: Some("DE".into()),
            birth_date: None,
            created_at: None,
            closed_at: None,
            display_name: None,
            handle: None,
        })
    }

    fn erasure(id: i64) -> FactRow {
        FactRow::Erasure(Erasure {
            member_id: MemberId(id),
            ts: Timestamp::from_micros(5),
        })
    }

    /// Runs [`merge_by_member`] over tables given as lists (missing ones empty).
    fn merged(
        tables: Vec<Vec<FactRow>>,
    ) -> Result<(Vec<(i64, LedgerMember)>, SnapshotTotals), LedgerError> {
        let mut tables: Vec<std::vec::IntoIter<FactRow>> =
            tables.into_iter().map(Vec::into_iter).collect();
        tables.resize_with(FACT_TABLES, || Vec::new().into_iter());
        let mut out = Vec::new();
        let totals = merge_by_member(
            &Purpose::genai_training(),
            Timestamp::from_micros(100),
            |t| Ok(tables[t].next()),
            &mut |id, m| {
                out.push((id, m));
                Ok(())
            },
        )?;
        Ok((out, totals))
    }

    #[test]
    fn members_are_merged_across_tables_in_id_order() {
        let (out, totals) = merged(vec![
            vec![member(1), member(4)],
            vec![],
            vec![],
            vec![erasure(2), erasure(4), erasure(4)],
        ])
        .unwrap();
        let ids: Vec<i64> = out.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 2, 4]);
        assert!(out[0].1.recorded && !out[1].1.recorded && out[2].1.recorded);
        assert_eq!(
            out[2].1.facts.erasure_requested_at,
            Some(Timestamp::from_micros(5))
        );
        assert_eq!(totals.members, 3);
    }

    #[test]
    fn a_table_out_of_member_order_fails_the_read() {
        let err = merged(vec![
            vec![member(1), member(3)],
            vec![],
            vec![],
            vec![erasure(2), erasure(1)],
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("not read in member order"), "{err}");
    }
}
