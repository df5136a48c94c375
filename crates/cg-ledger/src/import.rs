//! Bulk import of input-contract files: the table is recognised by its columns, every row is
//! validated (file, row and column in errors), and the whole file goes in one transaction.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMicrosecondType};
use cg_model::consent::{ConsentEvent, ConsentSource};
use cg_model::instant::days_to_date;
use cg_model::progress::Progress;
use cg_model::{EventId, MemberId, Purpose, Timestamp};
use serde::Serialize;

use crate::Store;
use crate::model::{Erasure, LedgerError, MemberRecord, NewEvent, Notice, Record, Residence};

/// What an import wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Consent events stored.
    pub events: u64,
    /// Events skipped as already stored (same event id, same content).
    pub duplicates: u64,
    /// Members upserted.
    pub members: u64,
    /// Residence entries.
    pub residences: u64,
    /// Notices.
    pub notices: u64,
    /// Erasure requests.
    pub erasures: u64,
}

/// Which input table a file holds, judged by its columns.
pub fn table_of(path: &Path) -> Result<&'static str, LedgerError> {
    let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    for t in ["consent", "members", "residences", "notices", "erasures"] {
        if name == t || name.starts_with(&format!("{t}.")) || name.starts_with(&format!("{t}_")) {
            return Ok(t);
        }
    }
    if name.starts_with("consent_events") || name.starts_with("events") {
        return Ok("consent");
    }
    Err(LedgerError::UnknownTable {
        file: path.display().to_string(),
        message: "name it consent.*, members.*, residences.*, notices.* or erasures.*".into(),
    })
}

/// Imports one file into `store` in one transaction; any bad row rolls back the whole file.
/// Purposes must be in the default catalogue (see [`import_file_with`]).
pub fn import_file(
    store: &mut dyn Store,
    path: &Path,
    progress: &dyn Progress,
) -> Result<ImportReport, LedgerError> {
    import_file_with(store, path, cg_model::Purpose::DEFAULT_CATALOGUE, progress)
}

/// [`import_file`] accepting the purposes of `catalogue` (the default catalogue plus a
/// deployment's configured purposes).
pub fn import_file_with(
    store: &mut dyn Store,
    path: &Path,
    catalogue: &[&str],
    progress: &dyn Progress,
) -> Result<ImportReport, LedgerError> {
    let table = table_of(path)?;
    let contract = cg_io::schema::contract(table).ok_or_else(|| LedgerError::UnknownTable {
        file: path.display().to_string(),
        message: format!("no contract for `{table}`"),
    })?;
    // Read and validate everything first: nothing is written unless the whole file is good.
    let mut records = Vec::new();
    let file = path.display().to_string();
    // A members file names each member once (as `build` requires): a second row for the same
    // id is an error, not a silent "last row wins".
    let mut seen_members = std::collections::HashMap::new();
    cg_io::read_table(path, &contract, |batch, first_row| {
        to_records(
            table,
            &batch,
            first_row,
            &file,
            catalogue,
            &mut seen_members,
            &mut records,
        )
        .map_err(|e| match e {
            LedgerError::Input(inner) => inner,
            other => cg_io::ReadError::File {
                path: path.to_owned(),
                message: other.to_string(),
            },
        })
    })?;
    progress.stage(&format!("import {table}"), Some(records.len() as u64));
    let mut iter = records.into_iter().map(Ok);
    let report = store.import(&mut iter, progress)?;
    progress.finish_stage();
    Ok(report)
}

fn to_records(
    table: &str,
    b: &RecordBatch,
    first_row: u64,
    file: &str,
    catalogue: &[&str],
    seen_members: &mut std::collections::HashMap<i64, u64>,
    out: &mut Vec<Record>,
) -> Result<(), LedgerError> {
    let int = |i: usize| b.column(i).as_primitive::<Int64Type>();
    let ts = |i: usize| b.column(i).as_primitive::<TimestampMicrosecondType>();
    let text = |i: usize| b.column(i).as_string::<i32>();
    let opt_text = |i: usize, r: usize| {
        let c = text(i);
        c.is_valid(r).then(|| c.value(r).to_owned())
    };
    let opt_ts = |i: usize, r: usize| {
        let c = ts(i);
        c.is_valid(r).then(|| Timestamp::from_micros(c.value(r)))
    };
    for r in 0..b.num_rows() {
        let member = MemberId(int(if table == "consent" { 1 } else { 0 }).value(r));
        let record = match table {
            "consent" => {
                let purpose_text = text(2).value(r);
                let purpose = Purpose::in_catalogue(purpose_text, catalogue).map_err(|e| {
                    LedgerError::BadRow {
                        file: file.to_owned(),
                        row: first_row + r as u64,
                        column: "purpose".into(),
                        message: e.to_string(),
                    }
                })?;
                let ids = int(0);
                Record::Event(NewEvent {
                    event: ConsentEvent {
                        event_id: ids.is_valid(r).then(|| EventId(ids.value(r))),
                        member_id: member,
                        purpose,
                        granted: b.column(3).as_boolean().value(r),
                        ts: Timestamp::from_micros(ts(4).value(r)),
                        source: opt_text(5, r).map_or(ConsentSource::Import, ConsentSource::from),
                        notice_version: opt_text(6, r),
                    },
                    actor: Some("import".into()),
                    metadata: None,
                })
            }
            "members" => {
                let row = first_row + r as u64;
                if let Some(earlier) = seen_members.insert(member.0, row) {
                    return Err(LedgerError::BadRow {
                        file: file.to_owned(),
                        row,
                        column: "member_id".into(),
                        message: format!(
                            "duplicate member id {} (first on row {earlier})",
                            member.0
                        ),
                    });
                }
                let birth = b.column(2).as_primitive::<Date32Type>();
                Record::Member(MemberRecord {
                    member_id: member,
                    country: opt_text(1, r),
                    birth_date: birth
                        .is_valid(r)
                        .then(|| days_to_date(birth.value(r)))
                        .flatten(),
                    created_at: opt_ts(3, r),
                    closed_at: opt_ts(4, r),
                    display_name: opt_text(5, r),
                    handle: opt_text(6, r),
                })
            }
            "residences" => Record::Residence(Residence {
                member_id: member,
                country: opt_text(1, r),
                valid_from: Timestamp::from_micros(ts(2).value(r)),
            }),
            "notices" => Record::Notice(Notice {
                member_id: member,
                notice_version: text(1).value(r).to_owned(),
                delivered_at: Timestamp::from_micros(ts(2).value(r)),
            }),
            _ => Record::Erasure(Erasure {
                member_id: member,
                ts: Timestamp::from_micros(ts(1).value(r)),
            }),
        };
        out.push(record);
    }
    Ok(())
}
