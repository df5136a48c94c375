//! `consentgate consent set|get|history|import|export`: the consent ledger from the command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use cg_ledger::{NewEvent, Store, StoredEvent};
use cg_model::consent::ConsentSource;
use cg_model::{EventId, MemberId, Purpose, Timestamp};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::commands::args;
use crate::printer::Printer;
use crate::progress::Bars;

/// `--store URL`, shared by every command that uses the ledger.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The ledger: `postgres://…`, `sqlite:PATH`, or a path (default: `$CG_DATA_DIR/ledger.sqlite`,
    /// `.consentgate/ledger.sqlite`).
    #[arg(long, value_name = "URL", env = "CG_STORE")]
    pub store: Option<String>,
}

impl StoreArgs {
    /// Opens the store, creating the embedded ledger if missing (for writes).
    pub fn open(&self) -> anyhow::Result<Box<dyn Store>> {
        let url = self.store.clone().unwrap_or_else(cg_ledger::default_url);
        cg_ledger::open(&url)
            .with_context(|| format!("cannot open the ledger `{}`", redact_url(&url)))
    }

    /// Opens an existing store (for reads: a missing ledger is an error, not an empty answer).
    pub fn open_existing(&self) -> anyhow::Result<Box<dyn Store>> {
        let url = self.store.clone().unwrap_or_else(cg_ledger::default_url);
        cg_ledger::open_existing(&url).map_err(|e| {
            anyhow::Error::new(e).context(crate::errors::Hinted {
                message: format!("cannot open the ledger `{}`", redact_url(&url)),
                hint: "pass --store URL, or record events first (consent set / consent import)"
                    .into(),
            })
        })
    }
}

/// Hides a password in a database URL (no secrets in messages).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `consent` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Record a choice (grant, withdrawal, objection, opt-out).
    Set(SetArgs),
    /// A member's state for a purpose as of a time, with the deciding event.
    Get(GetArgs),
    /// Every event of a member.
    History(HistoryArgs),
    /// Import input-contract files (consent, members, residences, notices, erasures) in one
    /// transaction per file.
    Import(ImportArgs),
    /// Export the as-of snapshot of all members for a purpose (Parquet, CSV or JSONL).
    Export(ExportArgs),
    /// Append N events one transaction at a time, printing `ack <event_id>` after each commit
    /// (crash tests).
    #[command(hide = true)]
    StressWrite(StressArgs),
}

/// Arguments of `consent set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Member id.
    #[arg(long)]
    pub member: i64,
    /// Purpose (`genai_training`, ...).
    #[arg(long, value_parser = args::purpose)]
    pub purpose: Purpose,
    /// `true` grants; `false` withdraws, objects or opts out.
    #[arg(long, action = clap::ArgAction::Set, value_parser = clap::value_parser!(bool))]
    pub granted: bool,
    /// Source: settings, objection_form, gpc, api, import.
    #[arg(long, default_value = "api")]
    pub source: String,
    /// When the choice was made (default: now).
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub at: Option<Timestamp>,
    /// The notice version the member saw.
    #[arg(long)]
    pub notice_version: Option<String>,
    /// A client-supplied id making retries idempotent.
    #[arg(long)]
    pub event_id: Option<i64>,
    /// Who records it.
    #[arg(long)]
    pub actor: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `consent get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Member id.
    #[arg(long)]
    pub member: i64,
    /// Purpose.
    #[arg(long, value_parser = args::purpose)]
    pub purpose: Purpose,
    /// The instant (default: now).
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub as_of: Option<Timestamp>,
    /// Count a GPC signal as an objection (the default policy does).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub gpc_as_objection: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `consent history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Member id.
    #[arg(long)]
    pub member: i64,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `consent import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files named by their table: consent.*, members.*, residences.*, notices.*, erasures.*.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// A TOML policy config whose `[[purpose]]` tables extend the purpose catalogue the
    /// import accepts (default: the built-in catalogue).
    #[arg(long, value_name = "TOML")]
    pub config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `consent export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Purpose.
    #[arg(long, value_parser = args::purpose)]
    pub purpose: Purpose,
    /// The cut-off.
    #[arg(long, value_name = "TIME", value_parser = args::timestamp)]
    pub as_of: Timestamp,
    /// Output file (.parquet, .csv or .jsonl).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of the hidden `consent stress-write`.
#[derive(Debug, Args)]
pub struct StressArgs {
    /// How many events.
    #[arg(long)]
    pub count: u64,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
}

#[derive(Serialize)]
struct GetReport<'a> {
    member: i64,
    purpose: &'a str,
    as_of: Timestamp,
    granted: Option<bool>,
    event: Option<&'a StoredEvent>,
    gpc_signal: bool,
}

/// Runs `consent ...`.
pub fn run(cmd: ConsentCommand, printer: Printer) -> anyhow::Result<()> {
    match cmd {
        ConsentCommand::Set(a) => {
            let printer = Printer {
                json: a.json,
                ..printer
            };
            let mut store = a.store.open()?;
            let mut e = NewEvent::new(
                MemberId(a.member),
                a.purpose,
                a.granted,
                a.at.unwrap_or_else(now),
            );
            e.event.source = ConsentSource::from(a.source.as_str());
            e.event.notice_version = a.notice_version;
            e.event.event_id = a.event_id.map(EventId);
            e.actor = a.actor.or_else(|| Some("cli".into()));
            let stored = store.append(&[e])?;
            let s = stored.first().context("the ledger returned no event")?;
            printer.status(
                "Recorded",
                format!("event {} for member {}", s.seq, s.event.member_id),
            );
            printer.data(s, || {
                format!(
                    "{} member {} {} granted={} at {}\n",
                    s.seq, s.event.member_id, s.event.purpose, s.event.granted, s.event.ts
                )
            })
        }
        ConsentCommand::Get(a) => {
            let printer = Printer {
                json: a.json,
                ..printer
            };
            let mut store = a.store.open_existing()?;
            let as_of = a.as_of.unwrap_or_else(now);
            let (state, deciding) = store.state_at(MemberId(a.member), &a.purpose, as_of)?;
            let granted = state.granted(a.gpc_as_objection);
            let gpc_counts = a.gpc_as_objection && state.gpc_signal.is_some();
            let event = if gpc_counts {
                deciding.last()
            } else {
                deciding.first()
            };
            let report = GetReport {
                member: a.member,
                purpose: a.purpose.as_str(),
                as_of,
                granted,
                event,
                gpc_signal: state.gpc_signal.is_some(),
            };
            printer.data(&report, || {
                let g = granted.map_or("none (no event applies)".to_owned(), |g| g.to_string());
                let e = event.map_or(String::new(), |e| {
                    format!(
                        " — event {} ({}, {}, {})",
                        e.seq,
                        e.event.source,
                        e.event.ts,
                        if e.event.granted {
                            "grant"
                        } else {
                            "withdrawal"
                        }
                    )
                });
                format!(
                    "member {} {} as of {}: granted {g}{e}\n",
                    a.member, a.purpose, as_of
                )
            })
        }
        ConsentCommand::History(a) => {
            let printer = Printer {
                json: a.json,
                ..printer
            };
            let mut store = a.store.open_existing()?;
            let events = store.history(MemberId(a.member))?;
            printer.data(&events, || {
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "{:>8}  {}  {:<16} {:<6} {:<15} {}\n",
                            e.seq,
                            e.event.ts,
                            e.event.purpose,
                            if e.event.granted { "grant" } else { "deny" },
                            e.event.source,
                            e.event.notice_version.as_deref().unwrap_or("-")
                        )
                    })
                    .collect()
            })
        }
        ConsentCommand::Import(a) => {
            let printer = Printer {
                json: a.json,
                ..printer
            };
            let config = match &a.config {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| {
                        format!("cannot read policy config `{}`", path.display())
                    })?;
                    cg_policy::PolicyConfig::from_toml(&path.display().to_string(), &text)?
                }
                None => cg_policy::PolicyConfig::default(),
            };
            let catalogue = config.catalogue();
            let mut store = a.store.open()?;
            let bars = Bars::new(printer);
            let mut reports = Vec::new();
            for f in &a.files {
                let started = Instant::now();
                let r = cg_ledger::import_file_with(store.as_mut(), f, &catalogue, &bars)?;
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let rows =
                    r.events + r.duplicates + r.members + r.residences + r.notices + r.erasures;
                printer.status(
                    "Imported",
                    format!(
                        "{} ({rows} rows in {secs:.2}s, {:.0} rows/s)",
                        f.display(),
                        rows as f64 / secs
                    ),
                );
                reports.push(serde_json::json!({ "file": f, "report": r, "seconds": secs }));
            }
            printer.data(&reports, || {
                reports
                    .iter()
                    .map(|r| format!("{}: {}\n", r["file"].as_str().unwrap_or(""), r["report"]))
                    .collect()
            })
        }
        ConsentCommand::Export(a) => {
            let mut store = a.store.open_existing()?;
            let started = Instant::now();
            let n = export(store.as_mut(), &a.purpose, a.as_of, &a.out)?;
            printer.status(
                "Exported",
                format!(
                    "{n} members to {} in {:.2}s",
                    a.out.display(),
                    started.elapsed().as_secs_f64()
                ),
            );
            Ok(())
        }
        ConsentCommand::StressWrite(a) => {
            let mut store = a.store.open()?;
            let mut out = std::io::stdout().lock();
            for i in 1..=a.count {
                let mut e = NewEvent::new(
                    MemberId(i as i64),
                    Purpose::genai_training(),
                    i % 2 == 0,
                    now(),
                );
                e.event.event_id = Some(EventId(i as i64));
                store.append(&[e])?;
                use std::io::Write;
                writeln!(out, "ack {i}")?;
                out.flush()?;
            }
            Ok(())
        }
    }
}

/// Writes the as-of snapshot of `purpose` to `out`.
pub fn export(
    store: &mut dyn Store,
    purpose: &Purpose,
    as_of: Timestamp,
    out: &std::path::Path,
) -> anyhow::Result<u64> {
    let schema = cg_io::schema::consent_snapshot();
    let mut w = cg_io::TableWriter::create(out, schema.clone())?;
    let mut b = SnapshotBuilder::default();
    let flush = |b: &mut SnapshotBuilder, w: &mut cg_io::TableWriter| -> anyhow::Result<()> {
        let batch = b.finish(schema.clone())?;
        if batch.num_rows() > 0 {
            w.write(&batch)?;
        }
        Ok(())
    };
    let mut err = None;
    let n = store.snapshot(purpose, as_of, &mut |row| {
        b.push(&row);
        if b.len == 64 * 1024
            && let Err(e) = flush(&mut b, &mut w)
        {
            err = Some(e);
            return Err(cg_ledger::LedgerError::Database {
                backend: "export",
                message: "write failed".into(),
            });
        }
        Ok(())
    });
    if let Some(e) = err {
        return Err(e);
    }
    let n = n?;
    flush(&mut b, &mut w)?;
    w.finish()?;
    Ok(n)
}

#[derive(Default)]
struct SnapshotBuilder {
    len: usize,
    member: Int64Builder,
    granted: BooleanBuilder,
    decided_at: Option<TimestampMicrosecondBuilder>,
    source: StringBuilder,
    notice: StringBuilder,
    seq: Int64Builder,
    gpc_at: Option<TimestampMicrosecondBuilder>,
    other: BooleanBuilder,
}

impl SnapshotBuilder {
    fn ts(b: &mut Option<TimestampMicrosecondBuilder>) -> &mut TimestampMicrosecondBuilder {
        b.get_or_insert_with(|| TimestampMicrosecondBuilder::new().with_timezone("+00:00"))
    }

    fn push(&mut self, r: &cg_ledger::SnapshotRow) {
        self.len += 1;
        self.member.append_value(r.member_id.0);
        self.granted
            .append_option(r.explicit.as_ref().map(|c| c.granted));
        Self::ts(&mut self.decided_at).append_option(r.explicit.as_ref().map(|c| c.at.micros()));
        self.source
            .append_option(r.explicit.as_ref().map(|c| c.source.as_str().to_owned()));
        self.notice
            .append_option(r.explicit.as_ref().and_then(|c| c.notice_version.clone()));
        self.seq.append_option(r.explicit_seq);
        Self::ts(&mut self.gpc_at).append_option(r.gpc_at.map(Timestamp::micros));
        self.other.append_value(r.other_purpose_grant);
    }

    fn finish(&mut self, schema: arrow::datatypes::SchemaRef) -> anyhow::Result<RecordBatch> {
        self.len = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.member.finish()),
            Arc::new(self.granted.finish()),
            Arc::new(Self::ts(&mut self.decided_at).finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.notice.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(Self::ts(&mut self.gpc_at).finish()),
            Arc::new(self.other.finish()),
        ];
        Ok(RecordBatch::try_new(schema, cols)?)
    }
}
