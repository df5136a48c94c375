//! `consentgate report ai-act-summary`: the part of the European Commission's *Template for the
//! Public Summary of Training Content for general-purpose AI models* (AI Act Art 53(1)(d),
//! published 24 July 2025) that consentgate's records can fill for the data taken from the
//! provider's own users' content.
//!
//! The template has three sections: 1. general information (1.1 provider, 1.2 model, 1.3
//! modalities, training data size and characteristics), 2. list of data sources (2.1 publicly
//! available datasets, 2.2 private datasets from third parties, 2.3 crawled and scraped data,
//! 2.4 user data, 2.5 synthetic data, 2.6 other sources) and 3. data processing aspects (3.1
//! respect of reservations of rights from the text-and-data-mining exception, 3.2 removal of
//! illegal content, 3.3 other information). consentgate knows section 2.4 (data from the
//! provider's services), the user-content part of 1.3 and the personal-data measures of 3.3.
//! Every other field comes from the provider's TOML file or is left as a marked placeholder:
//! nothing is invented. Each field says where its value came from.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use cg_model::Timestamp;
use cg_model::jurisdiction::Region;
use cg_model::regime::{LawfulBasis, Regime};
use serde::Serialize;

use crate::ReportError;
use crate::build_report::regions;
use crate::dataset::{DatasetFacts, TOKEN_METHOD};

/// The template this summary follows.
pub const TEMPLATE: &str = "European Commission, Template for the Public Summary of Training Content for general-purpose AI models, Article 53(1)(d) of Regulation (EU) 2024/1689 (AI Act), published 24 July 2025";

/// What a field's value is based on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// consentgate's records (manifests, shards, the log).
    Records,
    /// The provider's file (`--provider`).
    Provider,
    /// Nobody has said yet: the provider must complete it.
    Missing,
}

/// One field of the template.
#[derive(Clone, Debug, Serialize)]
pub struct Field {
    /// The template's field name.
    pub name: String,
    /// The value (text, or a structured value for tables).
    pub value: serde_json::Value,
    /// Where it came from.
    pub source: Source,
}

/// One section of the template.
#[derive(Clone, Debug, Serialize)]
pub struct Section {
    /// Its number (`1.1`, `2.4`, ...).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// The summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The template followed.
    pub template: String,
    /// The model, when named.
    pub model: Option<String>,
    /// The sections in template order.
    pub sections: Vec<Section>,
    /// The datasets the summary covers, with what checks them.
    pub datasets: Vec<DatasetRecord>,
}

/// A dataset the summary covers and the digests that let anyone check it.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetRecord {
    /// Dataset id.
    pub dataset_id: String,
    /// Cut-off.
    pub as_of: String,
    /// Policy name and hash.
    pub policy: String,
    /// The regime in force at the cut-off (when the policy could be made again).
    pub regime: Option<String>,
    /// SHA-256 of `manifest.json` (the transparency log's manifest entry).
    pub manifest_sha256: String,
    /// Whether every file matched the manifest when the summary was made.
    pub verified: bool,
    /// Rows in the shards.
    pub rows: u64,
    /// The ledger checkpoint the build's consent was under.
    pub ledger_checkpoint: Option<String>,
    /// The member commitment root (receipts).
    pub member_commitment_root: Option<String>,
}

/// The provider's own answers (`--provider FILE`, TOML). Every key is optional.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderInfo {
    /// 1.1: the provider's name and contact details.
    pub provider: BTreeMap<String, String>,
    /// 1.2: the model (`name`, `versions`, `dependencies`, `placed_on_market`).
    pub model: BTreeMap<String, String>,
    /// Other fields by template section id (`"1.3"`, `"2.1"`, `"3.1"`, ...): field name → text.
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl ProviderInfo {
    /// Reads a provider file.
    pub fn read(path: &Path) -> Result<ProviderInfo, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
        toml::from_str(&text)
            .map_err(|e| ReportError::invalid(path, format!("not a provider file: {e}")))
    }
}

/// How the regime of a dataset is known.
pub type RegimeOf<'a> = &'a dyn Fn(&DatasetFacts) -> Option<&'static Regime>;

/// The lawful basis and handling of one region under a regime.
pub fn region_basis(regime: &Regime, region_label: &str) -> String {
    let region = Region::ALL.into_iter().find(|r| r.as_str() == region_label);
    if region.is_some_and(|r| regime.suspended.contains(r)) {
        return format!(
            "excluded: training on members' content is suspended for this region under `{}` ({})",
            regime.id, regime.title
        );
    }
    if region_label.eq_ignore_ascii_case("unknown") {
        return "excluded: the member's jurisdiction is unknown (fail closed)".into();
    }
    match regime.basis {
        LawfulBasis::LegitimateInterest => format!(
            "GDPR Art 6(1)(f) legitimate interest under `{}`: included unless the member opted out or objected (the privacy setting, an objection, or a Global Privacy Control signal when the policy counts it)",
            regime.id
        ),
        LawfulBasis::Consent => format!(
            "GDPR Art 6(1)(a) consent under `{}`: included only with a recorded grant for this purpose and notice; members below the national age of digital consent excluded",
            regime.id
        ),
    }
}

fn field(name: &str, value: serde_json::Value, source: Source) -> Field {
    Field {
        name: name.into(),
        value,
        source,
    }
}

fn text(name: &str, value: impl Into<String>) -> Field {
    field(
        name,
        serde_json::Value::String(value.into()),
        Source::Records,
    )
}

/// A provider-supplied field, or a placeholder.
fn provided(map: Option<&BTreeMap<String, String>>, key: &str, name: &str) -> Field {
    match map.and_then(|m| m.get(key)) {
        Some(v) => field(name, serde_json::Value::String(v.clone()), Source::Provider),
        None => field(
            name,
            serde_json::Value::String(format!("[to be completed by the provider: {name}]")),
            Source::Missing,
        ),
    }
}

/// The template's size range for text tokens.
pub fn token_range(tokens: u64) -> &'static str {
    if tokens < 1_000_000_000 {
        "Less than 1 billion tokens"
    } else if tokens <= 10_000_000_000_000 {
        "1 billion to 10 trillion tokens"
    } else {
        "More than 10 trillion tokens"
    }
}

/// Makes the summary for a model trained on `datasets`.
pub fn summary(
    datasets: &[DatasetFacts],
    model: Option<&str>,
    provider: &ProviderInfo,
    regime_of: RegimeOf<'_>,
) -> Summary {
    let sec = |id: &str| provider.sections.get(id);
    let model_name = model
        .map(str::to_owned)
        .or_else(|| provider.model.get("name").cloned());

    // 1.1, 1.2: the provider's.
    let s11 = Section {
        id: "1.1".into(),
        title: "Provider identification".into(),
        fields: vec![
            provided(
                Some(&provider.provider),
                "name",
                "Provider name and contact details",
            ),
            provided(
                Some(&provider.provider),
                "authorised_representative",
                "Authorised representative name and contact details",
            ),
        ],
    };
    let mut model_fields = vec![match &model_name {
        Some(n) => field(
            "Versioned model name(s)",
            serde_json::Value::String(n.clone()),
            if model.is_some() {
                Source::Records
            } else {
                Source::Provider
            },
        ),
        None => provided(None, "name", "Versioned model name(s)"),
    }];
    model_fields.push(provided(
        Some(&provider.model),
        "dependencies",
        "Model dependencies (if the model is a modification or fine-tuning of another model)",
    ));
    model_fields.push(provided(
        Some(&provider.model),
        "placed_on_market",
        "Date of placement of the model on the Union market",
    ));
    let s12 = Section {
        id: "1.2".into(),
        title: "Model identification".into(),
        fields: model_fields,
    };

    // 1.3: the user-content part.
    let rows: u64 = datasets.iter().map(|d| d.kept.rows()).sum();
    let bytes: u64 = datasets.iter().map(|d| d.kept.text_bytes()).sum();
    let tokens: u64 = datasets.iter().map(|d| d.kept.tokens_estimate()).sum();
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for d in datasets {
        for (k, s) in &d.kept.kinds {
            *kinds.entry(k.as_str()).or_default() += s.rows;
        }
    }
    let latest = datasets
        .iter()
        .filter_map(|d| Timestamp::parse(&d.manifest.as_of).ok())
        .max()
        .map(|t| t.to_string());
    let mut s13 = vec![
        text(
            "Modality",
            "Text (for the part drawn from the provider's services)",
        ),
        field(
            "Training data size (user content from the provider's services)",
            serde_json::json!({
                "range": token_range(tokens),
                "rows": rows,
                "text_bytes": bytes,
                "tokens_estimated": tokens,
                "method": TOKEN_METHOD,
            }),
            Source::Records,
        ),
        field(
            "Types of content",
            serde_json::json!(kinds),
            Source::Records,
        ),
        match &latest {
            Some(t) => text(
                "Latest date of data collection (user content)",
                format!(
                    "{t} (the latest cut-off of the datasets: nothing created or consented after it was read)"
                ),
            ),
            None => provided(
                None,
                "latest",
                "Latest date of data collection (user content)",
            ),
        },
    ];
    for (key, name) in [
        (
            "linguistic_characteristics",
            "Linguistic characteristics of the overall training data",
        ),
        (
            "other_characteristics",
            "Other relevant characteristics of the overall training data",
        ),
        ("overall_size", "Training data size of all sources"),
    ] {
        s13.push(provided(sec("1.3"), key, name));
    }
    let s13 = Section {
        id: "1.3".into(),
        title: "Modalities, overall training data size and other characteristics".into(),
        fields: s13,
    };

    // 2.1–2.3, 2.5, 2.6: the provider's.
    let narrative = |id: &str, title: &str, name: &str| Section {
        id: id.into(),
        title: title.into(),
        fields: vec![provided(sec(id), "description", name)],
    };
    let s21 = narrative(
        "2.1",
        "Publicly available datasets",
        "Description of publicly available datasets used",
    );
    let s22 = narrative(
        "2.2",
        "Private non-publicly available datasets obtained from third parties",
        "Description of datasets obtained from third parties",
    );
    let s23 = narrative(
        "2.3",
        "Data crawled and scraped from online sources",
        "Description of crawled and scraped data",
    );

    // 2.4: user data, from the records.
    let mut per_dataset = Vec::new();
    let mut regions_json = Vec::new();
    for d in datasets {
        let m = &d.manifest;
        let regime = regime_of(d);
        let (rows_by_region, exact) = regions(d);
        for r in &rows_by_region {
            let basis = match regime {
                Some(g) => region_basis(g, &r.region),
                None => format!(
                    "the policy `{}` (hash {}) was not given, so its regime is not stated here",
                    m.policy.name, m.policy.hash
                ),
            };
            regions_json.push(serde_json::json!({
                "dataset_id": m.dataset_id,
                "region": r.region,
                "included_rows": r.kept(),
                "excluded_rows": r.exclude,
                "exact": exact,
                "basis": basis,
            }));
        }
        let reasons = crate::build_report::reasons(d);
        let excluded: BTreeMap<&str, u64> = reasons
            .iter()
            .filter(|((decision, _), _)| decision == "exclude")
            .map(|((_, reason), n)| (reason.as_str(), *n))
            .collect();
        per_dataset.push(serde_json::json!({
            "dataset_id": m.dataset_id,
            "as_of": m.as_of,
            "content_created_from": d.kept.created_from,
            "content_created_until": d.kept.created_until,
            "regime": regime.map(|g| g.id),
            "rows_decided": m.totals.values().sum::<u64>(),
            "rows_included": d.kept.rows(),
            "excluded_by_reason": excluded,
        }));
    }
    let sum_reason = |reason: &str| -> u64 {
        datasets
            .iter()
            .flat_map(|d| d.manifest.counts.iter())
            .filter(|c| c.decision == "exclude" && c.reason == reason)
            .map(|c| c.rows)
            .sum()
    };
    let s24 = Section {
        id: "2.4".into(),
        title: "User data".into(),
        fields: vec![
            provided(
                sec("2.4"),
                "model_interactions",
                "Was data from user interactions with the AI model (e.g. prompts) used to train the model?",
            ),
            text(
                "Was data collected from user interactions with the provider's other services or products used to train the model?",
                if rows > 0 {
                    "Yes"
                } else {
                    "No (no content row was included)"
                },
            ),
            field(
                "Services and products the data came from (content kinds)",
                serde_json::json!(kinds.keys().collect::<Vec<_>>()),
                Source::Records,
            ),
            field(
                "Periods covered",
                serde_json::json!(per_dataset),
                Source::Records,
            ),
            field(
                "Regions included and excluded, and why",
                serde_json::json!(regions_json),
                Source::Records,
            ),
            text(
                "Objections and opt-outs",
                format!(
                    "Every build re-reads each member's setting as of its cut-off; content of members who opted out, objected or sent a Global Privacy Control signal counted as an objection was excluded ({} rows as `opted_out`), as was content of members who asked for erasure ({} rows as `erased`). Withdrawals after a build are traced to datasets and models with `consentgate impact`.",
                    sum_reason("opted_out"),
                    sum_reason("erased")
                ),
            ),
            text(
                "Minors",
                format!(
                    "Content created while the member was under the platform's minimum age, or by members who are minors now, was excluded ({} rows as `minor`); members without a birth date where an age applies ({} rows as `age_unknown`) and below the national age of digital consent in consent regimes ({} rows as `below_consent_age`) were excluded.",
                    sum_reason("minor"),
                    sum_reason("age_unknown"),
                    sum_reason("below_consent_age")
                ),
            ),
        ],
    };
    let s25 = narrative(
        "2.5",
        "Synthetic data",
        "Description of synthetic data used",
    );
    let s26 = narrative(
        "2.6",
        "Other sources of data",
        "Description of other data sources",
    );

    // 3: processing aspects.
    let mut placeholders: BTreeMap<&str, u64> = BTreeMap::new();
    for d in datasets {
        for (t, n) in &d.kept.placeholders {
            *placeholders.entry(t.as_str()).or_default() += n;
        }
    }
    let s31 = narrative(
        "3.1",
        "Respect of reservation of rights from the text and data mining exception or limitation",
        "Measures to respect reservations of rights (opt-outs) under Art 4(3) of Directive (EU) 2019/790",
    );
    let s32 = narrative(
        "3.2",
        "Removal of illegal content",
        "Measures to remove illegal content",
    );
    let s33 = Section {
        id: "3.3".into(),
        title: "Other information".into(),
        fields: vec![
            field(
                "Personal data minimisation (user content)",
                serde_json::json!({
                    "engine": "consentgate cg-redact: one pass over every kept row's text; entity types EMAIL, PHONE, URL, IP_ADDRESS, CREDIT_CARD, IBAN_CODE, UK_NINO, US_SSN, MENTION, PERSON replaced by placeholders; names and handles of excluded members removed from everyone's text",
                    "placeholders_in_the_shards": placeholders,
                    "measured_recall": crate::processing::measured_recall(),
                }),
                Source::Records,
            ),
            text(
                "How to check this summary",
                "Each dataset below is named by its manifest's SHA-256, which the provider's transparency log (RFC 6962, signed checkpoints) records; `consentgate dataset verify` checks every file against its manifest, and members check their own inclusion with offline receipts against the member commitment root.",
            ),
        ],
    };
    Summary {
        template: TEMPLATE.into(),
        model: model_name,
        sections: vec![s11, s12, s13, s21, s22, s23, s24, s25, s26, s31, s32, s33],
        datasets: datasets
            .iter()
            .map(|d| DatasetRecord {
                dataset_id: d.manifest.dataset_id.clone(),
                as_of: d.manifest.as_of.clone(),
                policy: format!("{} ({})", d.manifest.policy.name, d.manifest.policy.hash),
                regime: regime_of(d).map(|g| g.id.to_owned()),
                manifest_sha256: d.manifest_sha256.clone(),
                verified: d.verifies(),
                rows: d.kept.rows(),
                ledger_checkpoint: d
                    .manifest
                    .ledger_checkpoint
                    .as_ref()
                    .map(|c| format!("{} size {} root {}", c.origin, c.size, c.root)),
                member_commitment_root: d.manifest.member_commitment_root.clone(),
            })
            .collect(),
    }
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.replace('|', "\\|").replace('\n', " "),
        other => format!("`{}`", other.to_string().replace('|', "\\|")),
    }
}

/// Renders the summary as Markdown.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Public summary of training content{}\n\nFollows the {}. consentgate filled the fields marked *records* from its manifests, shards and transparency log; fields marked *provider* come from the provider's file; fields marked **to be completed** have no source yet and must be completed before publication.\n",
        s.model
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
        s.template
    );
    let mut last_top = String::new();
    for sec in &s.sections {
        let top = sec.id.split('.').next().unwrap_or("").to_owned();
        if top != last_top {
            let title = match top.as_str() {
                "1" => "General information",
                "2" => "List of data sources",
                _ => "Relevant data processing aspects",
            };
            let _ = writeln!(out, "## {top}. {title}\n");
            last_top = top;
        }
        let _ = writeln!(
            out,
            "### {} {}\n\n| field | value | source |\n|---|---|---|",
            sec.id, sec.title
        );
        for f in &sec.fields {
            let source = match f.source {
                Source::Records => "records",
                Source::Provider => "provider",
                Source::Missing => "**to be completed**",
            };
            let _ = writeln!(out, "| {} | {} | {source} |", f.name, cell(&f.value));
        }
        out.push('\n');
    }
    out.push_str("## Datasets covered\n\n| dataset | as of | policy | regime | rows | manifest SHA-256 | verified |\n|---|---|---|---|---:|---|---|\n");
    for d in &s.datasets {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} | `{}` | {} |",
            d.dataset_id,
            d.as_of,
            d.policy,
            d.regime.as_deref().unwrap_or("–"),
            d.rows,
            d.manifest_sha256,
            if d.verified { "yes" } else { "**no**" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspended_regions_say_so_and_others_name_their_basis() {
        let li = Regime::by_id("li-2024-09").unwrap();
        assert!(region_basis(li, "UK").starts_with("excluded: training"));
        assert!(region_basis(li, "ROW").contains("Art 6(1)(f)"));
        assert!(region_basis(li, "UNKNOWN").contains("unknown"));
        let strict = Regime::by_id("strict-optin").unwrap();
        assert!(region_basis(strict, "EU").contains("Art 6(1)(a)"));
    }

    #[test]
    fn token_ranges_follow_the_template() {
        assert_eq!(token_range(0), "Less than 1 billion tokens");
        assert_eq!(
            token_range(1_000_000_000),
            "1 billion to 10 trillion tokens"
        );
        assert_eq!(
            token_range(20_000_000_000_000),
            "More than 10 trillion tokens"
        );
    }

    #[test]
    fn missing_provider_fields_are_marked_never_invented() {
        let s = summary(&[], None, &ProviderInfo::default(), &|_| None);
        let missing: Vec<&Field> = s
            .sections
            .iter()
            .flat_map(|s| &s.fields)
            .filter(|f| f.source == Source::Missing)
            .collect();
        assert!(missing.len() >= 10);
        assert!(
            missing
                .iter()
                .all(|f| f.value.as_str().unwrap().starts_with("[to be completed"))
        );
        let md = markdown(&s);
        assert!(md.contains("**to be completed**"));
    }
}
