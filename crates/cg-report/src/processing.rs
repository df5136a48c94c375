//! `consentgate report processing-record --purpose P`: a record of processing activities (GDPR
//! Art 30(1)) for one purpose, regenerated from facts: the controller from a TOML file; the
//! data subjects and data from the ledger and the datasets; the lawful basis per regime and
//! period from the policy in force; the recipients (datasets, and the models of the model
//! registry trained on them); the safeguards consentgate applies; and a change history from the
//! transparency log (consent changes per month, datasets published). Fields nobody has
//! supplied are marked, never invented.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use cg_ledger::Store;
use cg_model::Purpose;
use cg_model::regime::{LawfulBasis, Regime};
use cg_proof::leaves::Entry;
use serde::Serialize;

use crate::ReportError;
use crate::dataset::DatasetFacts;
use crate::registry::ModelEntry;

/// Recall of the redaction engine per entity type as consentgate's own evaluation measured it
/// (`docs/redact.md`, `cargo run --release -p cg-redact --example eval`).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Measured {
    /// Entity type.
    pub entity: &'static str,
    /// Recall on the hand-written hard cases, %.
    pub hard_cases: f64,
    /// Recall on 20 000 generated items, %.
    pub generated: f64,
}

/// The figures of `docs/redact.md` (2026-12-01).
pub const MEASURED: &[Measured] = &[
    Measured {
        entity: "EMAIL",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "PHONE",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "URL",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "IP_ADDRESS",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "CREDIT_CARD",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "IBAN_CODE",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "UK_NINO",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "US_SSN",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "MENTION",
        hard_cases: 100.0,
        generated: 100.0,
    },
    Measured {
        entity: "PERSON",
        hard_cases: 100.0,
        generated: 91.1,
    },
];

/// The measured recall with what it was measured on (documents quote both).
pub fn measured_recall() -> serde_json::Value {
    serde_json::json!({
        "measured_on": "consentgate's own evaluation (docs/redact.md, 2026-12-01): hand-written hard cases and 20 000 generated items; text written by the engine's authors, so an upper bound; not yet measured on labelled text the project did not write",
        "recall_percent": MEASURED,
    })
}

/// The controller's own answers (`--controller FILE`, TOML); every key optional.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControllerInfo {
    /// `name`, `contact`, `representative`, `dpo`.
    pub controller: BTreeMap<String, String>,
    /// `retention`, `transfers`, `recipients` (beyond datasets and models), `description`.
    pub processing: BTreeMap<String, String>,
}

impl ControllerInfo {
    /// Reads a controller file.
    pub fn read(path: &Path) -> Result<ControllerInfo, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
        toml::from_str(&text)
            .map_err(|e| ReportError::invalid(path, format!("not a controller file: {e}")))
    }
}

/// One regime of the policy, with its period and basis.
#[derive(Clone, Debug, Serialize)]
pub struct RegimePeriod {
    /// Regime id.
    pub regime: String,
    /// First day (`None`: since ever).
    pub from: Option<String>,
    /// Last day (`None`: until further notice).
    pub until: Option<String>,
    /// The lawful basis outside suspended regions.
    pub basis: String,
    /// Regions where training is suspended.
    pub suspended: Vec<String>,
}

/// Consent changes and publications of one month, from the log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MonthChanges {
    /// `YYYY-MM` of the events' times.
    pub month: String,
    /// Grants for the purpose.
    pub grants: u64,
    /// Opt-outs and objections for the purpose (the setting switched off).
    pub objections: u64,
    /// Global Privacy Control signals recorded.
    pub gpc_signals: u64,
    /// Events of other purposes.
    pub other_purposes: u64,
}

/// A published dataset in the log.
#[derive(Clone, Debug, Serialize)]
pub struct Publication {
    /// Log index.
    pub index: u64,
    /// Dataset id.
    pub dataset_id: String,
    /// SHA-256 of its manifest.
    pub manifest_sha256: String,
}

/// A field supplied by the controller or marked missing.
#[derive(Clone, Debug, Serialize)]
pub struct Supplied {
    /// The value, or the placeholder.
    pub value: String,
    /// Whether the controller supplied it.
    pub supplied: bool,
}

fn supplied(map: &BTreeMap<String, String>, key: &str, what: &str) -> Supplied {
    match map.get(key) {
        Some(v) => Supplied {
            value: v.clone(),
            supplied: true,
        },
        None => Supplied {
            value: format!("[to be completed by the controller: {what}]"),
            supplied: false,
        },
    }
}

/// The record.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessingRecord {
    /// The purpose.
    pub purpose: String,
    /// Art 30(1)(a): controller, representative, DPO.
    pub controller: BTreeMap<String, Supplied>,
    /// Art 30(1)(b): what the processing is for.
    pub description: Supplied,
    /// Art 30(1)(c): data subjects, by the ledger's counts.
    pub data_subjects: serde_json::Value,
    /// Art 30(1)(c): categories of personal data.
    pub data_categories: Vec<String>,
    /// Lawful basis per regime and period (the policy in force).
    pub policy: String,
    /// The regimes.
    pub regimes: Vec<RegimePeriod>,
    /// Art 30(1)(d): recipients: datasets and the models trained on them.
    pub datasets: Vec<serde_json::Value>,
    /// Models of the registry trained on any of the datasets.
    pub models: Vec<ModelEntry>,
    /// Other recipients (controller).
    pub other_recipients: Supplied,
    /// Art 30(1)(e): transfers to third countries.
    pub transfers: Supplied,
    /// Art 30(1)(f): retention.
    pub retention: Supplied,
    /// Art 30(1)(g): technical and organisational measures.
    pub safeguards: Vec<String>,
    /// Change history: consent per month.
    pub consent_changes: Vec<MonthChanges>,
    /// Change history: datasets published.
    pub publications: Vec<Publication>,
    /// The log's latest signed checkpoint (size, root).
    pub checkpoint: Option<(u64, String)>,
}

/// The regimes of a policy with their periods and, for bundled regimes, their basis and
/// suspended regions.
pub fn regimes(policy: &cg_policy::Policy) -> Vec<RegimePeriod> {
    policy
        .regimes()
        .iter()
        .filter(|r| r.in_timeline || r.id == policy.name())
        .map(|r| {
            let known = Regime::by_id(&r.id);
            RegimePeriod {
                regime: r.id.clone(),
                from: r.from.map(|d| d.to_string()),
                until: r.until.map(|d| d.to_string()),
                basis: match known.map(|k| k.basis) {
                    Some(LawfulBasis::LegitimateInterest) => {
                        "GDPR Art 6(1)(f) legitimate interest; members may opt out or object at any time".into()
                    }
                    Some(LawfulBasis::Consent) => {
                        "GDPR Art 6(1)(a) consent; a recorded grant per purpose and notice".into()
                    }
                    None => "a custom regime of the policy's config (see `policy explain`)".into(),
                },
                suspended: known
                    .map(|k| k.suspended.names().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// What the record is made from.
#[derive(Debug)]
pub struct RecordInputs<'a> {
    /// The purpose.
    pub purpose: &'a Purpose,
    /// The controller's answers.
    pub controller: &'a ControllerInfo,
    /// The policy in force, and how it was found.
    pub policy: (&'a cg_policy::Policy, String),
    /// Published datasets.
    pub datasets: &'a [DatasetFacts],
    /// The model registry.
    pub models: &'a [ModelEntry],
}

/// Makes the record from the ledger and the inputs.
pub fn record(
    store: &mut dyn Store,
    inputs: &RecordInputs<'_>,
) -> Result<ProcessingRecord, ReportError> {
    let stats = store.stats()?;
    let mut months: BTreeMap<String, MonthChanges> = BTreeMap::new();
    let mut publications = Vec::new();
    store.log_scan(0, &mut |entry| {
        match Entry::decode(&entry.data) {
            Some(Entry::Manifest { dataset_id, sha256 }) => publications.push(Publication {
                index: entry.index,
                dataset_id,
                manifest_sha256: cg_proof::hex(&sha256),
            }),
            Some(Entry::Event { .. }) => {
                if let Some((stored, _)) = &entry.event {
                    let e = &stored.event;
                    let date = e.ts.date();
                    let month = format!("{:04}-{:02}", date.year(), u8::from(date.month()));
                    let m = months.entry(month.clone()).or_insert_with(|| MonthChanges {
                        month,
                        ..MonthChanges::default()
                    });
                    if e.purpose != *inputs.purpose {
                        m.other_purposes += 1;
                    } else if e.source.as_str() == "gpc" {
                        m.gpc_signals += 1;
                    } else if e.granted {
                        m.grants += 1;
                    } else {
                        m.objections += 1;
                    }
                }
            }
            Some(Entry::PolicyActivation { .. }) | None => {}
        }
        Ok(())
    })?;
    let checkpoint = store
        .log_checkpoints()?
        .pop()
        .map(|c| (c.size, cg_proof::hex(&c.root)));
    let ids: Vec<&str> = inputs
        .datasets
        .iter()
        .map(|d| d.manifest.dataset_id.as_str())
        .collect();
    let c = &inputs.controller.controller;
    let p = &inputs.controller.processing;
    let mut controller = BTreeMap::new();
    for (key, what) in [
        ("name", "the controller's name"),
        ("contact", "the controller's contact details"),
        ("representative", "the representative in the Union, if any"),
        ("dpo", "the data protection officer's contact details"),
    ] {
        controller.insert(key.to_owned(), supplied(c, key, what));
    }
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for d in inputs.datasets {
        for (k, s) in &d.kept.kinds {
            *kinds.entry(k.as_str()).or_default() += s.rows;
        }
    }
    let mut categories = vec![
        "member identifier (pseudonymous id; never in the shards)".to_owned(),
        "country of residence and its history (decides the regime)".to_owned(),
        "date of birth or age band (minors are excluded)".to_owned(),
        "consent choices per purpose with proof of consent: time, channel, notice version, Global Privacy Control signals".to_owned(),
        "privacy notices delivered and erasure requests".to_owned(),
    ];
    if !kinds.is_empty() {
        let names: Vec<&str> = kinds.keys().copied().collect();
        categories.push(format!(
            "content members wrote ({}), redacted of contact details, identifiers and names before training",
            names.join(", ")
        ));
    } else {
        categories.push("content members wrote, redacted before training".to_owned());
    }
    Ok(ProcessingRecord {
        purpose: inputs.purpose.to_string(),
        controller,
        description: match p.get("description") {
            Some(v) => Supplied {
                value: v.clone(),
                supplied: true,
            },
            None => Supplied {
                value: format!(
                    "Using members' content for the purpose `{}`: training the platform's generative-AI models on content members may and did allow, decided per item by the policy in force",
                    inputs.purpose
                ),
                supplied: false,
            },
        },
        data_subjects: serde_json::json!({
            "members_in_ledger": stats.members,
            "consent_events": stats.events,
            "residence_entries": stats.residences,
            "notices": stats.notices,
            "erasure_requests": stats.erasures,
            "content_rows_by_region": inputs.datasets.iter().map(|d| serde_json::json!({
                "dataset_id": d.manifest.dataset_id,
                "rows_by_region": crate::build_report::regions(d).0,
            })).collect::<Vec<_>>(),
        }),
        data_categories: categories,
        policy: format!(
            "{} (hash {}; {})",
            inputs.policy.0.name(),
            inputs.policy.0.hash(),
            inputs.policy.1
        ),
        regimes: regimes(inputs.policy.0),
        datasets: inputs
            .datasets
            .iter()
            .map(|d| {
                serde_json::json!({
                    "dataset_id": d.manifest.dataset_id,
                    "as_of": d.manifest.as_of,
                    "rows": d.kept.rows(),
                    "members": d.manifest.member_commitment.as_ref().map_or(0, |c| c.members),
                    "manifest_sha256": d.manifest_sha256,
                    "verified": d.verifies(),
                })
            })
            .collect(),
        models: inputs
            .models
            .iter()
            .filter(|m| m.datasets.iter().any(|d| ids.contains(&d.as_str())))
            .cloned()
            .collect(),
        other_recipients: supplied(p, "recipients", "other recipients, if any"),
        transfers: supplied(p, "transfers", "transfers to third countries and their safeguards"),
        retention: supplied(p, "retention", "time limits for erasure of each category"),
        safeguards: vec![
            "fail-closed gate: an item is used only when the policy allows it; any doubt (unknown country, missing consent in an opt-in regime, unparseable record, policy error) excludes it".into(),
            "policy as code (Cedar), hashed, with effective-dated regimes; every decision carries a reason code".into(),
            "PII redaction of every kept item's text in one pass (contact details, identifiers, names, mentions of members who did not consent)".into(),
            "no member ids in training shards; one member's rows in one shard, so a withdrawal touches one shard".into(),
            "atomic publication (temporary directory, fsync, rename, manifest last) with SHA-256 of every file".into(),
            "an append-only transparency log (RFC 6962) of consent changes and dataset manifests, with signed checkpoints".into(),
            "offline-checkable member receipts of inclusion and exclusion".into(),
            "API calls authenticated by token and authorised by role; personal data and keys in owner-only files".into(),
        ],
        consent_changes: months.into_values().collect(),
        publications,
        checkpoint,
    })
}

fn mark(s: &Supplied) -> String {
    if s.supplied {
        s.value.clone()
    } else {
        format!("**{}**", s.value)
    }
}

/// Renders the record as Markdown.
pub fn markdown(r: &ProcessingRecord) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Record of processing activities (GDPR Art 30(1)): `{}`\n\nRegenerated by consentgate from the ledger, the policy in force, the datasets and the model registry. Text in **bold brackets** has no source yet and must be completed by the controller.\n",
        r.purpose
    );
    o.push_str("## (a) Controller\n\n| | |\n|---|---|\n");
    for (key, label) in [
        ("name", "Controller"),
        ("contact", "Contact"),
        ("representative", "Representative"),
        ("dpo", "Data protection officer"),
    ] {
        if let Some(s) = r.controller.get(key) {
            let _ = writeln!(o, "| {label} | {} |", mark(s));
        }
    }
    let _ = writeln!(o, "\n## (b) Purpose\n\n{}\n", mark(&r.description));
    let _ = writeln!(
        o,
        "## (c) Data subjects and categories of personal data\n\nMembers of the platform: {} in the ledger ({} consent events, {} residence entries, {} notices, {} erasure requests).\n",
        r.data_subjects["members_in_ledger"],
        r.data_subjects["consent_events"],
        r.data_subjects["residence_entries"],
        r.data_subjects["notices"],
        r.data_subjects["erasure_requests"]
    );
    for c in &r.data_categories {
        let _ = writeln!(o, "- {c}");
    }
    let _ = writeln!(
        o,
        "\n## Lawful basis per regime and period\n\nPolicy {}.\n\n| regime | from | until | basis | suspended regions |\n|---|---|---|---|---|",
        r.policy
    );
    for g in &r.regimes {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | {} |",
            g.regime,
            g.from.as_deref().unwrap_or("–"),
            g.until.as_deref().unwrap_or("–"),
            g.basis,
            if g.suspended.is_empty() {
                "–".to_owned()
            } else {
                g.suspended.join(", ")
            }
        );
    }
    o.push_str("\n## (d) Recipients\n\nDatasets built for the purpose:\n\n| dataset | as of | rows | members | manifest SHA-256 | verified |\n|---|---|---:|---:|---|---|\n");
    for d in &r.datasets {
        let _ = writeln!(
            o,
            "| `{}` | {} | {} | {} | `{}` | {} |",
            d["dataset_id"].as_str().unwrap_or(""),
            d["as_of"].as_str().unwrap_or(""),
            d["rows"],
            d["members"],
            d["manifest_sha256"].as_str().unwrap_or(""),
            if d["verified"].as_bool() == Some(true) {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    o.push_str("\nModels trained on them (model registry):\n\n");
    if r.models.is_empty() {
        o.push_str("- none recorded\n");
    }
    for m in &r.models {
        let _ = writeln!(
            o,
            "- `{}`, training started {}, on {}",
            m.name,
            m.trained_at,
            m.datasets.join(", ")
        );
    }
    let _ = writeln!(
        o,
        "\nOther recipients: {}\n\n## (e) Transfers to third countries\n\n{}\n\n## (f) Retention\n\n{}\n\n## (g) Technical and organisational measures\n",
        mark(&r.other_recipients),
        mark(&r.transfers),
        mark(&r.retention)
    );
    for s in &r.safeguards {
        let _ = writeln!(o, "- {s}");
    }
    o.push_str("\n## Change history (from the transparency log)\n\n| month | grants | opt-outs and objections | GPC signals | other purposes |\n|---|---:|---:|---:|---:|\n");
    for m in &r.consent_changes {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            m.month, m.grants, m.objections, m.gpc_signals, m.other_purposes
        );
    }
    o.push_str("\nDatasets published:\n\n");
    if r.publications.is_empty() {
        o.push_str("- none\n");
    }
    for p in &r.publications {
        let _ = writeln!(
            o,
            "- log index {}: `{}` (manifest SHA-256 `{}`)",
            p.index, p.dataset_id, p.manifest_sha256
        );
    }
    match &r.checkpoint {
        Some((size, root)) => {
            let _ = writeln!(o, "\nLatest signed checkpoint: size {size}, root `{root}`.");
        }
        None => o.push_str("\nNo signed checkpoint yet.\n"),
    }
    o
}
