//! The ledger, off the async workers.
//!
//! Handlers never touch a database connection on a Tokio worker and never hold a lock across a
//! request. A [`StorePool`] owns a few connections, each on its own OS thread (the `postgres`
//! client runs its own runtime and cannot be driven from inside another one), in two lanes:
//!
//! - **interactive** (`/v1/check`, sign-in, a member's page and setting, token checks): several
//!   connections, a queue of bounded length, a short wait;
//! - **bulk** (10 000-item batches, full log verification, tiles, imports): one connection of
//!   its own, so a batch never stands in front of a check.
//!
//! A full queue answers 503 `overloaded` with `Retry-After` at once; a call that does not get
//! an answer within the lane's wait answers 503 too — never a stall. A connection found broken
//! (a terminated PostgreSQL session) is replaced on the next call, with backoff between
//! attempts while the database is away; meanwhile calls answer 503 `unavailable` and the log
//! says why. SQLite connections share the file in WAL mode (readers never wait for the writer).
//! The bulk lane's thread runs in Linux's `SCHED_IDLE` class (nice 10 where that is refused),
//! so a batch or a full log verification yields a busy core to checks at once.
//!
//! One exception to "never on a Tokio worker": on the embedded (SQLite) ledger,
//! [`StorePool::read`] serves short point reads (`/v1/check`: the token, the member's rows and
//! at most three deciding events; every request's token check) on the calling worker with a read-only connection of that thread's own. Such a
//! read costs tens of microseconds of CPU and never waits for the writer (WAL); handing it to a
//! pool thread and back cost two thread wake-ups, most of a check's time under load. Its wait
//! is bounded too (a busy wait of [`LOCAL_BUSY_WAIT`] at most), and a read that cannot be
//! served there (busy, or no connection could be opened) goes to the interactive lane as
//! before. PostgreSQL reads are network round trips and always go to a lane.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use cg_ledger::{LedgerError, Store};

use crate::error::ApiError;

/// Makes a new connection to the ledger.
pub type Opener = Arc<dyn Fn() -> Result<Box<dyn Store>, LedgerError> + Send + Sync>;

/// Which queue a call waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Short calls a person or a service is waiting for.
    Interactive,
    /// Long calls (batches, full verification, tiles, imports).
    Bulk,
}

/// Sizes and waits of a [`StorePool`].
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Connections serving the interactive lane.
    pub interactive_connections: usize,
    /// Calls that may wait in the interactive lane before new ones are refused.
    pub interactive_queue: usize,
    /// How long an interactive call may take, waiting included.
    pub interactive_wait: Duration,
    /// Calls that may wait in the bulk lane.
    pub bulk_queue: usize,
    /// How long a bulk call may take, waiting included.
    pub bulk_wait: Duration,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            interactive_connections: 4,
            interactive_queue: 2_048,
            interactive_wait: Duration::from_secs(10),
            bulk_queue: 32,
            bulk_wait: Duration::from_secs(120),
        }
    }
}

type Job = Box<dyn FnOnce(Result<&mut dyn Store, LedgerError>) + Send>;

struct LaneQueue {
    jobs: SyncSender<Job>,
    wait: Duration,
    name: &'static str,
}

/// Connections to the ledger on their own threads, in two lanes.
pub struct StorePool {
    interactive: LaneQueue,
    bulk: LaneQueue,
    backend: &'static str,
    local: Option<LocalReaders>,
}

/// The longest a read on a worker's own SQLite connection waits for a lock before it is handed
/// to the interactive lane instead.
pub const LOCAL_BUSY_WAIT: Duration = Duration::from_millis(20);

/// Opens a read-only connection for a thread's own point reads.
pub type ReaderOpener = Arc<dyn Fn() -> Result<Box<dyn Store>, LedgerError> + Send + Sync>;

/// Per-thread read-only connections of one pool (see the module docs). Each thread that calls
/// [`StorePool::read`] opens its own on first use and keeps it while the pool lives: there are
/// as many as the runtime has threads that answer checks.
struct LocalReaders {
    id: u64,
    open: ReaderOpener,
    alive: Arc<()>,
}

/// A thread's reader of one pool: the pool's id, whether the pool still exists, the connection
/// (none after a failed open, until `retry_at`).
struct ThreadReader {
    pool: u64,
    alive: Weak<()>,
    store: Option<Box<dyn Store>>,
    retry_at: Instant,
}

/// How long a thread whose reader could not be opened leaves its reads to the lanes before it
/// tries again.
const READER_RETRY: Duration = Duration::from_secs(5);

thread_local! {
    static THREAD_READERS: RefCell<Vec<ThreadReader>> = const { RefCell::new(Vec::new()) };
}

static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

impl LocalReaders {
    fn new(open: ReaderOpener) -> LocalReaders {
        LocalReaders {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            open,
            alive: Arc::new(()),
        }
    }

    /// Runs `f` with this thread's reader, opening it first if needed. `None`: no reader could
    /// be had here (the caller asks a lane instead).
    fn with<R>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<R, ApiError>,
    ) -> Option<Result<R, ApiError>> {
        THREAD_READERS.with(|readers| {
            // A reader in use further up this thread's stack is not shared: that call asks a
            // lane.
            let mut readers = readers.try_borrow_mut().ok()?;
            let at = match readers.iter().position(|r| r.pool == self.id) {
                Some(at) => at,
                None => {
                    // Connections of pools that are gone are closed here.
                    readers.retain(|r| r.alive.strong_count() > 0);
                    readers.push(ThreadReader {
                        pool: self.id,
                        alive: Arc::downgrade(&self.alive),
                        store: None,
                        retry_at: Instant::now(),
                    });
                    readers.len() - 1
                }
            };
            let reader = &mut readers[at];
            if reader.store.is_none() {
                if Instant::now() < reader.retry_at {
                    return None;
                }
                match (self.open)() {
                    Ok(store) => reader.store = Some(store),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open a reader on this thread; reads go to the pool");
                        reader.retry_at = Instant::now() + READER_RETRY;
                        return None;
                    }
                }
            }
            let store = reader.store.as_mut()?.as_mut();
            match std::panic::catch_unwind(AssertUnwindSafe(|| f(store))) {
                Ok(r) => Some(r),
                Err(_) => {
                    tracing::error!("a ledger read panicked: closing this thread's reader");
                    reader.store = None;
                    Some(Err(ApiError::internal(
                        "a ledger call stopped without an answer",
                    )))
                }
            }
        })
    }
}

impl std::fmt::Debug for StorePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePool")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn unavailable(message: &str) -> LedgerError {
    LedgerError::Database {
        backend: "pool",
        message: message.to_owned(),
    }
}

impl StorePool {
    /// A pool of connections to `url` (what [`cg_ledger::open`] takes). The first connection
    /// opens (and migrates) before this returns: a bad URL or an unreachable database fails the
    /// start, not the first request.
    pub fn open(url: &str, cfg: &PoolConfig) -> Result<StorePool, LedgerError> {
        let owned = url.to_owned();
        let pool = StorePool::with_opener(Arc::new(move || cg_ledger::open(&owned)), cfg)?;
        // Readers open lazily, after the pool's first connection has created and migrated the
        // ledger; only the embedded backend has them.
        if pool.backend() == "sqlite" {
            let owned = url.to_owned();
            return Ok(pool.with_thread_readers(Arc::new(move || {
                cg_ledger::open_reader(&owned, LOCAL_BUSY_WAIT)
                    .unwrap_or_else(|| Err(unavailable("this ledger has no thread-local readers")))
            })));
        }
        Ok(pool)
    }

    /// Serves [`StorePool::read`] on the calling thread with connections `open` makes (one per
    /// thread, read-only).
    pub fn with_thread_readers(mut self, open: ReaderOpener) -> StorePool {
        self.local = Some(LocalReaders::new(open));
        self
    }

    /// A pool whose connections `opener` makes.
    pub fn with_opener(opener: Opener, cfg: &PoolConfig) -> Result<StorePool, LedgerError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (interactive, irx) = std::sync::mpsc::sync_channel::<Job>(cfg.interactive_queue.max(1));
        let (bulk, brx) = std::sync::mpsc::sync_channel::<Job>(cfg.bulk_queue.max(1));
        let irx = Arc::new(Mutex::new(irx));
        let brx = Arc::new(Mutex::new(brx));
        let n = cfg.interactive_connections.max(1);
        // The first connection migrates alone; the others start once it is ready.
        spawn_worker("cg-ledger-0", opener.clone(), irx.clone(), Some(ready_tx))?;
        let backend = ready_rx
            .recv()
            .map_err(|_| unavailable("the ledger thread stopped while opening"))??;
        for i in 1..n {
            spawn_worker(&format!("cg-ledger-{i}"), opener.clone(), irx.clone(), None)?;
        }
        spawn_worker(BULK_THREAD, opener, brx, None)?;
        // (The bulk thread lowers its own priority when it starts: see `worker`.)
        Ok(StorePool {
            interactive: LaneQueue {
                jobs: interactive,
                wait: cfg.interactive_wait,
                name: "interactive",
            },
            bulk: LaneQueue {
                jobs: bulk,
                wait: cfg.bulk_wait,
                name: "bulk",
            },
            backend,
            local: None,
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    fn lane(&self, lane: Lane) -> &LaneQueue {
        match lane {
            Lane::Interactive => &self.interactive,
            Lane::Bulk => &self.bulk,
        }
    }

    fn submit(&self, lane: Lane, job: Job) -> Result<Duration, ApiError> {
        let q = self.lane(lane);
        match q.jobs.try_send(job) {
            Ok(()) => Ok(q.wait),
            Err(TrySendError::Full(_)) => {
                tracing::warn!(lane = q.name, "ledger queue full: refusing a call");
                Err(ApiError::overloaded(
                    "the service is busy; try again shortly",
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(ApiError::from(unavailable("the ledger threads stopped")))
            }
        }
    }

    /// Runs `f` with a connection of `lane` and waits (asynchronously, bounded) for its result.
    pub async fn run<R: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&mut dyn Store) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let wait = self.submit(
            lane,
            Box::new(move |store| {
                let _ = tx.send(store.map_err(ApiError::from).and_then(f));
            }),
        )?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ApiError::internal(
                "a ledger call stopped without an answer",
            )),
            Err(_) => Err(ApiError::overloaded(
                "the ledger did not answer in time; try again shortly",
            )),
        }
    }

    /// A short read (no write: the thread's connection refuses them) on the calling thread's
    /// own connection where the backend allows it (see the module docs), else — and when that
    /// connection is busy or cannot be opened — on the interactive lane like [`StorePool::run`].
    /// `f` may run twice (once here, then on the lane), so it must only read.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl Fn(&mut dyn Store) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        if let Some(local) = &self.local {
            match local.with(&f) {
                // A storage error (busy, or a write refused): the lane answers instead.
                Some(Err(e)) if e.code == "unavailable" => {}
                Some(answer) => return answer,
                None => {}
            }
        }
        self.run(Lane::Interactive, f).await
    }

    /// [`StorePool::run`] for callers outside the async runtime (start-up).
    pub fn run_blocking<R: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&mut dyn Store) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let wait = self.submit(
            lane,
            Box::new(move |store| {
                let _ = tx.send(store.map_err(ApiError::from).and_then(f));
            }),
        )?;
        match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(ApiError::overloaded(
                "the ledger did not answer in time; try again shortly",
            )),
            Err(_) => Err(ApiError::internal(
                "a ledger call stopped without an answer",
            )),
        }
    }
}

fn spawn_worker(
    name: &str,
    opener: Opener,
    jobs: Arc<Mutex<Receiver<Job>>>,
    ready: Option<std::sync::mpsc::Sender<Result<&'static str, LedgerError>>>,
) -> Result<(), LedgerError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || worker(opener, jobs, ready))
        .map(drop)
        .map_err(|e| unavailable(&format!("cannot start a ledger thread: {e}")))
}

/// The name of the bulk lane's thread.
const BULK_THREAD: &str = "cg-ledger-bulk";

/// Backoff between reconnection attempts while the database is away.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The niceness of the bulk lane's thread where `SCHED_IDLE` cannot be had.
const BULK_NICENESS: i32 = 10;

/// Puts the bulk lane's thread in Linux's `SCHED_IDLE` class: it runs only on a core nothing
/// else wants, and a waking check preempts it at once. Nice 10 (the fallback) still let a
/// verification hold a core for a scheduler slice: under `benchmarks/soak.sh`'s mixed load the
/// checks' p99 was 3.7–3.9 ms with nice 10 and 2.3–2.4 ms in `SCHED_IDLE` (three runs each).
/// The lane's bounded wait still applies: a batch that gets no CPU answers 503, never stalls.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = set_thread_priority_and_policy(
            thread_native_id(),
            ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
        if let Err(e) = idle {
            tracing::warn!(error = ?e, "no SCHED_IDLE for the bulk lane; using nice {BULK_NICENESS}");
            if let Err(e) =
                rustix::process::setpriority_process(Some(rustix::thread::gettid()), BULK_NICENESS)
            {
                tracing::warn!(error = %e, "cannot lower the bulk lane's priority");
            }
        }
    }
}

fn worker(
    opener: Opener,
    jobs: Arc<Mutex<Receiver<Job>>>,
    ready: Option<std::sync::mpsc::Sender<Result<&'static str, LedgerError>>>,
) {
    if std::thread::current().name() == Some(BULK_THREAD) {
        lower_priority();
    }
    let mut store = match opener() {
        Ok(s) => {
            if let Some(r) = ready {
                let _ = r.send(Ok(s.backend()));
            }
            Some(s)
        }
        Err(e) => {
            if let Some(r) = ready {
                let _ = r.send(Err(e));
                return;
            }
            tracing::error!(error = %e, "cannot open a ledger connection");
            None
        }
    };
    let mut next_attempt = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        // The receiver's lock is held only while waiting for the next job, never while one runs.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // the pool is gone
        };
        if store.as_mut().is_some_and(|s| s.is_broken()) {
            tracing::error!("the ledger connection was lost: reconnecting");
            store = None;
        }
        if store.is_none() && Instant::now() >= next_attempt {
            match opener() {
                Ok(s) => {
                    tracing::info!("reconnected to the ledger");
                    store = Some(s);
                    backoff = FIRST_BACKOFF;
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot reach the ledger");
                    next_attempt = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match store.as_mut() {
            Some(s) => job(Ok(s.as_mut())),
            None => job(Err(unavailable("the ledger is unreachable; retrying"))),
        }));
        if outcome.is_err() {
            // A call panicked: its transaction rolled back, but do not reuse the connection.
            tracing::error!("a ledger call panicked: reopening the connection");
            store = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_pool(cfg: &PoolConfig) -> (tempfile::TempDir, StorePool) {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("l.sqlite").display().to_string();
        let pool = StorePool::open(&url, cfg).unwrap();
        (dir, pool)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn interactive_calls_do_not_wait_behind_a_bulk_call() {
        let (_dir, pool) = sqlite_pool(&PoolConfig::default());
        let pool = Arc::new(pool);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let bulk = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(Lane::Bulk, move |s| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv_timeout(Duration::from_secs(30));
                    Ok(s.stats()?.events)
                })
                .await
            })
        };
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // The bulk lane is busy; interactive calls still answer.
        for _ in 0..20 {
            let n = pool
                .run(Lane::Interactive, |s| Ok(s.stats()?.events))
                .await
                .unwrap();
            assert_eq!(n, 0);
        }
        release_tx.send(()).unwrap();
        assert_eq!(bulk.await.unwrap().unwrap(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_at_once_and_a_slow_call_times_out() {
        let cfg = PoolConfig {
            interactive_connections: 1,
            interactive_queue: 1,
            interactive_wait: Duration::from_millis(300),
            ..PoolConfig::default()
        };
        let (_dir, pool) = sqlite_pool(&cfg);
        let pool = Arc::new(pool);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        // One call runs (blocked), one waits in the queue: the next is refused.
        let mut held = Vec::new();
        for _ in 0..2 {
            let pool = pool.clone();
            let release_rx = release_rx.clone();
            held.push(tokio::spawn(async move {
                pool.run(Lane::Interactive, move |_| {
                    let _ = release_rx
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(30));
                    Ok(())
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let e = pool.run(Lane::Interactive, |_| Ok(())).await.unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (503, "overloaded"));
        assert!(e.retry_after.is_some());
        // The ones admitted give up after the lane's wait, with 503 too.
        for h in held {
            let e = h.await.unwrap().unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (503, "overloaded"));
        }
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
    }

    #[tokio::test]
    async fn a_panicking_call_leaves_the_pool_working() {
        let cfg = PoolConfig {
            interactive_connections: 1,
            ..PoolConfig::default()
        };
        let (_dir, pool) = sqlite_pool(&cfg);
        let e = pool
            .run::<()>(Lane::Interactive, |_| panic!("boom"))
            .await
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 500);
        assert_eq!(
            pool.run(Lane::Interactive, |s| Ok(s.stats()?.events))
                .await
                .unwrap(),
            0
        );
    }

    /// The scheduling policy of the calling thread (`/proc/thread-self/stat`, field 41).
    #[cfg(target_os = "linux")]
    fn my_policy() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(41 - 3).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_bulk_lane_runs_in_sched_idle_and_checks_do_not() {
        const SCHED_OTHER: u32 = 0;
        const SCHED_IDLE: u32 = 5;
        let (_dir, pool) = sqlite_pool(&PoolConfig::default());
        let bulk = pool.run_blocking(Lane::Bulk, |_| Ok(my_policy())).unwrap();
        let interactive = pool
            .run_blocking(Lane::Interactive, |_| Ok(my_policy()))
            .unwrap();
        assert_eq!((bulk, interactive), (SCHED_IDLE, SCHED_OTHER));
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or("?").to_owned()
    }

    #[tokio::test]
    async fn a_read_on_sqlite_runs_on_the_calling_thread_and_sees_every_commit() {
        let (_dir, pool) = sqlite_pool(&PoolConfig::default());
        let here = thread_name();
        assert_eq!(pool.read(|_| Ok(thread_name())).await.unwrap(), here);
        // A commit on a lane's connection is visible to the next read here at once.
        for n in 1..=3u64 {
            pool.run(Lane::Interactive, move |s| {
                s.token_insert(&cg_ledger::tokens::TokenRecord {
                    id: format!("t{n}"),
                    hash: [0; 32],
                    role: "service".into(),
                    member_id: None,
                    label: None,
                    created_at: cg_model::Timestamp::from_micros(0),
                    expires_at: None,
                    revoked_at: None,
                })?;
                Ok(())
            })
            .await
            .unwrap();
            let seen = pool.read(|s| Ok(s.tokens()?.len() as u64)).await.unwrap();
            assert_eq!(seen, n);
        }
    }

    #[tokio::test]
    async fn a_thread_reader_refuses_writes_and_the_lane_answers_instead() {
        let (dir, pool) = sqlite_pool(&PoolConfig::default());
        let url = dir.path().join("l.sqlite").display().to_string();
        let mut reader = cg_ledger::open_reader(&url, LOCAL_BUSY_WAIT)
            .expect("SQLite has thread readers")
            .unwrap();
        assert!(reader.tokens().is_ok());
        assert!(
            reader
                .token_revoke("nobody", cg_model::Timestamp::from_micros(0))
                .is_err()
        );
        // Through the pool, a call that writes is refused on this thread and runs on a lane.
        let ran_on = pool
            .read(|s| {
                s.token_revoke("nobody", cg_model::Timestamp::from_micros(0))?;
                Ok(thread_name())
            })
            .await
            .unwrap();
        assert!(ran_on.starts_with("cg-ledger-"), "{ran_on}");
    }

    #[tokio::test]
    async fn reads_go_to_the_lane_when_this_thread_has_no_reader() {
        let (_dir, pool) = sqlite_pool(&PoolConfig::default());
        let opened = Arc::new(AtomicU64::new(0));
        let pool = pool.with_thread_readers({
            let opened = opened.clone();
            Arc::new(move || {
                opened.fetch_add(1, Ordering::Relaxed);
                Err(unavailable("no reader here"))
            })
        });
        for _ in 0..3 {
            let ran_on = pool.read(|s| Ok((s.stats()?.events, thread_name()))).await;
            let (events, ran_on) = ran_on.unwrap();
            assert_eq!(events, 0);
            assert!(ran_on.starts_with("cg-ledger-"), "{ran_on}");
        }
        // Tried once: a thread whose reader cannot be opened does not retry on every read.
        assert_eq!(opened.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn postgresql_has_no_thread_readers() {
        assert!(
            cg_ledger::open_reader("postgres://postgres@127.0.0.1:1/x", LOCAL_BUSY_WAIT).is_none()
        );
    }

    #[test]
    fn a_bad_url_fails_the_start() {
        let e = StorePool::open("/nonexistent-dir/\0/l.sqlite", &PoolConfig::default());
        assert!(e.is_err());
    }
}
