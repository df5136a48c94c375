//! What a build is asked to do: [`BuildConfig`] (inputs, cut-off, purpose, policy, output,
//! shards, engine, memory), where consent comes from ([`ConsentSourceArg`]), where the plan runs
//! ([`Engine`]) and the member-side inputs shared with `impact` ([`FactInputs`]).

use std::path::PathBuf;
use std::sync::Arc;

use cg_model::{Purpose, Timestamp};
use cg_policy::Policy;
use cg_proof::member_key::MemberKeySecret;
use sha2::{Digest, Sha256};

/// Where consent state comes from.
#[derive(Clone, Debug)]
pub enum ConsentSourceArg {
    /// A consent-events file in the input contract.
    File(PathBuf),
    /// The ledger's as-of snapshot (`postgres://…`, `sqlite:…`).
    Store(String),
}

/// Where a build's plan runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Embedded,
    /// The Apache Ballista scheduler at this URL (`ballista://HOST:PORT`, optionally with
    /// `?partitions=N`: tasks per stage).
    Ballista(String),
}

/// The most tasks per stage `?partitions=` may ask for.
pub const MAX_PARTITIONS: usize = 65_536;

impl Engine {
    /// `datafusion` (or `embedded`) or
    /// `ballista://HOST:PORT[?partitions=N][&shuffle-mb=M][&timeout=SECS]`.
    pub fn parse(s: &str) -> Result<Engine, String> {
        let not_an_engine = || {
            format!(
                "`{s}` is not an engine: use `datafusion` or `ballista://HOST:PORT[?partitions=N][&shuffle-mb=M][&timeout=SECS]`"
            )
        };
        match s {
            "datafusion" | "embedded" => Ok(Engine::Embedded),
            _ => {
                let rest = s.strip_prefix("ballista://").ok_or_else(not_an_engine)?;
                let (address, query) = match rest.split_once('?') {
                    Some((a, q)) => (a, Some(q)),
                    None => (rest, None),
                };
                let address_ok = address
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                if !address_ok {
                    return Err(not_an_engine());
                }
                if let Some(q) = query {
                    params_of(q).ok_or_else(|| {
                        format!(
                            "`{s}`: the engine parameters are `partitions=N` (1..={MAX_PARTITIONS}), `shuffle-mb=M` ({MIN_SHUFFLE_MB}..={MAX_SHUFFLE_MB}) and `timeout=SECS` (1..={MAX_TIMEOUT_SECS}), each at most once"
                        )
                    })?;
                }
                Ok(Engine::Ballista(s.to_owned()))
            }
        }
    }

    /// The scheduler's address (`ballista://HOST:PORT`) and the tasks per stage the URL asks
    /// for; `None` for the embedded engine.
    pub fn ballista(&self) -> Option<(&str, Option<usize>)> {
        match self {
            Engine::Embedded => None,
            Engine::Ballista(url) => Some(match url.split_once('?') {
                Some((address, query)) => (address, params_of(query).and_then(|p| p.partitions)),
                None => (url.as_str(), None),
            }),
        }
    }

    /// How long a distributed build's client waits for the cluster to finish the job before
    /// it cancels the job and fails, publishing nothing (`timeout=SECS`; default
    /// [`DEFAULT_TIMEOUT_SECS`]); `None` for the embedded engine, which waits on nobody.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        match self {
            Engine::Embedded => None,
            Engine::Ballista(url) => {
                let secs = url
                    .split_once('?')
                    .and_then(|(_, query)| params_of(query))
                    .and_then(|p| p.timeout_secs)
                    .unwrap_or(DEFAULT_TIMEOUT_SECS);
                Some(std::time::Duration::from_secs(secs))
            }
        }
    }

    /// The memory each map task of a distributed build may buffer while it shuffles, in MiB
    /// (`shuffle-mb=M`; `None`: Ballista's default, 256).
    pub fn shuffle_mb(&self) -> Option<usize> {
        match self {
            Engine::Embedded => None,
            Engine::Ballista(url) => url
                .split_once('?')
                .and_then(|(_, query)| params_of(query))
                .and_then(|p| p.shuffle_mb),
        }
    }

    /// The name in the manifest: `datafusion` or `ballista`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Embedded => "datafusion",
            Engine::Ballista(_) => "ballista",
        }
    }
}

/// The least `shuffle-mb` an engine URL may ask for.
pub const MIN_SHUFFLE_MB: usize = 16;
/// The most `shuffle-mb` an engine URL may ask for.
pub const MAX_SHUFFLE_MB: usize = 1 << 20;

/// How long a distributed build waits for its cluster by default: a day. Long enough for a
/// build of the size docs/distributed.md projects (minutes on 100 executors) many times over;
/// a bound, so that a job the cluster stalls on (an executor lost at an unlucky moment, no
/// executor left) ends in an error instead of a client waiting for ever.
pub const DEFAULT_TIMEOUT_SECS: u64 = 86_400;
/// The longest `timeout` an engine URL may ask for: a week.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 86_400;

/// An engine URL's parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Params {
    partitions: Option<usize>,
    shuffle_mb: Option<usize>,
    timeout_secs: Option<u64>,
}

/// An engine URL's parameters, each at most once: `partitions=N` with N in
/// 1..=[`MAX_PARTITIONS`], `shuffle-mb=M` with M in [`MIN_SHUFFLE_MB`]..=[`MAX_SHUFFLE_MB`],
/// `timeout=SECS` with SECS in 1..=[`MAX_TIMEOUT_SECS`].
fn params_of(query: &str) -> Option<Params> {
    let mut params = Params::default();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=')?;
        let n = value.parse::<usize>().ok()?;
        match key {
            "partitions" if params.partitions.is_none() && (1..=MAX_PARTITIONS).contains(&n) => {
                params.partitions = Some(n);
            }
            "shuffle-mb"
                if params.shuffle_mb.is_none()
                    && (MIN_SHUFFLE_MB..=MAX_SHUFFLE_MB).contains(&n) =>
            {
                params.shuffle_mb = Some(n);
            }
            "timeout"
                if params.timeout_secs.is_none()
                    && (1..=MAX_TIMEOUT_SECS).contains(&(n as u64)) =>
            {
                params.timeout_secs = Some(n as u64);
            }
            _ => return None,
        }
    }
    Some(params)
}

/// Everything a build needs.
#[derive(Debug)]
pub struct BuildConfig {
    /// Members file (optional with `consent: Store`: the ledger holds members too).
    pub members: Option<PathBuf>,
    /// Content file.
    pub content: PathBuf,
    /// Consent.
    pub consent: ConsentSourceArg,
    /// Residence history.
    pub residences: Option<PathBuf>,
    /// Notices.
    pub notices: Option<PathBuf>,
    /// Erasures.
    pub erasures: Option<PathBuf>,
    /// Cut-off.
    pub as_of: Timestamp,
    /// Purpose.
    pub purpose: Purpose,
    /// The policy (shared with the gate's UDFs).
    pub policy: Arc<Policy>,
    /// Output directory (the dataset lands in `out/<dataset_id>/`), or an object prefix
    /// `s3://bucket/prefix` (see [`crate::store`]).
    pub out: PathBuf,
    /// Where a dataset bound for object storage is written before it is uploaded (`None`:
    /// `$TMPDIR`). A distributed build's executors write into it, so it must be storage they
    /// share.
    pub staging: Option<PathBuf>,
    /// Shard count.
    pub shards: u32,
    /// Exclude malformed rows as `invalid_record` instead of failing.
    pub quarantine: bool,
    /// Secret for the keyed shard hash (default: derived from purpose and shard count).
    pub shard_key: Option<Vec<u8>>,
    /// The member-key secret: VRF keys (interval scheme) or the roster's salts.
    pub member_keys: Arc<MemberKeySecret>,
    /// Which member commitment the build makes (`build --key-scheme`).
    pub key_scheme: crate::KeyScheme,
    /// The ledger log's signed head when the build started (builds from the ledger).
    pub ledger_checkpoint: Option<crate::manifest::LedgerCheckpoint>,
    /// Where the plan runs.
    pub engine: Engine,
    /// The licence the dataset card declares (`None`: `other`).
    pub license: Option<String>,
    /// Memory the pass may hold before it spills to disk, in MiB ([`DEFAULT_MEMORY_MB`];
    /// `build --memory-mb`): half for the shard spools (kept rows waiting to be sorted into
    /// their shard), the whole as the engine's own pool.
    pub memory_mb: usize,
    /// How a text pass writes its shards (`build --shard-writes`).
    pub shard_writes: ShardWrites,
}

/// How a pass with text writes its shards; the dataset's bytes are the same either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ShardWrites {
    /// Into the shards' files while the pass decides, when the content arrives in
    /// `content_id` order (checked row by row: otherwise the pass runs again with the spools).
    /// A distributed build's executors always spool.
    #[default]
    Auto,
    /// Always through the shard spools (kept rows sorted into runs, merged per shard).
    Spool,
}

impl ShardWrites {
    /// `auto` or `spool`.
    pub fn parse(s: &str) -> Option<ShardWrites> {
        match s {
            "auto" => Some(ShardWrites::Auto),
            "spool" => Some(ShardWrites::Spool),
            _ => None,
        }
    }
}

/// The pass's memory budget when none is given: 1 GiB. Measured at 10 M rows / 1 M members
/// (2026-12-06): as fast as 2 GiB (44.4–46.4 s against 44.6–45.7 s, the same dataset), with a
/// peak RSS of 1.46–1.58 GiB instead of 1.93–2.18 (issue 16's bound is 2 GiB).
pub const DEFAULT_MEMORY_MB: usize = 1024;

/// An executor's memory budget when none is given (`executor --memory-mb`), shared by its
/// task slots: 2 GiB.
pub const DEFAULT_EXECUTOR_MEMORY_MB: usize = 2048;

/// The default shard key: derived from purpose and shard count (set `shard_key` for a secret).
pub(crate) fn shard_key_of(cfg: &BuildConfig) -> Vec<u8> {
    cfg.shard_key.clone().unwrap_or_else(|| {
        Sha256::digest(format!("cg-shard-key\0{}\0{}", cfg.purpose, cfg.shards)).to_vec()
    })
}

/// The member-side inputs of a build or an impact report.
#[derive(Clone, Debug)]
pub struct FactInputs {
    /// Members file (optional with a ledger, which holds members too).
    pub members: Option<PathBuf>,
    /// Consent source.
    pub consent: ConsentSourceArg,
    /// Residence history.
    pub residences: Option<PathBuf>,
    /// Notices.
    pub notices: Option<PathBuf>,
    /// Erasures.
    pub erasures: Option<PathBuf>,
    /// The purpose catalogue (other purposes' grants tell `consent_scope_mismatch` apart);
    /// empty: the default catalogue.
    pub purposes: Vec<String>,
}

impl FactInputs {
    pub(crate) fn of(cfg: &BuildConfig) -> FactInputs {
        FactInputs {
            members: cfg.members.clone(),
            consent: cfg.consent.clone(),
            residences: cfg.residences.clone(),
            notices: cfg.notices.clone(),
            erasures: cfg.erasures.clone(),
            purposes: cfg
                .policy
                .config()
                .catalogue()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }

    pub(crate) fn catalogue(&self) -> Vec<&str> {
        if self.purposes.is_empty() {
            return Purpose::DEFAULT_CATALOGUE.to_vec();
        }
        self.purposes.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_engine_url_bounds_the_wait_for_its_cluster() {
        let engine = Engine::parse("ballista://127.0.0.1:50050").unwrap();
        assert_eq!(
            engine.timeout(),
            Some(Duration::from_secs(DEFAULT_TIMEOUT_SECS))
        );
        let engine =
            Engine::parse("ballista://127.0.0.1:50050?partitions=8&timeout=90&shuffle-mb=64")
                .unwrap();
        assert_eq!(engine.timeout(), Some(Duration::from_secs(90)));
        assert_eq!(
            engine.ballista(),
            Some(("ballista://127.0.0.1:50050", Some(8)))
        );
        assert_eq!(engine.shuffle_mb(), Some(64));
        assert_eq!(Engine::parse("datafusion").unwrap().timeout(), None);
        for bad in [
            "ballista://h:1?timeout=0",
            "ballista://h:1?timeout=604801",
            "ballista://h:1?timeout=-5",
            "ballista://h:1?timeout=10&timeout=20",
            "ballista://h:1?timeout=",
        ] {
            let err = Engine::parse(bad).unwrap_err();
            assert!(err.contains("timeout=SECS"), "{bad}: {err}");
        }
    }
}
