//! `consentgate report build DIR`: one self-contained HTML page about a published dataset —
//! rows by region × decision, the reasons, redaction placeholders by entity type, the kept
//! content, where the manifest sits in the transparency log — and, with a second dataset, what
//! changed between the two (a policy change or a later cut-off). No JavaScript; charts are SVG
//! with titles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cg_model::manifest::RegionRows;
use serde::Serialize;

use crate::dataset::{DatasetFacts, TOKEN_METHOD};
use crate::html::{Bar, DECISION_COLOURS, bar_chart, decision_legend, esc, page};

/// Where a dataset's manifest is in the transparency log (from the ledger, when one is given).
#[derive(Clone, Debug, Serialize)]
pub struct LogPosition {
    /// The log's origin line.
    pub origin: Option<String>,
    /// Indices of the manifest entries for this dataset (one per distinct manifest).
    pub indices: Vec<u64>,
    /// Whether one of them records this manifest's SHA-256.
    pub this_manifest_logged: bool,
    /// The latest signed checkpoint: size and root (hex).
    pub checkpoint: Option<(u64, String)>,
}

/// Looks a dataset's manifest up in a ledger's log.
pub fn log_position(
    store: &mut dyn cg_ledger::Store,
    d: &DatasetFacts,
) -> Result<LogPosition, cg_ledger::LedgerError> {
    let entries = store.log_manifest_entries(&d.manifest.dataset_id)?;
    let checkpoints = store.log_checkpoints()?;
    let latest = checkpoints.last();
    Ok(LogPosition {
        origin: latest.and_then(|c| c.note.lines().next().map(str::to_owned)),
        indices: entries.iter().map(|(i, _)| *i).collect(),
        this_manifest_logged: entries
            .iter()
            .any(|(_, h)| cg_proof::hex(h) == d.manifest_sha256),
        checkpoint: latest.map(|c| (c.size, cg_proof::hex(&c.root))),
    })
}

/// Rows by region and decision: the manifest's exact table, or for manifests written before
/// it existed, the headline reading of `counts` (each row under its first reason).
pub fn regions(d: &DatasetFacts) -> (Vec<RegionRows>, bool) {
    regions_of(&d.manifest)
}

/// [`regions`] of a manifest; the flag says whether the table is exact.
pub fn regions_of(m: &cg_model::manifest::Manifest) -> (Vec<RegionRows>, bool) {
    if !m.rows_by_region.is_empty() || m.counts.is_empty() {
        return (m.rows_by_region.clone(), true);
    }
    let mut by: BTreeMap<String, RegionRows> = BTreeMap::new();
    let mut first: BTreeMap<(String, String), String> = BTreeMap::new();
    for c in &m.counts {
        let headline = first
            .entry((c.region.clone(), c.decision.clone()))
            .or_insert_with(|| c.reason.clone());
        if *headline != c.reason {
            continue;
        }
        let r = by.entry(c.region.clone()).or_insert_with(|| RegionRows {
            region: c.region.clone(),
            ..RegionRows::default()
        });
        match c.decision.as_str() {
            "include" => r.include += c.rows,
            "include_redacted" => r.include_redacted += c.rows,
            _ => r.exclude += c.rows,
        }
    }
    (by.into_values().collect(), false)
}

/// Rows per (decision, reason) over every region (a row with several reasons counts under
/// each).
pub fn reasons(d: &DatasetFacts) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for c in &d.manifest.counts {
        *out.entry((c.decision.clone(), c.reason.clone()))
            .or_default() += c.rows;
    }
    out
}

/// The stacked bar chart of rows by region × decision (SVG), as the build report and the
/// dashboard draw it.
pub fn region_chart(id: &str, rows: &[RegionRows]) -> String {
    bar_chart(
        id,
        "Rows by region and decision",
        "Stacked bars per region: included, included after redaction, excluded rows.",
        &region_bars(rows),
    )
}

fn region_bars(rows: &[RegionRows]) -> Vec<Bar<'static>> {
    rows.iter()
        .map(|r| Bar {
            label: r.region.clone(),
            segments: vec![
                ("include", r.include, DECISION_COLOURS[0].1),
                (
                    "include_redacted",
                    r.include_redacted,
                    DECISION_COLOURS[1].1,
                ),
                ("exclude", r.exclude, DECISION_COLOURS[2].1),
            ],
        })
        .collect()
}

fn signed(n: i128) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

/// Renders the report of `d`, compared with `compare` when given.
pub fn render(
    d: &DatasetFacts,
    compare: Option<&DatasetFacts>,
    log: Option<&LogPosition>,
) -> String {
    let m = &d.manifest;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Build report: <code>{id}</code></h1><p>Purpose <code>{purpose}</code> · as of <strong>{as_of}</strong> · policy <code>{policy}</code> (hash <code>{hash}</code>) · engine {engine} · consentgate {version} · built {created}</p>",
        id = esc(&m.dataset_id),
        purpose = esc(&m.purpose),
        as_of = esc(&m.as_of),
        policy = esc(&m.policy.name),
        hash = esc(&m.policy.hash),
        engine = esc(&m.engine),
        version = esc(&m.tool_version),
        created = esc(&m.created_at),
    );
    if d.verifies() {
        b.push_str(r#"<p id="verify" class="ok">✓ Every file matches the manifest (shards, decision record, member commitment, dataset card).</p>"#);
    } else {
        b.push_str(r#"<div id="verify" class="bad" role="alert"><p>✗ The dataset does not match its manifest:</p><ul>"#);
        for p in &d.problems {
            let _ = write!(b, "<li>{}</li>", esc(p));
        }
        b.push_str("</ul></div>");
    }

    // Totals.
    b.push_str(r#"<h2>Decisions</h2><table id="totals"><thead><tr><th>decision</th><th class="n">rows</th></tr></thead><tbody>"#);
    let total: u64 = m.totals.values().sum();
    for (decision, n) in &m.totals {
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td class="n">{n}</td></tr>"#,
            esc(decision)
        );
    }
    let _ = write!(
        b,
        r#"<tr><th>all content rows</th><td class="n">{total}</td></tr></tbody></table>"#
    );

    // Regions.
    let (rows, exact) = regions(d);
    b.push_str("<h2>Rows by region and decision</h2>");
    if !exact {
        b.push_str(r#"<p class="muted">This manifest predates the exact table: each row is counted under its first reason.</p>"#);
    }
    b.push_str(&decision_legend());
    b.push_str(&region_chart("chart-regions", &rows));
    b.push_str(r#"<table id="regions"><thead><tr><th>region</th><th class="n">include</th><th class="n">include_redacted</th><th class="n">exclude</th><th class="n">all</th></tr></thead><tbody>"#);
    for r in &rows {
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(&r.region),
            r.include,
            r.include_redacted,
            r.exclude,
            r.total()
        );
    }
    b.push_str("</tbody></table>");

    // Reasons.
    let reasons = reasons(d);
    b.push_str(
        r#"<h2>Reasons</h2><p class="muted">A row with several reasons counts under each.</p>"#,
    );
    let excluded: Vec<Bar<'_>> = reasons
        .iter()
        .filter(|((decision, _), _)| decision == "exclude")
        .map(|((_, reason), n)| Bar {
            label: reason.clone(),
            segments: vec![("exclude", *n, DECISION_COLOURS[2].1)],
        })
        .collect();
    if !excluded.is_empty() {
        b.push_str(&bar_chart(
            "chart-reasons",
            "Excluded rows by reason",
            "One bar per reason for exclusion.",
            &excluded,
        ));
    }
    b.push_str(r#"<table id="reasons"><thead><tr><th>decision</th><th>reason</th><th class="n">rows</th></tr></thead><tbody>"#);
    for ((decision, reason), n) in &reasons {
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td><code>{}</code></td><td class="n">{n}</td></tr>"#,
            esc(decision),
            esc(reason)
        );
    }
    b.push_str("</tbody></table>");

    // Redaction.
    b.push_str("<h2>Redaction</h2>");
    let placeholders = &d.kept.placeholders;
    if placeholders.is_empty() {
        b.push_str(r#"<p id="redactions">No redaction placeholder in the shards.</p>"#);
    } else {
        let bars: Vec<Bar<'_>> = placeholders
            .iter()
            .map(|(t, n)| Bar {
                label: t.clone(),
                segments: vec![(t.as_str(), *n, "#0969da")],
            })
            .collect();
        b.push_str(&bar_chart(
            "chart-redactions",
            "Redactions by entity type",
            "Placeholders in the shards' text, one bar per entity type.",
            &bars,
        ));
        b.push_str(r#"<table id="redactions"><thead><tr><th>entity type</th><th class="n">placeholders in the shards</th></tr></thead><tbody>"#);
        for (t, n) in placeholders {
            let _ = write!(
                b,
                r#"<tr><td><code>{}</code></td><td class="n">{n}</td></tr>"#,
                esc(t)
            );
        }
        b.push_str("</tbody></table>");
    }

    // Kept content.
    let _ = write!(
        b,
        r#"<h2>Content in the shards</h2><p>{} rows in {} shards, {} members; created from {} to {}.</p><table id="kinds"><thead><tr><th>kind</th><th class="n">rows</th><th class="n">text bytes</th><th class="n">tokens (est.)</th></tr></thead><tbody>"#,
        d.kept.rows(),
        m.shards.len(),
        m.member_commitment.as_ref().map_or(0, |c| c.members),
        esc(d.kept.created_from.as_deref().unwrap_or("–")),
        esc(d.kept.created_until.as_deref().unwrap_or("–")),
    );
    for (kind, k) in &d.kept.kinds {
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(kind),
            k.rows,
            k.text_bytes,
            k.text_bytes.div_ceil(crate::dataset::BYTES_PER_TOKEN)
        );
    }
    let _ = write!(
        b,
        r#"</tbody></table><p class="muted">Tokens: {}.</p>"#,
        esc(TOKEN_METHOD)
    );

    if let Some(c) = compare {
        b.push_str(&comparison(d, c));
    }

    // The log.
    b.push_str("<h2>Transparency log</h2>");
    let _ = write!(
        b,
        r#"<p>SHA-256 of <code>manifest.json</code>: <code id="manifest-sha256">{}</code>.</p>"#,
        esc(&d.manifest_sha256)
    );
    match log {
        Some(l) if l.this_manifest_logged => {
            let idx: Vec<String> = l.indices.iter().map(u64::to_string).collect();
            let _ = write!(
                b,
                r#"<p id="log-entry" class="ok">✓ The log records this manifest at index {}.</p>"#,
                idx.join(", ")
            );
        }
        Some(_) => b.push_str(r#"<p id="log-entry" class="bad">✗ The log does not record this manifest.</p>"#),
        None => b.push_str(r#"<p id="log-entry" class="muted">No ledger was given: check with <code>consentgate log verify</code> and the receipts.</p>"#),
    }
    if let Some((size, root)) = log.and_then(|l| l.checkpoint.as_ref()) {
        let _ = write!(
            b,
            r#"<p>Latest signed checkpoint{}: size <strong>{size}</strong>, root <code>{}</code>.</p>"#,
            log.and_then(|l| l.origin.as_deref())
                .map(|o| format!(" of <code>{}</code>", esc(o)))
                .unwrap_or_default(),
            esc(root)
        );
    }
    if let Some(cp) = &m.ledger_checkpoint {
        let _ = write!(
            b,
            r#"<p>The consent the build read is under checkpoint <code>{}</code> size {} root <code>{}</code>.</p>"#,
            esc(&cp.origin),
            cp.size,
            esc(&cp.root)
        );
    }
    if let Some(cm) = &m.member_commitment {
        let _ = write!(
            b,
            r#"<p>Member commitment: {} members, root <code>{}</code> (receipts are proven against it).</p>"#,
            cm.members,
            esc(&cm.root)
        );
    }
    page(&format!("Build report {}", m.dataset_id), &b)
}

/// The before/after table of two datasets.
fn comparison(after: &DatasetFacts, before: &DatasetFacts) -> String {
    let mut b = String::new();
    let bm = &before.manifest;
    let _ = write!(
        b,
        r#"<h2>Compared with <code>{}</code></h2><p>Before: as of {} under <code>{}</code> (hash <code>{}</code>). After: this dataset.</p>"#,
        esc(&bm.dataset_id),
        esc(&bm.as_of),
        esc(&bm.policy.name),
        esc(&bm.policy.hash)
    );
    let (rows_after, _) = regions(after);
    let (rows_before, _) = regions(before);
    let find = |rows: &[RegionRows], region: &str| {
        rows.iter()
            .find(|r| r.region == region)
            .cloned()
            .unwrap_or_default()
    };
    let all: BTreeSet<&str> = rows_after
        .iter()
        .chain(&rows_before)
        .map(|r| r.region.as_str())
        .collect();
    b.push_str(r#"<table id="compare-regions"><thead><tr><th>region</th><th class="n">kept before</th><th class="n">kept after</th><th class="n">change</th><th class="n">excluded before</th><th class="n">excluded after</th><th class="n">change</th></tr></thead><tbody>"#);
    for region in &all {
        let (x, y) = (find(&rows_before, region), find(&rows_after, region));
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(region),
            x.kept(),
            y.kept(),
            signed(i128::from(y.kept()) - i128::from(x.kept())),
            x.exclude,
            y.exclude,
            signed(i128::from(y.exclude) - i128::from(x.exclude)),
        );
    }
    b.push_str("</tbody></table>");
    let (ra, rb) = (reasons(after), reasons(before));
    let keys: BTreeSet<&(String, String)> = ra.keys().chain(rb.keys()).collect();
    b.push_str(r#"<table id="compare-reasons"><thead><tr><th>decision</th><th>reason</th><th class="n">before</th><th class="n">after</th><th class="n">change</th></tr></thead><tbody>"#);
    for k in keys {
        let (x, y) = (
            rb.get(k).copied().unwrap_or(0),
            ra.get(k).copied().unwrap_or(0),
        );
        if x == y {
            continue;
        }
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td><code>{}</code></td><td class="n">{x}</td><td class="n">{y}</td><td class="n">{}</td></tr>"#,
            esc(&k.0),
            esc(&k.1),
            signed(i128::from(y) - i128::from(x))
        );
    }
    b.push_str("</tbody></table>");
    b
}
