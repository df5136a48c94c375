//! [`GateSpec`]: what a process needs to make a build's gate by itself — where the member facts
//! are, their digests, the purpose, cut-off and policy recipe — and [`GateRef`], the handle the
//! UDFs decide with.
//!
//! On the machine that plans a build the gate is made once from the loaded facts. A distributed
//! build's executors receive only the spec (inside the plan, through the extension codec) and
//! make the same gate on first use: they read the same inputs from shared storage, and refuse to
//! decide anything when a digest, the policy hash or the tool version differs from the client's.
//! One gate per build is kept per process.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cg_model::progress::NoProgress;
use cg_model::{Purpose, Timestamp};
use cg_policy::{EvalContext, Policy, PolicyRecipe};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::config::{ConsentSourceArg, FactInputs};
use crate::facts::load_facts;
use crate::gate::Gate;

/// Where a build's consent state comes from, as a remote process sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSpec {
    /// A consent-events file (on storage every executor can read).
    File(PathBuf),
    /// A ledger URL (every executor must reach the same ledger).
    Store(String),
}

/// Why a process could not make a build's gate from a [`GateSpec`]. Each message says what
/// differs or failed, followed by its cause, which is also kept as the error's source.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The bytes are not a spec.
    #[error("unreadable build spec: {0}")]
    Decode(#[source] serde_json::Error),
    /// Another consentgate version planned the build.
    #[error(
        "the build was planned by consentgate {planned} and this process is {here}: run the same version everywhere"
    )]
    Version {
        /// The client's version.
        planned: String,
        /// This process's version.
        here: String,
    },
    /// The policy could not be made from its recipe.
    #[error("policy: {0}")]
    Policy(#[source] cg_policy::PolicyError),
    /// The policy made here is not the client's.
    #[error("policy hash {here} here, {client} on the client")]
    PolicyHash {
        /// The hash here.
        here: String,
        /// The client's hash.
        client: String,
    },
    /// The purpose is not a purpose name.
    #[error("purpose: {0}")]
    Purpose(#[source] cg_model::purpose::NameError),
    /// The member facts could not be loaded.
    #[error("member facts: {0}")]
    Facts(#[source] Box<BuildError>),
    /// The member-side inputs read here differ from the client's (the tables named).
    #[error(
        "the member facts read here differ from the client's ({0}): executors must read the same files"
    )]
    FactsDiffer(String),
    /// The content file could not be read.
    #[error("content: {0}")]
    Content(#[source] Box<BuildError>),
    /// The content file read here is not the client's.
    #[error(
        "the content file `{}` read here differs from the client's: executors must read the same files",
        .0.display()
    )]
    ContentDiffers(PathBuf),
    /// The redaction engine could not be built.
    #[error("redaction engine: {0}")]
    Redactor(#[source] cg_redact::RedactError),
    /// Loading panicked, or the gate cache was poisoned by a panic.
    #[error("{0}")]
    Internal(&'static str),
}

/// Everything needed to make a build's gate in another process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    /// The consentgate version that planned the build; any other version refuses the spec.
    pub tool_version: String,
    /// Members file (none: members come from the ledger).
    pub members: Option<PathBuf>,
    /// Consent source.
    pub consent: ConsentSpec,
    /// Residence history.
    pub residences: Option<PathBuf>,
    /// Notices.
    pub notices: Option<PathBuf>,
    /// Erasures.
    pub erasures: Option<PathBuf>,
    /// `(table, sha256)` of every member-side input the client read.
    pub digests: Vec<(String, String)>,
    /// The content file the plan scans (absolute) and its SHA-256, checked once per build on
    /// each executor: the rows it decides must be the rows the manifest names.
    pub content: Option<(PathBuf, String)>,
    /// Purpose.
    pub purpose: String,
    /// Cut-off, microseconds since the epoch.
    pub as_of_micros: i64,
    /// Quarantine malformed rows.
    pub quarantine: bool,
    /// How to make the policy.
    pub policy: PolicyRecipe,
    /// The policy's hash, checked after it is made.
    pub policy_hash: String,
}

impl GateSpec {
    /// The spec of a build whose member-side inputs are `facts` with digests `digests`.
    pub(crate) fn new(
        facts: &FactInputs,
        content: &std::path::Path,
        digests: &[crate::manifest::InputRef],
        purpose: &Purpose,
        as_of: Timestamp,
        quarantine: bool,
        policy: &Policy,
    ) -> GateSpec {
        let abs =
            |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        GateSpec {
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            members: facts.members.as_deref().map(abs),
            consent: match &facts.consent {
                ConsentSourceArg::File(p) => ConsentSpec::File(abs(p)),
                ConsentSourceArg::Store(url) => ConsentSpec::Store(url.clone()),
            },
            residences: facts.residences.as_deref().map(abs),
            notices: facts.notices.as_deref().map(abs),
            erasures: facts.erasures.as_deref().map(abs),
            digests: digests
                .iter()
                .filter(|i| i.table != "content")
                .map(|i| (i.table.clone(), i.sha256.clone()))
                .collect(),
            content: digests
                .iter()
                .find(|i| i.table == "content")
                .map(|i| (abs(content), i.sha256.clone())),
            purpose: purpose.to_string(),
            as_of_micros: as_of.micros(),
            quarantine,
            policy: policy.recipe().clone(),
            policy_hash: policy.hash().to_owned(),
        }
    }

    fn policy_config(&self) -> &cg_policy::PolicyConfig {
        match &self.policy {
            PolicyRecipe::Bundled { config, .. } | PolicyRecipe::Files { config, .. } => config,
        }
    }

    /// The spec as bytes (JSON).
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings, paths and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A spec from [`GateSpec::encode`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<GateSpec, SpecError> {
        serde_json::from_slice(bytes).map_err(SpecError::Decode)
    }

    /// SHA-256 of the encoded spec: one gate per distinct spec and process.
    fn digest(&self) -> String {
        crate::layout::hex(&Sha256::digest(self.encode()))
    }

    /// Makes the gate: the policy from its recipe, the facts from the same inputs, each checked
    /// against what the client used.
    fn make_gate(&self) -> Result<Gate, SpecError> {
        let here = env!("CARGO_PKG_VERSION");
        if self.tool_version != here {
            return Err(SpecError::Version {
                planned: self.tool_version.clone(),
                here: here.to_owned(),
            });
        }
        let policy = Policy::from_recipe(&self.policy).map_err(SpecError::Policy)?;
        if policy.hash() != self.policy_hash {
            return Err(SpecError::PolicyHash {
                here: policy.hash().to_owned(),
                client: self.policy_hash.clone(),
            });
        }
        let purpose = Purpose::try_from(self.purpose.clone()).map_err(SpecError::Purpose)?;
        let as_of = Timestamp::from_micros(self.as_of_micros);
        let facts = FactInputs {
            members: self.members.clone(),
            consent: match &self.consent {
                ConsentSpec::File(p) => ConsentSourceArg::File(p.clone()),
                ConsentSpec::Store(url) => ConsentSourceArg::Store(url.clone()),
            },
            residences: self.residences.clone(),
            notices: self.notices.clone(),
            erasures: self.erasures.clone(),
            purposes: self
                .policy_config()
                .catalogue()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        // On its own thread: a PostgreSQL ledger's client runs its own runtime, which may not
        // start inside the engine's.
        let loaded = std::thread::scope(|s| {
            s.spawn(|| load_facts(&facts, &purpose, as_of, &NoProgress))
                .join()
                .map_err(|_| SpecError::Internal("loading member facts panicked"))
        })?;
        let crate::facts::LoadedFacts {
            members, inputs, ..
        } = loaded.map_err(|e| SpecError::Facts(Box::new(e)))?;
        let here: Vec<(String, String)> = inputs
            .iter()
            .map(|i| (i.table.clone(), i.sha256.clone()))
            .collect();
        if here != self.digests {
            let differ: Vec<String> = self
                .digests
                .iter()
                .filter(|d| !here.contains(d))
                .map(|(t, _)| t.clone())
                .collect();
            return Err(SpecError::FactsDiffer(differ.join(", ")));
        }
        if let Some((path, sha256)) = &self.content {
            let here =
                crate::layout::sha256_file(path).map_err(|e| SpecError::Content(Box::new(e)))?;
            if &here != sha256 {
                return Err(SpecError::ContentDiffers(path.clone()));
            }
        }
        let ctx = EvalContext { purpose, as_of };
        Gate::new(Arc::new(policy), ctx, members, self.quarantine).map_err(SpecError::Redactor)
    }
}

/// The gates this process made from specs, newest last (two at most: a long-lived executor
/// serves one build after another).
static MADE: Mutex<Vec<(String, Arc<Gate>)>> = Mutex::new(Vec::new());
const KEEP_GATES: usize = 2;

/// The gate of `spec`, made once per process. The lock is held while a gate is made, so the
/// tasks of one build that start together wait for one load instead of each doing it.
fn gate_of(spec: &GateSpec) -> Result<Arc<Gate>, SpecError> {
    let key = spec.digest();
    let mut made = MADE
        .lock()
        .map_err(|_| SpecError::Internal("the gate cache is poisoned"))?;
    if let Some((_, g)) = made.iter().find(|(k, _)| *k == key) {
        return Ok(g.clone());
    }
    let gate = Arc::new(spec.make_gate()?);
    if made.len() >= KEEP_GATES {
        made.remove(0);
    }
    made.push((key, gate.clone()));
    Ok(gate)
}

/// What a build's UDFs decide with: the gate, and the spec that lets another process make it.
#[derive(Debug)]
pub struct GateRef {
    spec: Arc<GateSpec>,
    gate: OnceLock<Arc<Gate>>,
}

impl GateRef {
    /// A handle with the gate already made (the planning process).
    pub(crate) fn ready(spec: Arc<GateSpec>, gate: Arc<Gate>) -> GateRef {
        let cell = OnceLock::new();
        let _ = cell.set(gate);
        GateRef { spec, gate: cell }
    }

    /// A handle that makes its gate from the spec on first use (an executor).
    pub fn from_spec(spec: GateSpec) -> GateRef {
        GateRef {
            spec: Arc::new(spec),
            gate: OnceLock::new(),
        }
    }

    /// The spec.
    pub fn spec(&self) -> &GateSpec {
        &self.spec
    }

    /// The gate, made now if this is its first use.
    pub fn gate(&self) -> Result<&Arc<Gate>, SpecError> {
        if let Some(g) = self.gate.get() {
            return Ok(g);
        }
        let g = gate_of(&self.spec)?;
        Ok(self.gate.get_or_init(|| g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Row;
    use crate::manifest::InputRef;

    fn facts_of(dir: &std::path::Path) -> FactInputs {
        FactInputs {
            members: Some(dir.join("members.parquet")),
            consent: ConsentSourceArg::File(dir.join("consent.parquet")),
            residences: Some(dir.join("residences.parquet")),
            notices: None,
            erasures: Some(dir.join("erasures.parquet")),
            purposes: Vec::new(),
        }
    }

    fn spec_of(facts: &FactInputs, digests: &[InputRef]) -> GateSpec {
        let policy = Policy::bundled("timeline", cg_policy::PolicyConfig::default()).unwrap();
        let content = facts
            .members
            .as_ref()
            .unwrap()
            .with_file_name("content.parquet");
        let mut digests = digests.to_vec();
        digests.push(InputRef {
            table: "content".into(),
            source: "content.parquet".into(),
            sha256: crate::layout::sha256_file(&content).unwrap(),
        });
        GateSpec::new(
            facts,
            &content,
            &digests,
            &Purpose::genai_training(),
            Timestamp::parse("2025-12-01").unwrap(),
            false,
            &policy,
        )
    }

    #[test]
    fn a_spec_remakes_the_gate_and_refuses_anything_else() {
        let (corpus, _) = cg_test_support::small_corpus(300, 10, cg_io::Format::Parquet);
        let facts = facts_of(corpus.path());
        let as_of = Timestamp::parse("2025-12-01").unwrap();
        let crate::facts::LoadedFacts {
            members,
            inputs: digests,
            ..
        } = load_facts(&facts, &Purpose::genai_training(), as_of, &NoProgress).unwrap();
        let spec = spec_of(&facts, &digests);
        assert_eq!(GateSpec::decode(&spec.encode()).unwrap(), spec);
        assert!(GateSpec::decode(b"{}").is_err());

        // The remade gate decides exactly as one made from the loaded facts.
        let policy = Arc::new(Policy::bundled("timeline", Default::default()).unwrap());
        let ctx = EvalContext {
            purpose: Purpose::genai_training(),
            as_of,
        };
        let direct = Gate::new(policy, ctx, members, false).unwrap();
        let remade = GateRef::from_spec(spec.clone());
        let remade = remade.gate().unwrap();
        let rows: Vec<Row<'_>> = (0..400)
            .map(|i| Row {
                content_id: i,
                member_id: Some(i),
                kind: Some(if i % 7 == 0 { "message" } else { "post" }),
                created_at: Some(Timestamp::from_micros(
                    1_700_000_000_000_000 + i * 86_400_000_000,
                )),
            })
            .collect();
        let mentions = crate::gate::Mentions::none(rows.len());
        // Rows whose mentions are missing fail; they are never kept unscrubbed.
        assert!(direct.decide(&rows, &Default::default()).is_err());
        let a = direct.decide(&rows, &mentions).unwrap();
        assert_eq!(a, remade.decide(&rows, &mentions).unwrap());
        assert!(a.iter().any(|c| kept(*c)) && a.iter().any(|c| !kept(*c)));

        // Another version, another policy, or other member facts: no gate.
        let mut other = spec.clone();
        other.tool_version = "0.0.0-other".into();
        assert!(
            other
                .make_gate()
                .unwrap_err()
                .to_string()
                .contains("same version")
        );
        let mut other = spec.clone();
        other.policy_hash = "0".repeat(64);
        assert!(
            other
                .make_gate()
                .unwrap_err()
                .to_string()
                .contains("policy hash")
        );
        let (changed, _) = cg_test_support::small_corpus(301, 10, cg_io::Format::Parquet);
        let mut other = spec.clone();
        other.members = Some(changed.path().join("members.parquet"));
        let err = other.make_gate().unwrap_err().to_string();
        assert!(err.contains("differ") && err.contains("members"), "{err}");
        let mut other = spec.clone();
        other.content = Some((
            changed.path().join("content.parquet"),
            spec.content.clone().unwrap().1,
        ));
        let err = other.make_gate().unwrap_err().to_string();
        assert!(
            err.contains("content file") && err.contains("differs"),
            "{err}"
        );
        let mut other = spec;
        other.members = Some(corpus.path().join("missing.parquet"));
        assert!(other.make_gate().is_err());
    }

    fn kept(code: u32) -> bool {
        cg_model::Verdict::from_code(code).is_some_and(|v| v.decision().is_kept())
    }
}
