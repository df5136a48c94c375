//! `consentgate scheduler` and `consentgate executor`: an Apache Ballista cluster that runs
//! `build --engine ballista://HOST:PORT` with consentgate's UDFs and codecs on every side.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::printer::Printer;

/// Arguments of `scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Address of the scheduler's gRPC service (executors and `build --engine` connect here).
    #[arg(long, default_value = "127.0.0.1:50050", value_name = "HOST:PORT")]
    pub bind: SocketAddr,
    /// Seconds without a poll from an executor before it counts as lost and its tasks run
    /// elsewhere (at least 10: executors pull their tasks, and a busy one polls every 5 s).
    #[arg(long, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(cg_build::distributed::MIN_EXECUTOR_TIMEOUT_SECS..))]
    pub executor_timeout: u64,
    /// Hand tasks to the executors in turn instead of filling one executor's task slots first:
    /// each executor then decides (and holds the member facts of) a share of the shards.
    #[arg(long)]
    pub round_robin: bool,
}

/// Arguments of `executor`.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// The scheduler.
    #[arg(long, value_name = "HOST:PORT")]
    pub scheduler: String,
    /// Address of the executor's Arrow Flight service (results and shuffle data); the next
    /// port is advertised as its gRPC port unless --grpc-port says otherwise.
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "HOST:PORT")]
    pub bind: SocketAddr,
    /// gRPC port advertised to the scheduler. Executors pull their tasks, so nothing listens
    /// on it; kept so existing command lines run unchanged.
    #[arg(long, value_name = "PORT")]
    pub grpc_port: Option<u16>,
    /// Tasks run at once (default: one per core).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Directory for shuffle files (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Has no effect: executors pull their tasks, and each request for work is a heartbeat
    /// (every 50 ms while idle, at most 5 s apart while busy; Ballista 55's fixed intervals).
    /// Kept so existing command lines run unchanged.
    #[arg(long, default_value_t = 5, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat: u64,
    /// Memory the executor's build tasks may hold before they spill to its temporary
    /// directory, in MiB, shared by the tasks running at once (half of it for rows waiting to
    /// be sorted into their shards, as in an embedded build).
    #[arg(long, value_name = "MIB", default_value_t = cg_build::DEFAULT_EXECUTOR_MEMORY_MB,
          value_parser = crate::commands::build::memory_mb)]
    pub memory_mb: usize,
    /// The member-key secret (`consentgate keys export-member-key`, mode 0600): the executor's
    /// tasks of builds with `--key-scheme vrf` then derive the member keys of the shards they
    /// write, where the members are, instead of the client deriving every key (a roster, the
    /// default, needs no key on the executors). It cannot sign the log's checkpoints.
    #[arg(long, value_name = "PATH")]
    pub member_key: Option<PathBuf>,
}

/// Ballista's own log (task starts and failures, executors joining and leaving) goes to stderr,
/// at the level `CG_LOG` names (`error`, `warn`, `info` — the default — `debug`, `trace`).
fn init_log() -> anyhow::Result<()> {
    let level = match std::env::var("CG_LOG") {
        Err(_) => log::LevelFilter::Info,
        Ok(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("CG_LOG=`{v}` is not a log level"))?,
    };
    log::set_logger(&STDERR_LOG).map_err(|e| anyhow::anyhow!("cannot start the log: {e}"))?;
    log::set_max_level(level);
    Ok(())
}

/// Writes each record as one line: time, level, module, message.
struct StderrLog;

static STDERR_LOG: StderrLog = StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let now = cg_model::Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc());
            eprintln!(
                "{now} {:>5} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs `scheduler` until the process is stopped.
pub fn scheduler(a: SchedulerArgs, printer: Printer) -> anyhow::Result<()> {
    init_log()?;
    printer.status(
        "Scheduling",
        format!(
            "Ballista scheduler on {} (run `consentgate executor --scheduler {}`, then `build --engine ballista://{}`)",
            a.bind, a.bind, a.bind
        ),
    );
    let opts = cg_build::distributed::SchedulerOptions {
        bind: a.bind,
        executor_timeout_secs: a.executor_timeout,
        round_robin: a.round_robin,
    };
    runtime()?
        .block_on(cg_build::distributed::run_scheduler(opts))
        .with_context(|| format!("the scheduler on {} stopped", a.bind))
}

/// Runs `executor` until the process is stopped.
pub fn executor(a: ExecutorArgs, printer: Printer) -> anyhow::Result<()> {
    init_log()?;
    let (host, port) = a
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .with_context(|| format!("--scheduler `{}` is not HOST:PORT", a.scheduler))?;
    let grpc_port = match a.grpc_port {
        Some(p) => p,
        None => a
            .bind
            .port()
            .checked_add(1)
            .context("--bind port 65535 leaves no port for gRPC: set --grpc-port")?,
    };
    let work_dir = match &a.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("cannot create --work-dir `{}`", d.display()))?;
            Some(d.to_str().context("--work-dir is not UTF-8")?.to_owned())
        }
        None => None,
    };
    let member_key = a
        .member_key
        .as_deref()
        .map(crate::commands::keys::read_member_key)
        .transpose()?;
    if let (Some(path), Some(key)) = (&a.member_key, &member_key) {
        printer.status(
            "Loaded",
            format!(
                "the member key {} (VRF public key {})",
                path.display(),
                cg_proof::hex(&key.public_key())
            ),
        );
    }
    printer.status(
        "Executing",
        format!(
            "Ballista executor on {} for the scheduler at {host}:{port} (asking it for tasks)",
            a.bind
        ),
    );
    let opts = cg_build::distributed::ExecutorOptions {
        scheduler_host: host,
        scheduler_port: port,
        bind_host: a.bind.ip().to_string(),
        flight_port: a.bind.port(),
        grpc_port,
        concurrency: a.concurrency.unwrap_or(0),
        work_dir,
        memory_mb: a.memory_mb,
        member_key,
    };
    runtime()?
        .block_on(cg_build::distributed::run_executor(opts))
        .with_context(|| format!("the executor on {} stopped", a.bind))
}
