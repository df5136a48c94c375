//! # consentgate — the command-line tool
//!
//! Decides, provably, which member data a platform may use to train its generative-AI models.
//! See `docs/architecture.md` for the crate map and data flow; `consentgate --help` for commands.
//!
//! Conventions: data goes to stdout (JSON with `--json`), status and progress to stderr; exit
//! code 0 on success, 1 on error, 2 on a usage error.

mod commands;
mod errors;
mod printer;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::printer::Printer;

/// mimalloc instead of glibc's malloc: the build allocates and frees batch buffers by the
/// million on many threads, and glibc's malloc keeps more of that memory mapped. At 10 M rows
/// the build's peak RSS is ~20 % lower (a cluster's client ~20 %, executors ~8 %) at the same
/// speed, with identical output (docs/build.md, "The allocator"). Off with
/// `--no-default-features --features ballista`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Transparent huge pages off for this process, before any thread starts. mimalloc asks the
/// kernel for huge pages, and the first touch of one clears all 2 MiB however little of it is
/// used, again after every purge: at 10 M rows the build was ~9 % faster without them (8.97 s
/// against 9.89 s median, 16.5 against 18.3 CPU-s) at a lower peak RSS (docs/build.md, "The
/// allocator"). A kernel that refuses the request changes nothing else.
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
fn without_transparent_huge_pages() {
    // A hint about page sizes, nothing the output depends on: a refusal is not an error.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

/// consentgate: decides, provably, which member data may train generative-AI models.
#[derive(Debug, Parser)]
#[command(name = "consentgate", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// No status lines or progress bars on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Print each stage's wall time on stderr as it ends (member facts, compile, decide,
    /// write, …), even with `--quiet`: where a long job spends its time; and figures such
    /// as how many attribute tuples Cedar decided.
    #[arg(long, global = true)]
    timings: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a corpus, load the ledger, build two datasets (inside the 2024-09 suspension and
    /// after the 2025-11 resumption) and show what the gate decided.
    Demo(commands::build::DemoArgs),
    /// Build a dataset: the gate over member content, redaction, shards, decisions, manifest.
    Build(Box<commands::build::BuildArgs>),
    /// Write a deterministic synthetic corpus (members, residences, consent, notices, erasures,
    /// content, and the ground truth of the PII in the content).
    Generate(commands::generate::GenerateArgs),
    /// Check policies, explain decisions.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// Remove personal data from text lines or JSONL (`{"text": ...}`), or print its spans.
    Redact(commands::redact::RedactArgs),
    /// The consent ledger: set, get, history, import, export.
    #[command(subcommand)]
    Consent(commands::consent::ConsentCommand),
    /// The transparency log: append, checkpoint, verify, prove, export-tiles.
    #[command(subcommand)]
    Log(commands::log::LogCommand),
    /// The log's signing key: init, show.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Member receipts: issue, verify (offline).
    #[command(subcommand)]
    Receipt(commands::receipt::ReceiptCommand),
    /// Published datasets: verify.
    #[command(subcommand)]
    Dataset(commands::dataset::DatasetCommand),
    /// Evidence documents: a dataset's build report (HTML), the AI Act training-content
    /// summary, a GDPR Art 30 record of processing.
    #[command(subcommand)]
    Report(commands::report::ReportCommand),
    /// Which datasets, shards and models hold the content of members who withdrew or asked
    /// for erasure.
    Impact(Box<commands::withdrawal::ImpactArgs>),
    /// Rebuild a dataset at a later cut-off, rewriting only the shards whose rows changed.
    Rebuild(Box<commands::withdrawal::RebuildArgs>),
    /// Stream consent changes and dataset manifests as JSON lines, each with its log index.
    Watch(commands::withdrawal::WatchArgs),
    /// Run the HTTP service: the API, the member privacy page and the auditor dashboard.
    Serve(Box<commands::serve::ServeArgs>),
    /// API tokens: issue, revoke, list.
    #[command(subcommand)]
    Token(commands::serve::TokenCommand),
    /// Run an Apache Ballista scheduler for distributed builds (`build --engine ballista://…`).
    #[cfg(feature = "ballista")]
    Scheduler(commands::cluster::SchedulerArgs),
    /// Run an Apache Ballista executor that serves a scheduler's distributed builds.
    #[cfg(feature = "ballista")]
    Executor(commands::cluster::ExecutorArgs),
}

fn main() -> ExitCode {
    #[cfg(all(feature = "mimalloc", target_os = "linux"))]
    without_transparent_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version exit 0; usage errors exit 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let printer = Printer {
        json: false,
        quiet: cli.quiet,
        timings: cli.timings,
    };
    let result = match cli.command {
        Command::Demo(args) => commands::build::demo(args, printer),
        Command::Build(args) => commands::build::run(*args, printer),
        Command::Generate(args) => commands::generate::run(args, printer),
        Command::Policy(cmd) => commands::policy::run(cmd, printer),
        Command::Redact(args) => commands::redact::run(args, printer),
        Command::Consent(cmd) => commands::consent::run(cmd, printer),
        Command::Log(cmd) => commands::log::run(cmd, printer),
        Command::Keys(cmd) => commands::keys::run(cmd, printer),
        Command::Receipt(cmd) => commands::receipt::run(cmd, printer),
        Command::Dataset(cmd) => commands::dataset::run(cmd, printer),
        Command::Report(cmd) => commands::report::run(cmd, printer),
        Command::Impact(args) => commands::withdrawal::impact(*args, printer),
        Command::Rebuild(args) => commands::withdrawal::rebuild(*args, printer),
        Command::Watch(args) => commands::withdrawal::watch(args, printer),
        Command::Serve(args) => commands::serve::serve(*args, printer),
        Command::Token(cmd) => commands::serve::token(cmd, printer),
        #[cfg(feature = "ballista")]
        Command::Scheduler(args) => commands::cluster::scheduler(args, printer),
        #[cfg(feature = "ballista")]
        Command::Executor(args) => commands::cluster::executor(args, printer),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(errors::report(&err)),
    }
}

/// The process's peak resident set size, from `/proc/self/status` (Linux), if available.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(all(test, feature = "mimalloc", target_os = "linux"))]
mod tests {
    /// After the start-up call the kernel reports huge pages off for the process.
    #[test]
    fn transparent_huge_pages_are_off_after_start_up() {
        super::without_transparent_huge_pages();
        assert_eq!(
            rustix::thread::transparent_huge_pages_are_disabled().ok(),
            Some(true)
        );
    }
}
