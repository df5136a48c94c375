//! Member-side facts, loaded once per build: members, residence history, notices, erasures,
//! closures and the as-of consent state, from input files or the ledger's snapshot.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMicrosecondType};
use cg_model::consent::{ConsentChoice, ConsentEvent, ConsentSource};
use cg_model::instant::days_to_date;
use cg_model::{ConsentState, EventId, MemberId, Purpose, Timestamp};
use rustc_hash::FxHashMap;
use time::Date;

use crate::BuildError;

/// What the gate knows about one member.
#[derive(Clone, Debug, Default)]
pub struct Member {
    /// Current country, raw.
    pub country: Option<String>,
    /// Residence history `(valid_from, raw country)`, sorted.
    pub residences: Vec<(Timestamp, Option<String>)>,
    /// Birth date.
    pub birth_date: Option<Date>,
    /// Earliest erasure request or closure.
    pub erased_at: Option<Timestamp>,
    /// Earliest erasure request (GDPR Art 17): from then on the member's rows are not even
    /// recorded by id in a build's decisions.
    pub erasure_requested_at: Option<Timestamp>,
    /// Earliest notice delivery.
    pub notice_at: Option<Timestamp>,
    /// As-of consent state for the build's purpose.
    pub consent: ConsentState,
    /// A grant for another purpose only.
    pub other_purpose_grant: bool,
    /// Display name (for scrubbing mentions).
    pub display_name: Option<String>,
    /// Handle (for scrubbing mentions).
    pub handle: Option<String>,
}

impl Member {
    /// The raw country at `at`: the latest history entry at or before `at`, else the current.
    pub fn country_at(&self, at: Timestamp) -> Option<&str> {
        self.residences
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .map(|(_, c)| c.as_deref())
            .unwrap_or(self.country.as_deref())
    }
}

/// All members, by id.
pub type Members = FxHashMap<i64, Member>;

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
            let m = Member {
                country: country.is_valid(r).then(|| country.value(r).to_owned()),
                birth_date: birth
                    .is_valid(r)
                    .then(|| days_to_date(birth.value(r)))
                    .flatten(),
                erased_at: closed
                    .is_valid(r)
                    .then(|| Timestamp::from_micros(closed.value(r))),
                display_name: name.is_valid(r).then(|| name.value(r).to_owned()),
                handle: handle.is_valid(r).then(|| handle.value(r).to_owned()),
                ..Member::default()
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
        m.residences.sort_by_key(|(t, _)| *t);
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
                m.erased_at = Some(m.erased_at.map_or(t, |x| x.min(t)));
                m.erasure_requested_at = Some(m.erasure_requested_at.map_or(t, |x| x.min(t)));
            }
        }
        Ok(())
    })
}

/// Folds a consent-events file as of `as_of` for `purpose` (unknown purposes fail the build).
pub fn load_consent_events(
    path: &Path,
    purpose: &Purpose,
    as_of: Timestamp,
    members: &mut Members,
) -> Result<(), BuildError> {
    let mut events: FxHashMap<i64, Vec<ConsentEvent>> = FxHashMap::default();
    read(path, "consent", |b, first| {
        let eid = b.column(0).as_primitive::<Int64Type>();
        let id = b.column(1).as_primitive::<Int64Type>();
        let p = b.column(2).as_string::<i32>();
        let granted = b.column(3).as_boolean();
        let ts = b.column(4).as_primitive::<TimestampMicrosecondType>();
        let source = b.column(5).as_string::<i32>();
        let notice = b.column(6).as_string::<i32>();
        for r in 0..b.num_rows() {
            // The catalogue, not just the spelling: an objection under a misspelt purpose must
            // fail the build, not count as "another purpose" and vanish.
            let purpose_r = Purpose::known(p.value(r)).map_err(|e| BuildError::BadRow {
                file: path.display().to_string(),
                row: first + r as u64,
                column: "purpose".into(),
                message: e.to_string(),
            })?;
            let t = Timestamp::from_micros(ts.value(r));
            if t > as_of {
                continue;
            }
            events.entry(id.value(r)).or_default().push(ConsentEvent {
                event_id: eid.is_valid(r).then(|| EventId(eid.value(r))),
                member_id: MemberId(id.value(r)),
                purpose: purpose_r,
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
    for (id, evs) in events {
        if let Some(m) = members.get_mut(&id) {
            let (this, other): (Vec<&ConsentEvent>, Vec<&ConsentEvent>) =
                evs.iter().partition(|e| &e.purpose == purpose);
            m.consent = ConsentState::fold(this, as_of);
            m.other_purpose_grant = m.consent.explicit.is_none()
                && other
                    .iter()
                    .any(|e| e.granted && e.source != ConsentSource::Gpc);
        }
    }
    Ok(())
}

/// Takes consent state from the ledger's as-of snapshot.
pub fn load_consent_store(
    store: &mut dyn cg_ledger::Store,
    purpose: &Purpose,
    as_of: Timestamp,
    members: &mut Members,
) -> Result<u64, BuildError> {
    store
        .snapshot(purpose, as_of, &mut |row| {
            if let Some(m) = members.get_mut(&row.member_id.0) {
                m.consent = ConsentState {
                    explicit: row.explicit,
                    gpc_signal: row.gpc_at.map(|at| ConsentChoice {
                        granted: false,
                        at,
                        source: ConsentSource::Gpc,
                        notice_version: None,
                        event_id: None,
                    }),
                };
                m.other_purpose_grant = row.other_purpose_grant;
            }
            Ok(())
        })
        .map_err(|e| BuildError::Input(e.to_string()))
}
