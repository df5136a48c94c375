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

use crate::BuildError;

/// All members, by id.
pub type Members = FxHashMap<i64, MemberFacts>;

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
pub fn load_members(path: &Path) -> Result<Members, BuildError> {
    let mut out = Members::default();
    read(path, "members", |b, first| {
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
            if out.insert(id.value(r), m).is_some() {
                return Err(BuildError::BadRow {
                    file: path.display().to_string(),
                    row: first + r as u64,
                    column: "member_id".into(),
                    message: format!("duplicate member id {}", id.value(r)),
                });
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Adds residence history.
pub fn load_residences(path: &Path, members: &mut Members) -> Result<(), BuildError> {
    read(path, "residences", |b, _| {
        let id = b.column(0).as_primitive::<Int64Type>();
        let country = b.column(1).as_string::<i32>();
        let from = b.column(2).as_primitive::<TimestampMicrosecondType>();
        for r in 0..b.num_rows() {
            if let Some(m) = members.get_mut(&id.value(r)) {
                m.residences.push((
                    Timestamp::from_micros(from.value(r)),
                    country.is_valid(r).then(|| country.value(r).to_owned()),
                ));
            }
        }
        Ok(())
    })?;
    for m in members.values_mut() {
        m.sort_residences();
    }
    Ok(())
}

/// Adds notice deliveries (the earliest counts).
pub fn load_notices(path: &Path, members: &mut Members) -> Result<(), BuildError> {
    read(path, "notices", |b, _| {
        let id = b.column(0).as_primitive::<Int64Type>();
        let at = b.column(2).as_primitive::<TimestampMicrosecondType>();
        for r in 0..b.num_rows() {
            if let Some(m) = members.get_mut(&id.value(r)) {
                let t = Timestamp::from_micros(at.value(r));
                m.notice_at = Some(m.notice_at.map_or(t, |x| x.min(t)));
            }
        }
        Ok(())
    })
}

/// Adds erasure requests (the earliest counts, with closures).
pub fn load_erasures(path: &Path, members: &mut Members) -> Result<(), BuildError> {
    read(path, "erasures", |b, _| {
        let id = b.column(0).as_primitive::<Int64Type>();
        let at = b.column(1).as_primitive::<TimestampMicrosecondType>();
        for r in 0..b.num_rows() {
            if let Some(m) = members.get_mut(&id.value(r)) {
                let t = Timestamp::from_micros(at.value(r));
                m.erasure_requested_at = Some(m.erasure_requested_at.map_or(t, |x| x.min(t)));
            }
        }
        Ok(())
    })
}

/// Folds a consent-events file as of `as_of` for `purpose`. Events of other purposes never
/// affect a decision: they are counted by name (the manifest's `ignored_purposes`); a purpose
/// that looks like a misspelling of the build's (edit distance 2 after normalisation) fails
/// the build naming both, so an objection cannot vanish under a typo. Catalogue purposes
/// (`catalogue`) other than the build's only tell "granted another purpose" apart from "no
/// event" in the reason code.
pub fn load_consent_events(
    path: &Path,
    purpose: &Purpose,
    as_of: Timestamp,
    catalogue: &[&str],
    members: &mut Members,
) -> Result<IgnoredPurposes, BuildError> {
    let mut folds: FxHashMap<i64, ConsentFold<'_>> = FxHashMap::default();
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
            if !members.contains_key(&id.value(r)) {
                continue;
            }
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
    for (id, fold) in folds {
        if let Some(m) = members.get_mut(&id) {
            fold.finish_into(m);
        }
    }
    Ok(ignored)
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
        .map_err(|e| BuildError::Input(format!("ledger: {e}")))?;
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
                members.insert(id, m.facts);
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
