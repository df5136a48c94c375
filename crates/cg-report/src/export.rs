//! A member's own data-use record (GDPR Art 15 access, Art 20 portability): their consent
//! history with each event's transparency-log index, every published dataset with a receipt
//! that their content IS or is NOT in it (checkable offline with `consentgate receipt
//! verify`), and the models of the model registry trained on datasets that hold their
//! content. JSON for machines, one HTML page for people.

use std::fmt::Write as _;
use std::path::PathBuf;

use cg_ledger::Store;
use cg_model::MemberId;
use cg_proof::member_key::MemberKeySecret;
use cg_proof::note::NoteSigner;
use cg_proof::receipt::Receipt;
use serde::Serialize;

use crate::ReportError;
use crate::html::{esc, page};
use crate::registry::ModelEntry;

/// One consent event as the member sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ExportEvent {
    /// The purpose.
    pub purpose: String,
    /// Granted (true) or refused/withdrawn (false).
    pub granted: bool,
    /// When the choice was made.
    pub ts: String,
    /// How (`settings_page`, `api`, `gpc`, `import`, ...).
    pub source: String,
    /// The privacy-notice version shown, if recorded.
    pub notice_version: Option<String>,
    /// When the ledger recorded it.
    pub recorded_at: String,
    /// Its entry in the transparency log.
    pub log_index: Option<u64>,
}

/// One dataset and the member's receipt for it.
#[derive(Clone, Debug, Serialize)]
pub struct ExportDataset {
    /// Dataset id.
    pub dataset_id: String,
    /// Purpose.
    pub purpose: String,
    /// Cut-off.
    pub as_of: String,
    /// Whether the member's content is in it (from the receipt).
    pub included: Option<bool>,
    /// The receipt, when one could be issued.
    pub receipt: Option<Receipt>,
    /// Why no receipt could be issued (said in terms a member can act on).
    pub receipt_unavailable: Option<String>,
}

/// A model trained on a dataset holding the member's content.
#[derive(Clone, Debug, Serialize)]
pub struct ExportModel {
    /// Model name.
    pub name: String,
    /// When training started.
    pub trained_at: String,
    /// The datasets it was trained on that hold the member's content.
    pub datasets: Vec<String>,
}

/// The export.
#[derive(Clone, Debug, Serialize)]
pub struct MemberExport {
    /// Format.
    pub format: String,
    /// The member.
    pub member_id: i64,
    /// When it was made.
    pub generated_at: String,
    /// Consent history, oldest first.
    pub consent_history: Vec<ExportEvent>,
    /// Published datasets, newest cut-off first.
    pub datasets: Vec<ExportDataset>,
    /// Models trained on datasets that hold the member's content.
    pub models: Vec<ExportModel>,
    /// How to check the receipts.
    pub how_to_verify: String,
}

/// The export's format name.
pub const FORMAT: &str = "consentgate-member-export/1";

/// What receipts need: the log's signer and the VRF secret of the member keys.
#[derive(Debug)]
pub struct ReceiptKeys<'a> {
    /// Signs checkpoints.
    pub signer: &'a NoteSigner,
    /// Member keys.
    pub keys: &'a MemberKeySecret,
}

/// Makes a member's export. `datasets` are dataset directories (unreadable ones are listed
/// without a receipt).
pub fn export(
    store: &mut dyn Store,
    member: i64,
    datasets: &[PathBuf],
    keys: Option<ReceiptKeys<'_>>,
    models: &[ModelEntry],
    now: cg_model::Timestamp,
) -> Result<MemberExport, ReportError> {
    let mut history = Vec::new();
    for e in store.history(MemberId(member))? {
        let log_index = store.log_index_of_event(e.seq)?;
        history.push(ExportEvent {
            purpose: e.event.purpose.to_string(),
            granted: e.event.granted,
            ts: e.event.ts.to_string(),
            source: e.event.source.as_str().to_owned(),
            notice_version: e.event.notice_version.clone(),
            recorded_at: e.recorded_at.to_string(),
            log_index,
        });
    }
    let mut out = Vec::new();
    for dir in datasets {
        let manifest: Option<serde_json::Value> = std::fs::read(dir.join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(m) = manifest else { continue };
        let field = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
        let (receipt, unavailable) = match &keys {
            None => (
                None,
                Some("this service does not issue receipts".to_owned()),
            ),
            Some(k) => match cg_ledger::receipts::issue(dir, member, store, k.signer, k.keys) {
                Ok(r) => (Some(r), None),
                Err(cg_ledger::receipts::ReceiptIssueError::Ledger(e)) => return Err(e.into()),
                Err(cg_ledger::receipts::ReceiptIssueError::NotLogged(_)) => (
                    None,
                    Some("the dataset is not in the transparency log yet".to_owned()),
                ),
                Err(_) => (
                    None,
                    Some("the dataset cannot give receipts from this service".to_owned()),
                ),
            },
        };
        out.push(ExportDataset {
            dataset_id: field("dataset_id"),
            purpose: field("purpose"),
            as_of: field("as_of"),
            included: receipt.as_ref().map(|r| r.included),
            receipt,
            receipt_unavailable: unavailable,
        });
    }
    out.sort_by(|a, b| {
        b.as_of
            .cmp(&a.as_of)
            .then_with(|| a.dataset_id.cmp(&b.dataset_id))
    });
    let holding: Vec<&str> = out
        .iter()
        .filter(|d| d.included == Some(true))
        .map(|d| d.dataset_id.as_str())
        .collect();
    let models = models
        .iter()
        .filter_map(|m| {
            let on: Vec<String> = m
                .datasets
                .iter()
                .filter(|d| holding.contains(&d.as_str()))
                .cloned()
                .collect();
            (!on.is_empty()).then(|| ExportModel {
                name: m.name.clone(),
                trained_at: m.trained_at.clone(),
                datasets: on,
            })
        })
        .collect();
    Ok(MemberExport {
        format: FORMAT.into(),
        member_id: member,
        generated_at: now.to_string(),
        consent_history: history,
        datasets: out,
        models,
        how_to_verify: "Save a receipt's JSON as a file and run `consentgate receipt verify FILE --vkey KEY --member ID` with the log's verifier key (published by the platform): it checks, offline, that the dataset's manifest is in the signed transparency log and that your key is, or is not, in the dataset's member commitment.".into(),
    })
}

/// The export as one readable HTML page (the JSON holds the receipts).
pub fn html(e: &MemberExport, json_href: Option<&str>) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Your data use record</h1><p>Member <strong>{}</strong> · made {}</p>",
        e.member_id,
        esc(&e.generated_at)
    );
    if let Some(href) = json_href {
        let _ = write!(
            b,
            r#"<p><a id="export-json" href="{}" download="my-data-use-record.json">Download it as JSON (with the receipts)</a></p>"#,
            esc(href)
        );
    }
    b.push_str(r#"<h2>Your choices</h2><table id="history"><thead><tr><th>when</th><th>purpose</th><th>choice</th><th>how</th><th>notice</th><th class="n">log entry</th></tr></thead><tbody>"#);
    if e.consent_history.is_empty() {
        b.push_str(r#"<tr><td colspan="6">No recorded choice: the platform's default for your region applies.</td></tr>"#);
    }
    for h in &e.consent_history {
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class="n">{}</td></tr>"#,
            esc(&h.ts),
            esc(&h.purpose),
            if h.granted { "allowed" } else { "not allowed" },
            esc(&h.source),
            esc(h.notice_version.as_deref().unwrap_or("–")),
            h.log_index
                .map_or_else(|| "–".to_owned(), |i| i.to_string())
        );
    }
    b.push_str(r#"</tbody></table><h2>Datasets</h2><table id="datasets"><thead><tr><th>dataset</th><th>purpose</th><th>as of</th><th>your content</th></tr></thead><tbody>"#);
    if e.datasets.is_empty() {
        b.push_str(r#"<tr><td colspan="4">No dataset has been published.</td></tr>"#);
    }
    for d in &e.datasets {
        let status = match (d.included, &d.receipt_unavailable) {
            (Some(true), _) => "<strong>IS</strong> in it".to_owned(),
            (Some(false), _) => "is <strong>NOT</strong> in it".to_owned(),
            (None, Some(why)) => format!("unknown: {}", esc(why)),
            (None, None) => "unknown".to_owned(),
        };
        let _ = write!(
            b,
            r#"<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{status}</td></tr>"#,
            esc(&d.dataset_id),
            esc(&d.purpose),
            esc(&d.as_of)
        );
    }
    b.push_str(r#"</tbody></table><h2>Models</h2>"#);
    if e.models.is_empty() {
        b.push_str(r#"<p id="models">No recorded model was trained on a dataset holding your content.</p>"#);
    } else {
        b.push_str(r#"<ul id="models">"#);
        for m in &e.models {
            let _ = write!(
                b,
                "<li><code>{}</code>, training started {}, on {}</li>",
                esc(&m.name),
                esc(&m.trained_at),
                esc(&m.datasets.join(", "))
            );
        }
        b.push_str("</ul>");
    }
    let _ = write!(
        b,
        "<h2>Check it yourself</h2><p>{}</p>",
        esc(&e.how_to_verify)
    );
    page("Your data use record", &b)
}
