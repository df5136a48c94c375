//! What-if before a policy change: decide every content row under two policies (decisions only,
//! no shards) and report what changes, by region × decision × headline reason, with examples.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use cg_model::progress::Progress;
use cg_model::{Purpose, Timestamp};
use cg_policy::{EvalContext, Policy};
use serde::Serialize;

use crate::BuildError;
use crate::config::FactInputs;
use crate::facts::load_facts;
use crate::gate::{Gate, Row};
use crate::manifest::PolicyRef;

/// An impact question.
#[derive(Debug)]
pub struct ImpactConfig {
    /// Member-side inputs.
    pub facts: FactInputs,
    /// Content file.
    pub content: PathBuf,
    /// Cut-off.
    pub as_of: Timestamp,
    /// Purpose.
    pub purpose: Purpose,
    /// The policy in force.
    pub from: Arc<Policy>,
    /// The proposed policy.
    pub to: Arc<Policy>,
    /// Example content ids per change.
    pub examples: usize,
}

/// One kind of change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Region of the author at the cut-off.
    pub region: String,
    /// Decision under `from`.
    pub from_decision: String,
    /// Headline reason under `from`.
    pub from_reason: String,
    /// Decision under `to`.
    pub to_decision: String,
    /// Headline reason under `to`.
    pub to_reason: String,
    /// Content rows.
    pub rows: u64,
    /// Distinct members.
    pub members: u64,
    /// Example content ids (smallest first).
    pub examples: Vec<i64>,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct ImpactReport {
    /// Policy in force.
    pub from: PolicyRef,
    /// Proposed policy.
    pub to: PolicyRef,
    /// Cut-off.
    pub as_of: String,
    /// Rows evaluated.
    pub rows: u64,
    /// Rows whose decision changes.
    pub rows_changed: u64,
    /// Members with at least one changed row.
    pub members_changed: u64,
    /// Rows kept (include or include_redacted) under each policy.
    pub kept_from: u64,
    /// Rows kept under the proposed policy.
    pub kept_to: u64,
    /// The changes, largest first.
    pub changes: Vec<Change>,
}

/// Runs the comparison.
pub fn impact(cfg: ImpactConfig, progress: &dyn Progress) -> Result<ImpactReport, BuildError> {
    let members = load_facts(&cfg.facts, &cfg.purpose, cfg.as_of, progress)?.members;
    let ctx = EvalContext {
        purpose: cfg.purpose.clone(),
        as_of: cfg.as_of,
    };
    let from = Gate::new(cfg.from.clone(), ctx.clone(), members.clone(), true, None)
        .map_err(BuildError::from)?;
    let to = Gate::new(cfg.to.clone(), ctx, members, true, None).map_err(BuildError::from)?;
    let contract = cg_io::schema::contract("content")
        .ok_or_else(|| BuildError::Input("no content contract".into()))?;
    type Key = (String, String, String, String, String);
    let mut changes: BTreeMap<Key, (u64, BTreeSet<i64>, Vec<i64>)> = BTreeMap::new();
    let (mut rows, mut changed, mut kept_from, mut kept_to) = (0u64, 0u64, 0u64, 0u64);
    let mut changed_members = BTreeSet::new();
    let mut failure: Option<BuildError> = None;
    progress.stage("impact", None);
    cg_io::read_table(&cfg.content, &contract, |b, _| {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let mem = b.column(1).as_primitive::<Int64Type>();
        let kinds = b.column(2).as_string::<i32>();
        let created = b.column(3).as_primitive::<TimestampMicrosecondType>();
        // Unreadable mentions fail the report: read as "names nobody" they would hide the
        // rows that must be redacted.
        let mentions = match crate::udf::mention_lists(b.column(5)) {
            Ok(m) => m,
            Err(e) => {
                failure = Some(BuildError::Source {
                    file: cfg.content.display().to_string(),
                    message: format!("column `mentions`: {e}"),
                });
                return Err(cg_io::ReadError::File {
                    path: cfg.content.clone(),
                    message: "impact failed".into(),
                });
            }
        };
        let batch: Vec<Row<'_>> = (0..b.num_rows())
            .map(|i| Row {
                content_id: ids.value(i),
                member_id: mem.is_valid(i).then(|| mem.value(i)),
                kind: kinds.is_valid(i).then(|| kinds.value(i)),
                created_at: created
                    .is_valid(i)
                    .then(|| Timestamp::from_micros(created.value(i))),
                shard: None,
            })
            .collect();
        let (a, z) = match (from.decide(&batch, &mentions), to.decide(&batch, &mentions)) {
            (Ok(a), Ok(z)) => (a, z),
            (Err(e), _) | (_, Err(e)) => {
                failure = Some(BuildError::Row(e));
                return Err(cg_io::ReadError::File {
                    path: cfg.content.clone(),
                    message: "impact failed".into(),
                });
            }
        };
        for (i, r) in batch.iter().enumerate() {
            rows += 1;
            let (va, vz) = match (from.outcome(a[i]), to.outcome(z[i])) {
                (Some(va), Some(vz)) => (va, vz),
                _ => continue,
            };
            kept_from += u64::from(va.decision().is_kept());
            kept_to += u64::from(vz.decision().is_kept());
            if va.decision() == vz.decision() {
                continue;
            }
            changed += 1;
            let headline =
                |v: &cg_model::Verdict| v.reasons().first().map_or("", |r| r.as_str()).to_owned();
            let key = (
                from.region_label(from.author(r.member_id, None).region)
                    .to_owned(),
                va.decision().to_string(),
                headline(&va),
                vz.decision().to_string(),
                headline(&vz),
            );
            let e = changes.entry(key).or_default();
            e.0 += 1;
            if let Some(m) = r.member_id {
                e.1.insert(m);
                changed_members.insert(m);
            }
            if e.2.len() < cfg.examples {
                e.2.push(r.content_id);
            }
        }
        progress.advance(b.num_rows() as u64);
        Ok(())
    })
    .map_err(|e| failure.take().unwrap_or(BuildError::Read(e)))?;
    progress.finish_stage();
    let mut changes: Vec<Change> = changes
        .into_iter()
        .map(
            |((region, fd, fr, td, tr), (rows, members, mut examples))| {
                examples.sort_unstable();
                Change {
                    region,
                    from_decision: fd,
                    from_reason: fr,
                    to_decision: td,
                    to_reason: tr,
                    rows,
                    members: members.len() as u64,
                    examples,
                }
            },
        )
        .collect();
    changes.sort_by(|a, b| b.rows.cmp(&a.rows).then_with(|| a.region.cmp(&b.region)));
    Ok(ImpactReport {
        from: PolicyRef {
            name: cfg.from.name().to_owned(),
            hash: cfg.from.hash().to_owned(),
        },
        to: PolicyRef {
            name: cfg.to.name().to_owned(),
            hash: cfg.to.hash().to_owned(),
        },
        as_of: cfg.as_of.to_string(),
        rows,
        rows_changed: changed,
        members_changed: changed_members.len() as u64,
        kept_from,
        kept_to,
        changes,
    })
}
