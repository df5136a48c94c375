//! `consentgate generate`: a deterministic synthetic corpus in the input contract.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::errors::Hinted;
use crate::printer::Printer;
use crate::progress::Bars;

/// A table file format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    /// Apache Parquet.
    Parquet,
    /// CSV with a header row (lists as `;`-joined text).
    Csv,
    /// JSON lines.
    Jsonl,
}

impl From<FormatArg> for cg_io::Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Parquet => cg_io::Format::Parquet,
            FormatArg::Csv => cg_io::Format::Csv,
            FormatArg::Jsonl => cg_io::Format::Jsonl,
        }
    }
}

/// Arguments of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of members.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub members: u64,
    /// Number of content rows.
    #[arg(long, default_value_t = 1_000_000)]
    pub content: u64,
    /// Seed: the same seed gives byte-identical files.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// File format.
    #[arg(long, value_enum, default_value_t = FormatArg::Parquet)]
    pub format: FormatArg,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a cg_synth::CorpusSummary,
    seconds: f64,
    rows_per_second: f64,
    bytes_written: u64,
    megabytes_per_second: f64,
    peak_rss_bytes: Option<u64>,
}

/// Runs `generate`.
pub fn run(args: GenerateArgs, printer: Printer) -> anyhow::Result<()> {
    let printer = Printer {
        json: args.json,
        ..printer
    };
    let cfg = cg_synth::CorpusConfig {
        members: args.members,
        content: args.content,
        seed: args.seed,
        format: args.format.into(),
    };
    printer.status(
        "Generating",
        format!(
            "{} members, {} content rows (seed {}) into {}",
            cfg.members,
            cfg.content,
            cfg.seed,
            args.out.display()
        ),
    );
    let started = Instant::now();
    let bars = Bars::new(printer);
    let summary = cg_synth::generate(&cfg, &args.out, &bars).map_err(|e| {
        let hint = format!(
            "check that `{}` is a writable directory",
            args.out.display()
        );
        anyhow::Error::new(e).context(Hinted {
            message: "cannot generate the corpus".into(),
            hint,
        })
    })?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let rows: u64 = summary.tables.iter().map(|t| t.rows).sum();
    let mut bytes = 0;
    for t in &summary.tables {
        bytes += std::fs::metadata(&t.path)
            .with_context(|| format!("cannot stat `{}`", t.path.display()))?
            .len();
    }
    let report = Report {
        summary: &summary,
        seconds,
        rows_per_second: rows as f64 / seconds,
        bytes_written: bytes,
        megabytes_per_second: bytes as f64 / 1e6 / seconds,
        peak_rss_bytes: crate::peak_rss_bytes(),
    };
    printer.status(
        "Finished",
        format!(
            "{rows} rows in {seconds:.1}s ({:.0} rows/s, {:.1} MB/s written{})",
            report.rows_per_second,
            report.megabytes_per_second,
            report
                .peak_rss_bytes
                .map(|b| format!(", peak RSS {} MiB", b >> 20))
                .unwrap_or_default()
        ),
    );
    printer.data(&report, || {
        let mut s = String::new();
        for t in &summary.tables {
            s.push_str(&format!(
                "{:<11} {:>12} rows  {}\n",
                t.table,
                t.rows,
                t.path.display()
            ));
        }
        s
    })
}
