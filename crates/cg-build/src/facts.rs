//! Member-side facts, loaded once per build into the one model every path decides on
//! ([`cg_model::MemberFacts`]): from input files (members, residence history, notices,
//! erasures, consent events), from the ledger as of the cut-off, or from both, merged with the
//! most protective reading ([`cg_model::MemberFacts::merge`]).

use std::path::Path;

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
use crate::layout::{file_name, hex};
use crate::manifest::{FactsSummary, InputRef, MemberSources};
use crate::store::with_local;

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
            if let Err(e) = add_members(&mut out, path, &batch, first) {
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

/// Adds one batch of the members file (its first row is row `first`) to `out`.
fn add_members(
    out: &mut Members,
    path: &Path,
    b: &RecordBatch,
    first: u64,
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
                row: first + r as u64,
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
        Ok(())
    })?;
    Ok(rows)
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
        let id = b.column(0).as_primitive::<Int64Type>();
        let at = b.column(at).as_primitive::<TimestampMicrosecondType>();
        rows.extend((0..b.num_rows()).map(|r| (id.value(r), Timestamp::from_micros(at.value(r)))));
        Ok(())
    })?;
    Ok(rows)
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
    read(path, "consent", |b, first| {
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
                    row: first + r as u64,
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
    })?;
    Ok((folds, ignored))
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
/// erasures, consent; one snapshot) and merges it into `members` with the most protective
/// reading. Members the ledger has a row for join the build; facts of members it has no row
/// for count only for members the files name. Returns the ledger's counts of other purposes.
pub fn load_ledger(
    store: &mut dyn cg_ledger::Store,
    purpose: &Purpose,
    as_of: Timestamp,
    members: &mut Members,
) -> Result<(IgnoredPurposes, LedgerCounts), BuildError> {
    let facts = store
        .facts_as_of(purpose, as_of)
        .map_err(BuildError::Ledger)?;
    let mut counts = LedgerCounts {
        events: facts.events,
        ..LedgerCounts::default()
    };
    for (id, m) in facts.members {
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
    Ok((facts.ignored_purposes, counts))
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

/// Member facts as a build loaded them.
#[derive(Debug)]
pub(crate) struct LoadedFacts {
    /// The members, by id.
    pub members: Members,
    /// Where each fact came from, with digests (the manifest's member-side `inputs`).
    pub inputs: Vec<InputRef>,
    /// Other purposes and member sources (recorded in the manifest).
    pub summary: FactsSummary,
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
        return Err(BuildError::Input(
            "no members: pass --members FILE, or --store to take members from the ledger".into(),
        ));
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
            let (ignored, counts) = load_ledger(store.as_mut(), purpose, as_of, &mut members)?;
            if counts.events == 0 && counts.from_ledger == 0 && counts.merged == 0 {
                // Fail closed: an empty ledger would read as "nobody ever objected".
                return Err(BuildError::Input(format!(
                    "the ledger `{}` holds no member facts or consent events as of {as_of}; pass --consent FILE, or import into the ledger first",
                    redact_url(url)
                )));
            }
            let digest = snapshot_digest(&members);
            inputs.push(InputRef {
                table: "ledger_snapshot".into(),
                source: store.backend().into(),
                sha256: digest,
            });
            member_sources = Some(MemberSources {
                files_only: file_members - counts.merged,
                ledger_only: counts.from_ledger,
                merged: counts.merged,
                ledger_events: counts.events,
            });
            ignored
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

/// Digest of every member fact the build used from a ledger (after merging with files), from
/// explicit fields (not `Debug` output, whose format is not a stable contract): the dataset id
/// must not change with the toolchain, and must change with any fact that can change a
/// decision.
fn snapshot_digest(members: &Members) -> String {
    let mut ids: Vec<&i64> = members.keys().collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    let t = |t: Option<Timestamp>| t.map_or(String::from("-"), |t| t.micros().to_string());
    for id in ids {
        let m = &members[id];
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
        h.update(format!(
            "{id}\0{}\0{}\0{}\0{}\0{}\0{}\0{explicit}\0{gpc}\0{}\0{}\0{}\0v2\n",
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
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
