//! Member-side facts, loaded once per build into the one model every path decides on
//! ([`cg_model::MemberFacts`]): from input files (members, residence history, notices,
//! erasures, consent events), from the ledger as of the cut-off, or from both, merged with the
//! most protective reading ([`cg_model::MemberFacts::merge`]). A distributed build's client,
//! which only writes the facts out per shard, splits the files' rows by shard first and folds
//! one shard at a time ([`load_facts_by_shard`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMicrosecondType};
use cg_model::consent::{ConsentEvent, ConsentSource};
use cg_model::instant::days_to_date;
use cg_model::member::{ConsentFold, IgnoredPurposes, looks_like};
use cg_model::{EventId, MemberFacts, MemberId, Purpose, Timestamp};
use rustc_hash::FxHashMap;

use cg_model::progress::Progress;
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::config::{ConsentSourceArg, FactInputs};
use crate::facts_runs::{
    LedgerPartitioner, LedgerRuns, Partitioner, Sharding, TableRuns, row_numbers,
};
use crate::layout::{file_name, hex};
use crate::manifest::{FactsSummary, InputRef, MemberSources};
use crate::store::{PrivateDir, with_local};

/// All members, by id.
///
/// Boxed: a hash table keeps its slots half empty after it grows (1 M members sit in 2 M
/// slots) and holds the old and the new slots while it grows, so facts stored inline (~310
/// bytes each) made a 1 M-member load peak at ~1 GiB in the table alone; boxed, a slot is 16
/// bytes and each member's facts are allocated once, at their size.
pub type Members = FxHashMap<i64, Box<MemberFacts>>;

fn read(
    path: &Path,
    table: &str,
    mut f: impl FnMut(&RecordBatch, u64) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let contract = cg_io::schema::contract(table)
        .ok_or_else(|| BuildError::Input(format!("no contract for {table}")))?;
    let mut inner: Option<BuildError> = None;
    let r = cg_io::read_table(path, &contract, |b, first| {
        f(&b, first).map_err(|e| {
            let msg = e.to_string();
            inner = Some(e);
            cg_io::ReadError::File {
                path: path.to_owned(),
                message: msg,
            }
        })
    });
    match (r, inner) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(BuildError::Read(e)),
        (Ok(_), None) => Ok(()),
    }
}

/// Loads members (duplicate ids are an error naming the row).
///
/// The file is decoded on a thread of its own while this one makes the members from the
/// batches it hands over (a bounded queue of two): decoding was about two fifths of the load,
/// which is most of the build's first stage and ran on one core. Batches are taken in file
/// order, so the first duplicate reported is the same as reading in one thread; an error
/// making the members stops the reader at its next batch and is the one reported.
pub fn load_members(path: &Path) -> Result<Members, BuildError> {
    let (batches, queue) = std::sync::mpsc::sync_channel::<(RecordBatch, u64)>(2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            read(path, "members", |b, first| {
                batches
                    .send((b.clone(), first))
                    .map_err(|_| BuildError::Engine("the members were no longer read".into()))
            })
        });
        let mut out = Members::default();
        let mut failed = None;
        for (batch, first) in queue.iter() {
            if let Err(e) = add_members(&mut out, path, &batch, RowNumbers::From(first)) {
                failed = Some(e);
                break;
            }
        }
        // The reader's next send fails, and it stops.
        drop(queue);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(BuildError::Engine("the members reader panicked".into())));
        match (failed, read) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(out),
        }
    })
}

/// Where a batch's rows are in their file, for errors that name a row.
#[derive(Clone, Copy)]
enum RowNumbers<'a> {
    /// The rows follow each other from this one.
    From(u64),
    /// Each row's number (a batch of one shard's rows, [`crate::facts_runs`]).
    Listed(&'a [u64]),
}

impl RowNumbers<'_> {
    fn of(self, r: usize) -> u64 {
        match self {
            RowNumbers::From(first) => first + r as u64,
            RowNumbers::Listed(rows) => rows.get(r).copied().unwrap_or(0),
        }
    }
}

/// Adds one batch of the members file to `out`.
fn add_members(
    out: &mut Members,
    path: &Path,
    b: &RecordBatch,
    rows: RowNumbers<'_>,
) -> Result<(), BuildError> {
    let id = b.column(0).as_primitive::<Int64Type>();
    let country = b.column(1).as_string::<i32>();
    let birth = b.column(2).as_primitive::<Date32Type>();
    let closed = b.column(4).as_primitive::<TimestampMicrosecondType>();
    let name = b.column(5).as_string::<i32>();
    let handle = b.column(6).as_string::<i32>();
    for r in 0..b.num_rows() {
        let m = MemberFacts {
            country: country.is_valid(r).then(|| country.value(r).to_owned()),
            birth_date: birth
                .is_valid(r)
                .then(|| days_to_date(birth.value(r)))
                .flatten(),
            closed_at: closed
                .is_valid(r)
                .then(|| Timestamp::from_micros(closed.value(r))),
            display_name: name.is_valid(r).then(|| name.value(r).to_owned()),
            handle: handle.is_valid(r).then(|| handle.value(r).to_owned()),
            ..MemberFacts::default()
        };
        if out.insert(id.value(r), Box::new(m)).is_some() {
            return Err(BuildError::BadRow {
                file: path.display().to_string(),
                row: rows.of(r),
                column: "member_id".into(),
                message: format!("duplicate member id {}", id.value(r)),
            });
        }
    }
    Ok(())
}

/// A residence: when it began and the country (as given).
type Residence = (i64, Timestamp, Option<String>);

/// Reads residence history (added to the members by [`add_residences`]).
fn read_residences(path: &Path) -> Result<Vec<Residence>, BuildError> {
    let mut rows = Vec::new();
    read(path, "residences", |b, _| {
        residences_of(b, &mut rows);
        Ok(())
    })?;
    Ok(rows)
}

/// The residences of one batch of the residences table.
fn residences_of(b: &RecordBatch, rows: &mut Vec<Residence>) {
    let id = b.column(0).as_primitive::<Int64Type>();
    let country = b.column(1).as_string::<i32>();
    let from = b.column(2).as_primitive::<TimestampMicrosecondType>();
    rows.reserve(b.num_rows());
    for r in 0..b.num_rows() {
        rows.push((
            id.value(r),
            Timestamp::from_micros(from.value(r)),
            country.is_valid(r).then(|| country.value(r).to_owned()),
        ));
    }
}

/// Adds residence history to the members it names.
fn add_residences(rows: Vec<Residence>, members: &mut Members) {
    for (id, from, country) in rows {
        if let Some(m) = members.get_mut(&id) {
            m.residences.push((from, country));
        }
    }
    for m in members.values_mut() {
        m.sort_residences();
    }
}

/// Reads a table of dated events per member (`at`: the time column's index): notices or
/// erasure requests, folded by [`earliest`].
fn read_dated(path: &Path, table: &str, at: usize) -> Result<Vec<(i64, Timestamp)>, BuildError> {
    let mut rows = Vec::new();
    read(path, table, |b, _| {
        dated_of(b, at, &mut rows);
        Ok(())
    })?;
    Ok(rows)
}

/// The dated events of one batch of a notices or erasures table (`at`: the time column).
fn dated_of(b: &RecordBatch, at: usize, rows: &mut Vec<(i64, Timestamp)>) {
    let id = b.column(0).as_primitive::<Int64Type>();
    let at = b.column(at).as_primitive::<TimestampMicrosecondType>();
    rows.extend((0..b.num_rows()).map(|r| (id.value(r), Timestamp::from_micros(at.value(r)))));
}

/// Folds dated events into the members they name: the earliest counts.
fn earliest(
    rows: Vec<(i64, Timestamp)>,
    members: &mut Members,
    field: fn(&mut MemberFacts) -> &mut Option<Timestamp>,
) {
    for (id, t) in rows {
        if let Some(m) = members.get_mut(&id) {
            let slot = field(m);
            *slot = Some(slot.map_or(t, |x| x.min(t)));
        }
    }
}

/// Consent events folded per member, not yet given to the members.
type ConsentFolds<'p> = FxHashMap<i64, ConsentFold<'p>>;

/// Folds a consent-events file as of `as_of` for `purpose`, per member (given to the members
/// by [`add_consent`]). Events of other purposes never affect a decision: they are counted by
/// name (the manifest's `ignored_purposes`); a purpose that looks like a misspelling of the
/// build's (edit distance 2 after normalisation) fails the build naming both, so an objection
/// cannot vanish under a typo. Catalogue purposes (`catalogue`) other than the build's only
/// tell "granted another purpose" apart from "no event" in the reason code.
fn fold_consent_events<'p>(
    path: &Path,
    purpose: &'p Purpose,
    as_of: Timestamp,
    catalogue: &[&str],
) -> Result<(ConsentFolds<'p>, IgnoredPurposes), BuildError> {
    let mut folds = ConsentFolds::default();
    let mut ignored = IgnoredPurposes::new();
    let rule = ConsentRule {
        path,
        purpose,
        as_of,
        catalogue,
    };
    read(path, "consent", |b, first| {
        rule.batch(b, RowNumbers::From(first), Some(&mut folds), &mut ignored)
    })?;
    Ok((folds, ignored))
}

/// What a consent event is read against: the build's purpose, cut-off and catalogue (and the
/// file, for errors).
#[derive(Clone, Copy)]
struct ConsentRule<'r, 'p> {
    path: &'r Path,
    purpose: &'p Purpose,
    as_of: Timestamp,
    catalogue: &'r [&'r str],
}

impl<'p> ConsentRule<'_, 'p> {
    /// Checks one batch of consent events (a misspelt purpose fails, naming the row), counts
    /// other purposes' events up to the cut-off into `ignored`, and with `folds` folds them.
    fn batch(
        self,
        b: &RecordBatch,
        rows: RowNumbers<'_>,
        mut folds: Option<&mut ConsentFolds<'p>>,
        ignored: &mut IgnoredPurposes,
    ) -> Result<(), BuildError> {
        let ConsentRule {
            path,
            purpose,
            as_of,
            catalogue,
        } = self;
        let eid = b.column(0).as_primitive::<Int64Type>();
        let id = b.column(1).as_primitive::<Int64Type>();
        let p = b.column(2).as_string::<i32>();
        let granted = b.column(3).as_boolean();
        let ts = b.column(4).as_primitive::<TimestampMicrosecondType>();
        let source = b.column(5).as_string::<i32>();
        let notice = b.column(6).as_string::<i32>();
        for r in 0..b.num_rows() {
            let name = p.value(r);
            let t = Timestamp::from_micros(ts.value(r));
            let this = name == purpose.as_str();
            // A purpose of the catalogue is a purpose of its own, however close its name.
            if !this && !catalogue.contains(&name) && looks_like(name, purpose) {
                return Err(BuildError::BadRow {
                    file: path.display().to_string(),
                    row: rows.of(r),
                    column: "purpose".into(),
                    message: format!(
                        "purpose `{name}` looks like a misspelling of the build's purpose `{purpose}`; fix the export (an objection under a misspelt purpose would be lost)"
                    ),
                });
            }
            if t > as_of {
                continue;
            }
            if !this {
                *ignored.entry(name.to_owned()).or_default() += 1;
            }
            let Some(folds) = folds.as_deref_mut() else {
                continue;
            };
            let event_purpose = if this {
                purpose.clone()
            } else {
                match Purpose::in_catalogue(name, catalogue) {
                    Ok(p) => p,
                    Err(_) => continue,
                }
            };
            folds
                .entry(id.value(r))
                .or_insert_with(|| ConsentFold::new(purpose, as_of))
                .push(ConsentEvent {
                    event_id: eid.is_valid(r).then(|| EventId(eid.value(r))),
                    member_id: MemberId(id.value(r)),
                    purpose: event_purpose,
                    granted: granted.value(r),
                    ts: t,
                    source: if source.is_valid(r) {
                        ConsentSource::from(source.value(r))
                    } else {
                        ConsentSource::Import
                    },
                    notice_version: notice.is_valid(r).then(|| notice.value(r).to_owned()),
                });
        }
        Ok(())
    }
}

/// Gives each member its folded consent (events of members the build does not know are
/// dropped).
fn add_consent(folds: ConsentFolds<'_>, members: &mut Members) {
    for (id, fold) in folds {
        if let Some(m) = members.get_mut(&id) {
            fold.finish_into(m);
        }
    }
}

/// Takes every member fact the ledger holds as of `as_of` (members, residences, notices,
/// erasures, consent; one snapshot, streamed a member at a time in id order) and merges it
/// into `members` with the most protective reading. Members the ledger has a row for join the
/// build; facts of members it has no row for count only for members the files name. Returns
/// the counts, the ledger's other purposes and the snapshot's digest.
pub fn load_ledger(
    store: &mut dyn cg_ledger::Store,
    purpose: &Purpose,
    as_of: Timestamp,
    members: &mut Members,
) -> Result<LedgerLoad, BuildError> {
    let mut digest = LedgerDigest::default();
    let mut counts = LedgerCounts::default();
    let totals = store
        .facts_by_member(purpose, as_of, &mut |id, m| {
            digest.add(id, &m);
            merge_ledger_member(members, id, m, &mut counts);
            Ok(())
        })
        .map_err(BuildError::Ledger)?;
    counts.events = totals.events;
    Ok(LedgerLoad {
        counts,
        ignored_purposes: totals.ignored_purposes,
        sha256: digest.finish(),
    })
}

/// Adds one member of the ledger's snapshot to `members`: merged into the files' member of
/// that id, or added when the ledger has the member's row; counted in `counts`.
fn merge_ledger_member(
    members: &mut Members,
    id: i64,
    m: cg_ledger::LedgerMember,
    counts: &mut LedgerCounts,
) {
    match members.get_mut(&id) {
        Some(existing) => {
            existing.merge(m.facts);
            counts.merged += 1;
        }
        None if m.recorded => {
            members.insert(id, Box::new(m.facts));
            counts.from_ledger += 1;
        }
        None => {}
    }
}

/// Fails closed on a ledger that gave the build nothing: an empty ledger would read as
/// "nobody ever objected".
fn ledger_not_empty(counts: &LedgerCounts, url: &str, as_of: Timestamp) -> Result<(), BuildError> {
    if counts.events == 0 && counts.from_ledger == 0 && counts.merged == 0 {
        return Err(BuildError::Input(format!(
            "the ledger `{}` holds no member facts or consent events as of {as_of}; pass --consent FILE, or import into the ledger first",
            redact_url(url)
        )));
    }
    Ok(())
}

/// What [`load_ledger`] took from the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerLoad {
    /// Its counts.
    pub counts: LedgerCounts,
    /// Events of other purposes, by name.
    pub ignored_purposes: IgnoredPurposes,
    /// The snapshot's digest ([`LedgerDigest`]).
    pub sha256: String,
}

/// What a build took from the ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    /// Consent events up to the cut-off.
    pub events: u64,
    /// Members only the ledger knows.
    pub from_ledger: u64,
    /// Members both the files and the ledger know (merged).
    pub merged: u64,
}

/// Member facts as a build loaded them: every member held ([`Members`], what [`load_facts`]
/// gives), or as [`MemberSide`] ([`load_facts_by_shard`]).
#[derive(Debug)]
pub(crate) struct LoadedFacts<M = Members> {
    /// The members.
    pub members: M,
    /// Where each fact came from, with digests (the manifest's member-side `inputs`).
    pub inputs: Vec<InputRef>,
    /// Other purposes and member sources (recorded in the manifest).
    pub summary: FactsSummary,
}

impl LoadedFacts {
    /// The same facts as a [`MemberSide`] holding every member.
    pub(crate) fn held(self) -> LoadedFacts<MemberSide> {
        LoadedFacts {
            members: MemberSide::Held(self.members),
            inputs: self.inputs,
            summary: self.summary,
        }
    }
}

/// Loads member facts: the files given, and with a ledger every fact it holds as of the
/// cut-off, merged with the most protective reading. Returns them with the input digests.
pub(crate) fn load_facts(
    f: &FactInputs,
    purpose: &Purpose,
    as_of: Timestamp,
    progress: &dyn Progress,
) -> Result<LoadedFacts, BuildError> {
    progress.stage("member facts", None);
    if f.members.is_none() && !matches!(f.consent, ConsentSourceArg::Store(_)) {
        return Err(no_members());
    }
    let catalogue = f.catalogue();
    // Every file is read (decoded, folded, digested) on a thread of its own, all at once;
    // this thread reads the members, then adds the side tables to them in a fixed order as
    // their readers finish, so the facts, the inputs' order and the first error reported do
    // not depend on which reader finished first.
    let mut inputs = Vec::new();
    let (mut members, consent_file) = std::thread::scope(|scope| {
        let residences = f
            .residences
            .as_deref()
            .map(|p| scope.spawn(move || with_local(p, read_residences)));
        let notices = f
            .notices
            .as_deref()
            .map(|p| scope.spawn(move || with_local(p, |l| read_dated(l, "notices", 2))));
        let erasures = f
            .erasures
            .as_deref()
            .map(|p| scope.spawn(move || with_local(p, |l| read_dated(l, "erasures", 1))));
        let consent = match &f.consent {
            ConsentSourceArg::File(p) => {
                let catalogue = &catalogue;
                Some(scope.spawn(move || {
                    with_local(p, |l| fold_consent_events(l, purpose, as_of, catalogue))
                }))
            }
            ConsentSourceArg::Store(_) => None,
        };
        let mut members = match &f.members {
            Some(path) => {
                let (members, sha256) = with_local(path, load_members)?;
                inputs.push(input_ref("members", path, sha256));
                members
            }
            None => Members::default(),
        };
        if let (Some(path), Some(reader)) = (&f.residences, residences) {
            let (rows, sha256) = joined(reader)?;
            add_residences(rows, &mut members);
            inputs.push(input_ref("residences", path, sha256));
        }
        if let (Some(path), Some(reader)) = (&f.notices, notices) {
            let (rows, sha256) = joined(reader)?;
            earliest(rows, &mut members, |m| &mut m.notice_at);
            inputs.push(input_ref("notices", path, sha256));
        }
        if let (Some(path), Some(reader)) = (&f.erasures, erasures) {
            let (rows, sha256) = joined(reader)?;
            earliest(rows, &mut members, |m| &mut m.erasure_requested_at);
            inputs.push(input_ref("erasures", path, sha256));
        }
        let consent_file = match consent {
            Some(reader) => {
                let ((folds, ignored), sha256) = joined(reader)?;
                add_consent(folds, &mut members);
                Some((ignored, sha256))
            }
            None => None,
        };
        Ok::<_, BuildError>((members, consent_file))
    })?;
    let file_members = members.len() as u64;
    let mut member_sources = None;
    let ignored_purposes = match &f.consent {
        ConsentSourceArg::File(p) => {
            let (ignored, sha256) = consent_file
                .ok_or_else(|| BuildError::Engine("the consent file was not read".into()))?;
            inputs.push(input_ref("consent", p, sha256));
            ignored
        }
        ConsentSourceArg::Store(url) => {
            let mut store = cg_ledger::open_existing(url).map_err(BuildError::Ledger)?;
            let ledger = load_ledger(store.as_mut(), purpose, as_of, &mut members)?;
            let counts = ledger.counts;
            ledger_not_empty(&counts, url, as_of)?;
            inputs.push(InputRef {
                table: "ledger_snapshot".into(),
                source: store.backend().into(),
                sha256: ledger.sha256,
            });
            member_sources = Some(MemberSources {
                files_only: file_members - counts.merged,
                ledger_only: counts.from_ledger,
                merged: counts.merged,
                ledger_events: counts.events,
            });
            ledger.ignored_purposes
        }
    };
    progress.finish_stage();
    Ok(LoadedFacts {
        members,
        inputs,
        summary: FactsSummary {
            ignored_purposes,
            member_sources,
        },
    })
}

fn no_members() -> BuildError {
    BuildError::Input(
        "no members: pass --members FILE, or --store to take members from the ledger".into(),
    )
}

/// The member side of a build: every member held, or the input rows split by shard on disk
/// and folded a shard at a time.
#[derive(Debug)]
pub(crate) enum MemberSide {
    /// Every member, folded.
    Held(Members),
    /// The rows, by shard ([`load_facts_by_shard`]).
    ByShard(Box<ShardedFacts>),
}

impl MemberSide {
    /// Every member, folded (all shards at once, for a path that needs them together), and
    /// where they came from when the folds learnt it ([`ShardedFacts::finish_folds`]).
    pub(crate) fn into_held(self) -> Result<(Members, Option<MemberSources>), BuildError> {
        match self {
            MemberSide::Held(members) => Ok((members, None)),
            MemberSide::ByShard(sharded) => {
                let mut members = Members::default();
                for shard in 0..sharded.shards {
                    members.extend(sharded.fold(shard)?);
                }
                let sources = sharded.finish_folds()?;
                Ok((members, sources))
            }
        }
    }
}

/// [`load_facts`] for a distributed build's client, which never decides a row and only
/// writes the facts out per shard for the executors: the files are read as before (checked
/// against their contracts, digested, other purposes counted, a misspelt purpose refused) but
/// their rows are split by their member's keyed shard into files in a private directory under
/// `scratch` (default `$TMPDIR`), not folded; [`ShardedFacts::fold`] then folds one shard at a
/// time into exactly the facts [`load_facts`] gives its members. The client then holds one
/// shard's members at a time instead of everyone's (~215 bytes a member).
///
/// With the ledger as the consent source its snapshot is streamed a member at a time
/// ([`cg_ledger::Store::facts_by_member`]) and split by shard the same way (digested on the
/// way, as [`load_facts`] digests it); each shard's fold merges its ledger members last, as
/// [`load_ledger`] merges them after the files.
pub(crate) fn load_facts_by_shard(
    f: &FactInputs,
    purpose: &Purpose,
    as_of: Timestamp,
    sharding: Sharding<'_>,
    scratch: Option<&Path>,
    progress: &dyn Progress,
) -> Result<LoadedFacts<MemberSide>, BuildError> {
    let (consent_path, ledger_url) = match &f.consent {
        ConsentSourceArg::File(path) => (Some(path), None),
        ConsentSourceArg::Store(url) => (None, Some(url.as_str())),
    };
    if f.members.is_none() && ledger_url.is_none() {
        return Err(no_members());
    }
    progress.stage("member facts", None);
    let dir = PrivateDir::new(scratch, "member-facts")?;
    let split_dir = dir.path();
    let catalogue = f.catalogue();
    let split = |path: &Path, table: &'static str, member_column: usize| {
        with_local(path, move |local| {
            let mut parts = Partitioner::new(split_dir, table, member_column, sharding);
            read(local, table, |b, first| parts.push(b, first))?;
            parts.finish()
        })
    };
    // Every file is read and split on a thread of its own; they are taken in a fixed order, as
    // in `load_facts`, so the inputs' order and the first error reported do not depend on
    // which finished first.
    let mut inputs = Vec::new();
    let tables = std::thread::scope(|scope| {
        let residences =
            (f.residences.as_deref()).map(|p| scope.spawn(move || split(p, "residences", 0)));
        let notices = (f.notices.as_deref()).map(|p| scope.spawn(move || split(p, "notices", 0)));
        let erasures =
            (f.erasures.as_deref()).map(|p| scope.spawn(move || split(p, "erasures", 0)));
        let catalogue = &catalogue;
        let consent = consent_path.map(|consent_path| {
            scope.spawn(move || {
                with_local(consent_path, |local| {
                    let rule = ConsentRule {
                        path: local,
                        purpose,
                        as_of,
                        catalogue,
                    };
                    let mut ignored = IgnoredPurposes::new();
                    let mut parts = Partitioner::new(split_dir, "consent", 1, sharding);
                    read(local, "consent", |b, first| {
                        rule.batch(b, RowNumbers::From(first), None, &mut ignored)?;
                        parts.push(b, first)
                    })?;
                    Ok((parts.finish()?, ignored))
                })
            })
        });
        let ledger = ledger_url
            .map(|url| scope.spawn(move || split_ledger(url, purpose, as_of, split_dir, sharding)));
        let members = match &f.members {
            Some(path) => {
                let (members, sha256) = split(path, "members", 0)?;
                inputs.push(input_ref("members", path, sha256));
                Some((path.clone(), members))
            }
            None => None,
        };
        let mut taken =
            |path: &Option<PathBuf>, table: &str, reader: Option<_>| match (path, reader) {
                (Some(path), Some(reader)) => {
                    let (runs, sha256) = joined(reader)?;
                    inputs.push(input_ref(table, path, sha256));
                    Ok::<_, BuildError>(Some((path.clone(), runs)))
                }
                _ => Ok(None),
            };
        let residences = taken(&f.residences, "residences", residences)?;
        let notices = taken(&f.notices, "notices", notices)?;
        let erasures = taken(&f.erasures, "erasures", erasures)?;
        let (consent, ledger, ignored) = match (consent_path, consent, ledger) {
            (Some(path), Some(reader), _) => {
                let ((runs, ignored), sha256) = joined(reader)?;
                inputs.push(input_ref("consent", path, sha256));
                (Some((path.clone(), runs)), None, ignored)
            }
            (_, _, Some(reader)) => {
                let split = joined(reader)?;
                inputs.push(InputRef {
                    table: "ledger_snapshot".into(),
                    source: split.backend.into(),
                    sha256: split.sha256,
                });
                let ledger = LedgerSide {
                    url: split.url,
                    runs: split.runs,
                    events: split.totals.events,
                    from_files: Default::default(),
                    merged: Default::default(),
                    from_ledger: Default::default(),
                };
                (None, Some(ledger), split.totals.ignored_purposes)
            }
            _ => return Err(BuildError::Engine("no consent source was read".into())),
        };
        Ok::<_, BuildError>((
            members, residences, notices, erasures, consent, ledger, ignored,
        ))
    })?;
    let (members, residences, notices, erasures, consent, ledger, ignored_purposes) = tables;
    let sharded = ShardedFacts {
        _dir: dir,
        shards: sharding.shards,
        purpose: purpose.clone(),
        as_of,
        catalogue: catalogue.iter().map(|c| (*c).to_owned()).collect(),
        members,
        residences,
        notices,
        erasures,
        consent,
        ledger,
        folded_rows: Default::default(),
    };
    progress.figure("member-side rows split by shard", sharded.split_rows());
    progress.finish_stage();
    Ok(LoadedFacts {
        members: MemberSide::ByShard(Box::new(sharded)),
        inputs,
        summary: FactsSummary {
            ignored_purposes,
            member_sources: None,
        },
    })
}

/// A table's rows by shard, with the input as the user named it (for errors).
type Split = (PathBuf, TableRuns);

/// The member-side input rows of a build split by keyed shard ([`load_facts_by_shard`]).
#[derive(Debug)]
pub(crate) struct ShardedFacts {
    /// Holds the split rows; removed when dropped.
    _dir: PrivateDir,
    shards: u32,
    purpose: Purpose,
    as_of: Timestamp,
    catalogue: Vec<String>,
    members: Option<Split>,
    residences: Option<Split>,
    notices: Option<Split>,
    erasures: Option<Split>,
    /// The consent file's events (or none, with the ledger as the consent source).
    consent: Option<Split>,
    /// The ledger's snapshot, when it is the consent source.
    ledger: Option<LedgerSide>,
    /// Rows read back by [`ShardedFacts::fold`] so far, every table (a ledger member is a row).
    folded_rows: AtomicU64,
}

/// A ledger snapshot split by shard, and what the folds merged of it so far.
#[derive(Debug)]
struct LedgerSide {
    /// The ledger, without its password (for messages).
    url: String,
    runs: LedgerRuns,
    /// Consent events it held up to the cut-off.
    events: u64,
    /// Members the folds found in the files (before merging the ledger's).
    from_files: AtomicU64,
    /// Members of both the files and the ledger, merged by the folds.
    merged: AtomicU64,
    /// Members the folds took from the ledger alone.
    from_ledger: AtomicU64,
}

/// A ledger's snapshot split by shard ([`split_ledger`]).
struct SplitLedger {
    url: String,
    backend: &'static str,
    runs: LedgerRuns,
    totals: cg_ledger::SnapshotTotals,
    sha256: String,
}

/// Streams the snapshot of the ledger at `url` as of `as_of` into runs by shard in `dir`,
/// digesting it on the way ([`LedgerDigest`], as [`load_ledger`] does).
fn split_ledger(
    url: &str,
    purpose: &Purpose,
    as_of: Timestamp,
    dir: &Path,
    sharding: Sharding<'_>,
) -> Result<SplitLedger, BuildError> {
    let mut store = cg_ledger::open_existing(url).map_err(BuildError::Ledger)?;
    let mut parts = LedgerPartitioner::new(dir, sharding);
    let mut digest = LedgerDigest::default();
    let mut failed = None;
    let totals = store.facts_by_member(purpose, as_of, &mut |id, m| {
        digest.add(id, &m);
        parts.push(id, m).map_err(|e| {
            let stopped = cg_ledger::LedgerError::Database {
                backend: "build",
                message: e.to_string(),
            };
            failed = Some(e);
            stopped
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let totals = totals.map_err(BuildError::Ledger)?;
    Ok(SplitLedger {
        url: redact_url(url),
        backend: store.backend(),
        runs: parts.finish()?,
        totals,
        sha256: digest.finish(),
    })
}

impl ShardedFacts {
    /// How many shards the rows are split into.
    pub(crate) fn shards(&self) -> u32 {
        self.shards
    }

    /// The members of `shard` with their facts folded as [`load_facts`] folds them: members,
    /// then residences, notices, erasures and consent added in that order, each table's rows
    /// in file order. A member's rows are all in its shard, so this is every fact of each.
    pub(crate) fn fold(&self, shard: u32) -> Result<Members, BuildError> {
        let read = |runs: &TableRuns| -> Result<Vec<RecordBatch>, BuildError> {
            let batches = runs.batches(shard)?;
            let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            self.folded_rows.fetch_add(rows, Relaxed);
            Ok(batches)
        };
        let mut members = Members::default();
        if let Some((path, runs)) = &self.members {
            for b in read(runs)? {
                add_members(&mut members, path, &b, RowNumbers::Listed(row_numbers(&b)?))?;
            }
        }
        if let Some((_, runs)) = &self.residences {
            let mut rows = Vec::new();
            for b in read(runs)? {
                residences_of(&b, &mut rows);
            }
            add_residences(rows, &mut members);
        }
        let dated = |split: &Option<Split>, at: usize| -> Result<_, BuildError> {
            let mut rows = Vec::new();
            if let Some((_, runs)) = split {
                for b in read(runs)? {
                    dated_of(&b, at, &mut rows);
                }
            }
            Ok(rows)
        };
        earliest(dated(&self.notices, 2)?, &mut members, |m| &mut m.notice_at);
        earliest(dated(&self.erasures, 1)?, &mut members, |m| {
            &mut m.erasure_requested_at
        });
        if let Some((path, runs)) = &self.consent {
            let catalogue: Vec<&str> = self.catalogue.iter().map(String::as_str).collect();
            let rule = ConsentRule {
                path,
                purpose: &self.purpose,
                as_of: self.as_of,
                catalogue: &catalogue,
            };
            let mut folds = ConsentFolds::default();
            let mut ignored = IgnoredPurposes::new();
            for b in read(runs)? {
                rule.batch(
                    &b,
                    RowNumbers::Listed(row_numbers(&b)?),
                    Some(&mut folds),
                    &mut ignored,
                )?;
            }
            add_consent(folds, &mut members);
        }
        // The ledger's members last, merged as `load_ledger` merges them after the files.
        if let Some(ledger) = &self.ledger {
            let from_files = members.len() as u64;
            let ledger_members = ledger.runs.members(shard)?;
            self.folded_rows
                .fetch_add(ledger_members.len() as u64, Relaxed);
            let mut counts = LedgerCounts::default();
            for (id, m) in ledger_members {
                merge_ledger_member(&mut members, id, m, &mut counts);
            }
            ledger.from_files.fetch_add(from_files, Relaxed);
            ledger.merged.fetch_add(counts.merged, Relaxed);
            ledger.from_ledger.fetch_add(counts.from_ledger, Relaxed);
        }
        Ok(members)
    }

    /// Checks, once every shard is folded (each once), that the folds read back every row
    /// split: a row lost between the split and the fold (a consent withdrawal among them)
    /// fails the build instead of going unseen. With the ledger, returns where the members
    /// came from (the manifest's `member_sources`), and fails closed on a ledger that gave
    /// the build nothing, as [`load_facts`] does.
    pub(crate) fn finish_folds(&self) -> Result<Option<MemberSources>, BuildError> {
        let split = self.split_rows();
        let folded = self.folded_rows.load(Relaxed);
        if folded != split {
            return Err(BuildError::Engine(format!(
                "the member facts' folds read {folded} rows back of the {split} split by shard"
            )));
        }
        let Some(ledger) = &self.ledger else {
            return Ok(None);
        };
        let (from_files, merged, from_ledger) = (
            ledger.from_files.load(Relaxed),
            ledger.merged.load(Relaxed),
            ledger.from_ledger.load(Relaxed),
        );
        let counts = LedgerCounts {
            events: ledger.events,
            from_ledger,
            merged,
        };
        ledger_not_empty(&counts, &ledger.url, self.as_of)?;
        Ok(Some(MemberSources {
            files_only: from_files - merged,
            ledger_only: from_ledger,
            merged,
            ledger_events: ledger.events,
        }))
    }

    /// Every row split, over all tables (a ledger member counts as a row).
    fn split_rows(&self) -> u64 {
        let tables = [
            &self.members,
            &self.residences,
            &self.notices,
            &self.erasures,
            &self.consent,
        ];
        tables
            .iter()
            .filter_map(|t| t.as_ref().map(|(_, r)| r.rows()))
            .sum::<u64>()
            + self.ledger.as_ref().map_or(0, |l| l.runs.members_split())
    }
}

/// An input of the manifest: a table, its file's name and digest.
fn input_ref(table: &str, path: &Path, sha256: String) -> InputRef {
    InputRef {
        table: table.into(),
        source: file_name(path),
        sha256,
    }
}

/// A reader thread's result (a panic is an error, not a crash of the build).
fn joined<T>(
    reader: std::thread::ScopedJoinHandle<'_, Result<T, BuildError>>,
) -> Result<T, BuildError> {
    reader
        .join()
        .unwrap_or_else(|_| Err(BuildError::Engine("a member-facts reader panicked".into())))
}

/// A ledger URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The digest of a ledger's snapshot as a build read it (the manifest's `ledger_snapshot`
/// input, part of the dataset's id): every member [`cg_ledger::Store::facts_by_member`] gave,
/// in id order, from explicit fields (not `Debug` output, whose format is not a stable
/// contract), so that the id does not change with the toolchain and changes with any ledger
/// fact that can change a decision. The files' facts are in their own inputs' digests, and the
/// merge of the two is a function of both. Taken as the snapshot streams by, so a distributed
/// build's client, which never holds every member, computes the same digest.
#[derive(Default)]
pub(crate) struct LedgerDigest(Sha256);

impl LedgerDigest {
    /// Adds the next member (ids ascending).
    pub(crate) fn add(&mut self, id: i64, member: &cg_ledger::LedgerMember) {
        let m = &member.facts;
        let t = |t: Option<Timestamp>| t.map_or(String::from("-"), |t| t.micros().to_string());
        let explicit = m.consent.explicit.as_ref().map_or(String::from("-"), |c| {
            format!(
                "{}/{}/{}/{}",
                c.granted,
                c.at.micros(),
                c.source.as_str(),
                c.notice_version.as_deref().unwrap_or("")
            )
        });
        let gpc = t(m.consent.gpc_signal.as_ref().map(|g| g.at));
        let residences: Vec<String> = m
            .residences
            .iter()
            .map(|(at, c)| format!("{}@{}", c.as_deref().unwrap_or("-"), at.micros()))
            .collect();
        self.0.update(format!(
            "{id}\0{}\0{}\0{}\0{}\0{}\0{}\0{}\0{explicit}\0{gpc}\0{}\0{}\0{}\0v3\n",
            member.recorded,
            m.country.as_deref().unwrap_or("-"),
            residences.join(","),
            m.birth_date.map_or(String::from("-"), |d| d.to_string()),
            t(m.closed_at),
            t(m.erasure_requested_at),
            t(m.notice_at),
            m.other_purpose_grant,
            m.display_name.as_deref().unwrap_or("-"),
            m.handle.as_deref().unwrap_or("-"),
        ));
    }

    /// The digest, hex.
    pub(crate) fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::keyed_shard;

    /// A members CSV of `rows` members (ids `0..rows`), more than one reader batch when
    /// `rows` > 65 536; `edit` may change a row's line.
    fn members_csv(dir: &Path, rows: usize, edit: impl Fn(usize, String) -> String) -> PathBuf {
        let mut text = String::from("member_id,country,birth_date,display_name\n");
        for i in 0..rows {
            let line = format!("{i},DE,1990-01-{:02},Member {i}", 1 + i % 28);
            text.push_str(&edit(i, line));
            text.push('\n');
        }
        let path = dir.join(format!("members-{}.csv", rand_name()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn rand_name() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    fn bad_row(e: BuildError) -> (u64, String, String) {
        match e {
            BuildError::BadRow {
                row,
                column,
                message,
                ..
            } => (row, column, message),
            other => panic!("not a bad row: {other}"),
        }
    }

    #[test]
    fn members_of_every_batch_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = members_csv(dir.path(), 150_000, |_, l| l);
        let members = load_members(&path).unwrap();
        assert_eq!(members.len(), 150_000);
        for id in [0, 65_535, 65_536, 149_999] {
            let m = &members[&id];
            assert_eq!(m.country.as_deref(), Some("DE"));
            assert_eq!(
                m.display_name.as_deref(),
                Some(format!("Member {id}").as_str())
            );
        }
    }

    /// The duplicate reported is the first in file order, wherever the batches are, as a
    /// reader on one thread would report it; a later bad record does not hide it.
    #[test]
    fn the_first_duplicate_in_file_order_is_named_by_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let duplicate_at = |at: usize| {
            let path = members_csv(dir.path(), 140_000, |i, l| {
                if i == at {
                    l.replacen(&format!("{i},"), "5,", 1)
                } else if i == 139_000 {
                    "not a number,DE,1990-01-01,x".into()
                } else {
                    l
                }
            });
            bad_row(load_members(&path).unwrap_err())
        };
        let (early, column, message) = duplicate_at(10);
        assert_eq!(column, "member_id");
        assert!(message.contains("duplicate member id 5"), "{message}");
        let (late, _, message) = duplicate_at(100_010);
        assert!(message.contains("duplicate member id 5"), "{message}");
        assert_eq!(late - early, 100_000);
    }

    fn corpus_inputs(dir: &Path, ext: &str) -> FactInputs {
        FactInputs {
            members: Some(dir.join(format!("members.{ext}"))),
            consent: ConsentSourceArg::File(dir.join(format!("consent.{ext}"))),
            residences: Some(dir.join(format!("residences.{ext}"))),
            notices: Some(dir.join(format!("notices.{ext}"))),
            erasures: Some(dir.join(format!("erasures.{ext}"))),
            purposes: Vec::new(),
        }
    }

    fn by_shard(f: &FactInputs, as_of: Timestamp, shards: u32) -> LoadedFacts<MemberSide> {
        let sharding = Sharding {
            key: b"shard key",
            shards,
        };
        let purpose = Purpose::genai_training();
        load_facts_by_shard(
            f,
            &purpose,
            as_of,
            sharding,
            None,
            &cg_model::progress::NoProgress,
        )
        .unwrap()
    }

    /// Rows split by shard and folded a shard at a time give every member exactly the facts
    /// the whole load gives (residences, notices, erasures and consent events of every kind
    /// in the generated corpus), each shard only its own members, the same mentions table,
    /// and the same inputs and summary (which name the dataset) — in both input formats, with
    /// one shard and many.
    #[test]
    fn facts_folded_by_shard_are_the_facts_loaded_whole() {
        for format in [cg_io::Format::Parquet, cg_io::Format::Csv] {
            let ext = if format == cg_io::Format::Csv {
                "csv"
            } else {
                "parquet"
            };
            let (corpus, _) = cg_test_support::small_corpus(3_000, 10, format);
            let inputs = corpus_inputs(corpus.path(), ext);
            let purpose = Purpose::genai_training();
            let policy = std::sync::Arc::new(
                cg_policy::Policy::bundled("timeline", Default::default()).unwrap(),
            );
            for as_of in ["2024-11-01", "2025-12-01"] {
                let as_of = Timestamp::parse(as_of).unwrap();
                let whole =
                    load_facts(&inputs, &purpose, as_of, &cg_model::progress::NoProgress).unwrap();
                assert!(whole.members.values().any(|m| m.consent.explicit.is_some()));
                assert!(
                    whole
                        .members
                        .values()
                        .any(|m| m.erasure_requested_at.is_some())
                );
                for shards in [1, 7, 64] {
                    let split = by_shard(&inputs, as_of, shards);
                    assert_eq!(split.inputs, whole.inputs, "{ext}, {shards} shards");
                    assert_eq!(split.summary, whole.summary, "{ext}, {shards} shards");
                    let MemberSide::ByShard(sharded) = &split.members else {
                        panic!("a file-consent load is split by shard");
                    };
                    // The mentions tables taken a shard at a time, as the client writes them,
                    // are together the whole load's.
                    let engine = cg_policy::Engine::new(policy.clone(), purpose.clone(), as_of);
                    let mut mentions = crate::facts_data::MentionsData::default();
                    let mut seen = 0;
                    for shard in 0..shards {
                        let members = sharded.fold(shard).unwrap();
                        for (id, facts) in &members {
                            assert_eq!(keyed_shard(b"shard key", *id, shards), shard);
                            assert_eq!(facts, &whole.members[id], "member {id}");
                        }
                        let mut part = crate::gate::MentionsTable::new(&engine);
                        part.add(&members);
                        let part = part.finish();
                        mentions.included.extend(part.included);
                        mentions.names.extend(part.names);
                        seen += members.len();
                    }
                    assert_eq!(seen, whole.members.len(), "{ext}, {shards} shards");
                    mentions.included.sort_unstable();
                    mentions.names.sort_unstable_by_key(|(id, _, _)| *id);
                    let ctx = cg_policy::EvalContext {
                        purpose: purpose.clone(),
                        as_of,
                    };
                    let expected =
                        crate::gate::Gate::mentions_data_of(policy.clone(), &ctx, &whole.members);
                    assert!(!expected.included.is_empty() && !expected.names.is_empty());
                    assert_eq!(mentions, expected, "{ext}, {shards} shards");
                    assert_eq!(sharded.finish_folds().unwrap(), None);
                    let held = by_shard(&inputs, as_of, shards).members.into_held();
                    let (held, sources) = held.unwrap();
                    assert_eq!(held, whole.members);
                    assert_eq!(sources, None);
                }
            }
        }
    }

    /// A shard left unfolded (or folded twice) is a count of rows that differs from the
    /// split's: refused.
    #[test]
    fn every_split_row_must_be_folded_once() {
        let (corpus, _) = cg_test_support::small_corpus(300, 10, cg_io::Format::Parquet);
        let inputs = corpus_inputs(corpus.path(), "parquet");
        let as_of = Timestamp::parse("2025-12-01").unwrap();
        let MemberSide::ByShard(sharded) = by_shard(&inputs, as_of, 4).members else {
            panic!("split by shard");
        };
        for shard in 0..3 {
            sharded.fold(shard).unwrap();
        }
        let err = sharded.finish_folds().unwrap_err();
        assert!(err.to_string().contains("split by shard"), "{err}");
        sharded.fold(3).unwrap();
        sharded.finish_folds().unwrap();
        sharded.fold(3).unwrap();
        assert!(sharded.finish_folds().is_err());
    }

    /// With the ledger as the consent source, its snapshot streamed and split by shard and
    /// merged in each shard's fold gives every member exactly the facts the whole load gives,
    /// the same inputs (the snapshot's digest among them, which names the dataset) and the
    /// same member sources, once every shard is folded: the ledger alone, the ledger beside
    /// member files it has no rows for, and both holding the same members — on SQLite and,
    /// where the tests have one, PostgreSQL. A ledger member is a row the count check counts.
    #[test]
    fn ledger_facts_folded_by_shard_are_the_facts_loaded_whole() {
        let (_corpus, summary) = cg_test_support::small_corpus(1_500, 10, cg_io::Format::Parquet);
        let table = |name: &str| {
            summary
                .tables
                .iter()
                .find(|t| t.table == name)
                .map(|t| t.path.clone())
                .unwrap()
        };
        let scratch = cg_test_support::tempdir();
        let pg = cg_test_support::PgDatabase::create();
        let mut urls = vec![format!(
            "sqlite:{}",
            scratch.path().join("whole.sqlite").display()
        )];
        urls.extend(pg.as_ref().map(|db| db.url().to_owned()));
        for url in &urls {
            let mut store = cg_ledger::open(url).unwrap();
            for name in ["members", "consent", "residences", "notices", "erasures"] {
                cg_ledger::import_file(
                    store.as_mut(),
                    &table(name),
                    &cg_model::progress::NoProgress,
                )
                .unwrap();
            }
        }
        let partial = format!("sqlite:{}", scratch.path().join("partial.sqlite").display());
        let mut store = cg_ledger::open(&partial).unwrap();
        for name in ["consent", "erasures"] {
            cg_ledger::import_file(
                store.as_mut(),
                &table(name),
                &cg_model::progress::NoProgress,
            )
            .unwrap();
        }
        drop(store);
        let ledger_only = |url: &str| FactInputs {
            members: None,
            consent: ConsentSourceArg::Store(url.to_owned()),
            residences: None,
            notices: None,
            erasures: None,
            purposes: Vec::new(),
        };
        let with_files = |url: &str| FactInputs {
            members: Some(table("members")),
            residences: Some(table("residences")),
            notices: Some(table("notices")),
            ..ledger_only(url)
        };
        let mut cases: Vec<(&str, FactInputs)> = Vec::new();
        for url in &urls {
            cases.push(("the ledger alone", ledger_only(url)));
            cases.push(("files and the ledger, both", with_files(url)));
        }
        cases.push(("files beside a ledger of events", with_files(&partial)));
        let purpose = Purpose::genai_training();
        let as_of = Timestamp::parse("2025-12-01").unwrap();
        for (case, inputs) in &cases {
            let whole =
                load_facts(inputs, &purpose, as_of, &cg_model::progress::NoProgress).unwrap();
            let sources = whole.summary.member_sources.unwrap();
            assert!(whole.members.len() >= 1_500, "{case}");
            for shards in [1, 16] {
                let split = by_shard(inputs, as_of, shards);
                assert_eq!(split.inputs, whole.inputs, "{case}, {shards} shards");
                assert!(split.inputs.iter().any(|i| i.table == "ledger_snapshot"));
                let MemberSide::ByShard(sharded) = &split.members else {
                    panic!("a ledger load is split by shard");
                };
                let mut seen = 0;
                for shard in 0..shards {
                    for (id, facts) in sharded.fold(shard).unwrap() {
                        assert_eq!(keyed_shard(b"shard key", id, shards), shard);
                        assert_eq!(facts, whole.members[&id], "{case}: member {id}");
                        seen += 1;
                    }
                }
                assert_eq!(seen, whole.members.len(), "{case}, {shards} shards");
                assert_eq!(sharded.finish_folds().unwrap(), Some(sources), "{case}");
            }
        }
        // Merged in all three ways: ledger-only members, file-only ones, and both.
        let files_and_partial = load_facts(
            &with_files(&partial),
            &purpose,
            as_of,
            &cg_model::progress::NoProgress,
        )
        .unwrap();
        let sources = files_and_partial.summary.member_sources.unwrap();
        assert!(sources.merged > 0 && sources.files_only > 0 && sources.ledger_events > 0);
        // An empty ledger fails closed on both paths.
        let empty = format!("sqlite:{}", scratch.path().join("empty.sqlite").display());
        drop(cg_ledger::open(&empty).unwrap());
        let err = load_facts(
            &ledger_only(&empty),
            &purpose,
            as_of,
            &cg_model::progress::NoProgress,
        )
        .unwrap_err();
        assert!(err.to_string().contains("holds no member facts"), "{err}");
        let split = by_shard(&ledger_only(&empty), as_of, 4);
        let MemberSide::ByShard(sharded) = &split.members else {
            panic!("split by shard");
        };
        for shard in 0..4 {
            assert!(sharded.fold(shard).unwrap().is_empty());
        }
        let err = sharded.finish_folds().unwrap_err();
        assert!(err.to_string().contains("holds no member facts"), "{err}");
    }

    /// The split files are private and go with the loaded facts.
    #[test]
    fn the_split_rows_are_private_and_removed_with_the_facts() {
        let (corpus, _) = cg_test_support::small_corpus(200, 10, cg_io::Format::Parquet);
        let scratch = cg_test_support::tempdir();
        let inputs = corpus_inputs(corpus.path(), "parquet");
        let split = load_facts_by_shard(
            &inputs,
            &Purpose::genai_training(),
            Timestamp::parse("2025-12-01").unwrap(),
            Sharding {
                key: b"k",
                shards: 4,
            },
            Some(scratch.path()),
            &cg_model::progress::NoProgress,
        )
        .unwrap();
        let dirs: Vec<_> = std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(dirs.len(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dirs[0]), 0o700);
        let files: Vec<_> = std::fs::read_dir(&dirs[0])
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() >= 5, "a chunk per table: {files:?}");
        assert!(files.iter().all(|f| mode(f) == 0o600));
        drop(split);
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }

    /// A repeated member id is refused when its shard is folded, naming the repeat's row in
    /// the file; a misspelt purpose is refused while the rows are split, naming its row.
    #[test]
    fn bad_rows_are_named_by_their_row_when_split_by_shard() {
        let dir = cg_test_support::tempdir();
        let members = members_csv(dir.path(), 100, |i, l| {
            if i == 60 {
                l.replacen("60,", "7,", 1)
            } else {
                l
            }
        });
        let consent = dir.path().join("consent.csv");
        std::fs::write(
            &consent,
            "member_id,purpose,granted,ts\n3,genai_training,true,2025-01-01\n\
             4,genai_trainin,false,2025-01-02\n",
        )
        .unwrap();
        let inputs = |members: PathBuf| FactInputs {
            members: Some(members),
            consent: ConsentSourceArg::File(consent.clone()),
            residences: None,
            notices: None,
            erasures: None,
            purposes: Vec::new(),
        };
        let at = Timestamp::parse("2025-12-01").unwrap();
        let err = load_facts_by_shard(
            &inputs(members.clone()),
            &Purpose::genai_training(),
            at,
            Sharding {
                key: b"k",
                shards: 3,
            },
            None,
            &cg_model::progress::NoProgress,
        )
        .unwrap_err();
        let (row, column, message) = bad_row(err);
        assert_eq!((row, column.as_str()), (2, "purpose"), "{message}");

        std::fs::write(
            &consent,
            "member_id,purpose,granted,ts\n3,genai_training,true,2025-01-01\n",
        )
        .unwrap();
        let split = by_shard(&inputs(members), at, 3);
        let MemberSide::ByShard(sharded) = split.members else {
            panic!("split by shard");
        };
        let shard = keyed_shard(b"shard key", 7, 3);
        let (row, column, message) = bad_row(sharded.fold(shard).unwrap_err());
        assert_eq!(column, "member_id");
        assert!(message.contains("duplicate member id 7"), "{message}");
        assert_eq!(row, 61, "member 0 is row 1");
    }

    /// A bad record in a later batch fails the load (the reader's error is not lost when the
    /// members made so far are fine), and the load ends.
    #[test]
    fn a_bad_record_in_a_later_batch_fails_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = members_csv(dir.path(), 140_000, |i, l| {
            if i == 139_000 {
                "not a number,DE,1990-01-01,x".into()
            } else {
                l
            }
        });
        let e = load_members(&path).unwrap_err();
        assert!(e.to_string().contains("members-"), "names the file: {e}");
    }
}
