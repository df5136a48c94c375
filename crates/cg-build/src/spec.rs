//! [`GateSpec`]: what a process needs to make a build's gate by itself — where the member facts
//! the client wrote as data are and their digests, the purpose, cut-off and policy recipe — and
//! [`GateRef`], the handle the gate UDF and the writer decide with.
//!
//! On the machine that plans a build the gate is made once from the loaded facts. A distributed
//! build's executors receive only the spec (inside the plan, through the extension codec) and
//! make a gate on first use that compiles each shard's members when it first decides a row of
//! theirs ([`crate::facts_data`]): they never read the member files or the ledger, and refuse to
//! decide anything when a digest, the policy hash or the tool version differs from the
//! client's. One gate per build is kept per process.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cg_model::{Purpose, Timestamp};
use cg_policy::{EvalContext, Policy, PolicyRecipe};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::facts_data::{FactsData, FactsDataError};
use crate::gate::Gate;

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
    /// The member facts the client wrote could not be read, or differ from its digests.
    #[error(transparent)]
    FactsData(FactsDataError),
    /// The content file could not be read.
    #[error("content: {0}")]
    Content(#[source] Box<crate::BuildError>),
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

/// Everything needed to make a build's gate in another process. It holds no ledger URL and no
/// path to a member input: executors get the member facts as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateSpec {
    /// The consentgate version that planned the build; any other version refuses the spec.
    pub tool_version: String,
    /// The member facts, as the client wrote them.
    pub facts: FactsData,
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
    /// The spec of a build whose member facts were written as `facts`, scanning `content`
    /// (`inputs`: the manifest's inputs, for the content's digest).
    pub(crate) fn new(
        facts: FactsData,
        content: &std::path::Path,
        inputs: &[crate::manifest::InputRef],
        purpose: &Purpose,
        as_of: Timestamp,
        quarantine: bool,
        policy: &Policy,
    ) -> GateSpec {
        GateSpec {
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            facts,
            content: inputs.iter().find(|i| i.table == "content").map(|i| {
                let abs = std::fs::canonicalize(content).unwrap_or_else(|_| content.to_path_buf());
                (abs, i.sha256.clone())
            }),
            purpose: purpose.to_string(),
            as_of_micros: as_of.micros(),
            quarantine,
            policy: policy.recipe().clone(),
            policy_hash: policy.hash().to_owned(),
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

    /// Makes the gate: the policy from its recipe, each checked against what the client used;
    /// the member facts are read when rows need them.
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
        if let Some((path, sha256)) = &self.content {
            let here =
                crate::store::sha256_of(path).map_err(|e| SpecError::Content(Box::new(e)))?;
            if &here != sha256 {
                return Err(SpecError::ContentDiffers(path.clone()));
            }
        }
        let ctx = EvalContext { purpose, as_of };
        Gate::from_data(Arc::new(policy), ctx, self.facts.clone(), self.quarantine)
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
    /// `None`: an embedded build's gate, which never leaves its process.
    spec: Option<Arc<GateSpec>>,
    gate: OnceLock<Arc<Gate>>,
}

impl GateRef {
    /// A handle with the gate already made (the planning process); `spec` lets other
    /// processes make theirs (a distributed build).
    pub(crate) fn ready(spec: Option<Arc<GateSpec>>, gate: Arc<Gate>) -> GateRef {
        let cell = OnceLock::new();
        let _ = cell.set(gate);
        GateRef { spec, gate: cell }
    }

    /// A handle that makes its gate from the spec on first use (an executor).
    pub fn from_spec(spec: GateSpec) -> GateRef {
        GateRef {
            spec: Some(Arc::new(spec)),
            gate: OnceLock::new(),
        }
    }

    /// The spec (`None` for an embedded build's gate).
    pub fn spec(&self) -> Option<&GateSpec> {
        self.spec.as_deref()
    }

    /// The gate, made now if this is its first use.
    pub fn gate(&self) -> Result<&Arc<Gate>, SpecError> {
        if let Some(g) = self.gate.get() {
            return Ok(g);
        }
        let spec = self
            .spec
            .as_deref()
            .ok_or(SpecError::Internal("a gate without a spec or a gate"))?;
        let g = gate_of(spec)?;
        Ok(self.gate.get_or_init(|| g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConsentSourceArg, FactInputs};
    use crate::facts::load_facts;
    use crate::facts_data::{self, FactsData};
    use crate::gate::{Mentions, Row};
    use crate::manifest::InputRef;
    use cg_model::progress::NoProgress;

    const SHARDS: u32 = 8;
    const KEY: &[u8] = b"shard key";

    /// The client's side: facts loaded from a small corpus, its gate, and the spec with the
    /// facts written as data into `out`.
    fn client(
        corpus: &std::path::Path,
        out: &std::path::Path,
    ) -> (Gate, GateSpec, crate::facts::Members) {
        let facts = FactInputs {
            members: Some(corpus.join("members.parquet")),
            consent: ConsentSourceArg::File(corpus.join("consent.parquet")),
            residences: Some(corpus.join("residences.parquet")),
            notices: None,
            erasures: Some(corpus.join("erasures.parquet")),
            purposes: Vec::new(),
        };
        let as_of = Timestamp::parse("2025-12-01").unwrap();
        let loaded = load_facts(&facts, &Purpose::genai_training(), as_of, &NoProgress).unwrap();
        let members = loaded.members;
        let dir = out.join(facts_data::DIR);
        let policy = Arc::new(Policy::bundled("timeline", Default::default()).unwrap());
        let ctx = EvalContext {
            purpose: Purpose::genai_training(),
            as_of,
        };
        let engine = cg_policy::Engine::new(policy.clone(), ctx.purpose.clone(), as_of);
        let shards = facts_data::write_shards(&members, KEY, SHARDS, &dir, &engine).unwrap();
        let routing = crate::gate::Routing {
            key: KEY,
            shards: SHARDS,
        };
        let gate = Gate::new(
            policy.clone(),
            ctx.clone(),
            members.clone(),
            false,
            Some(routing),
        )
        .unwrap();
        // The client's gate routes every member to its keyed shard; no other shard.
        for id in members.keys() {
            assert_eq!(
                gate.author(Some(*id), None).shard,
                Some(crate::layout::keyed_shard(KEY, *id, SHARDS))
            );
        }
        let mentions = gate.mentions_data().unwrap();
        // A distributed client computes the same table without keeping a gate.
        assert_eq!(
            Gate::mentions_data_of(policy.clone(), &ctx, &members),
            mentions
        );
        assert!(!mentions.included.is_empty() && !mentions.names.is_empty());
        let data = FactsData {
            dir: dir.clone(),
            key: crate::layout::hex(KEY),
            shards,
        };
        let content = corpus.join("content.parquet");
        let inputs = [InputRef {
            table: "content".into(),
            source: "content.parquet".into(),
            sha256: crate::layout::sha256_file(&content).unwrap(),
        }];
        let spec = GateSpec::new(
            data,
            &content,
            &inputs,
            &Purpose::genai_training(),
            as_of,
            false,
            &policy,
        );
        (gate, spec, members)
    }

    fn rows(ids: impl Iterator<Item = i64>) -> Vec<Row<'static>> {
        ids.map(|i| Row {
            content_id: i,
            member_id: Some(i),
            kind: Some(if i % 7 == 0 { "message" } else { "post" }),
            created_at: Some(Timestamp::from_micros(
                1_700_000_000_000_000 + i * 86_400_000_000,
            )),
            shard: None,
        })
        .collect()
    }

    /// `named` resolved as a distributed build's narrow join resolves it: each row's excluded
    /// mentions, with their names, from `gate`'s answers ([`Gate::resolve_mention`]).
    fn resolved(gate: &Gate, named: &Mentions) -> Mentions {
        let mut out = Mentions::resolved();
        for i in 0..named.len() {
            let row = named.get(i).unwrap();
            out.push_resolved(row.ids().iter().filter_map(|id| {
                match gate.resolve_mention(*id, None).unwrap() {
                    crate::gate::MentionStatus::Included => None,
                    crate::gate::MentionStatus::Excluded {
                        handle,
                        display_name,
                    } => Some((
                        *id,
                        crate::gate::Names::of(
                            handle.map(str::to_owned),
                            display_name.map(str::to_owned),
                        ),
                    )),
                }
            }));
        }
        out
    }

    /// Every row names a few members, known or not, so the rule on mentions is exercised.
    fn mentions(rows: &[Row<'_>]) -> Mentions {
        let mut m = Mentions::default();
        for r in rows {
            let id = r.content_id;
            m.push_row([id + 1, id * 3 % 400, 10_000 + id]);
        }
        m
    }

    #[test]
    fn an_executor_gate_from_facts_as_data_decides_and_redacts_as_the_clients() {
        let (corpus, _) = cg_test_support::small_corpus(300, 10, cg_io::Format::Parquet);
        let out = cg_test_support::tempdir();
        let (direct, spec, members) = client(corpus.path(), out.path());
        assert_eq!(GateSpec::decode(&spec.encode()).unwrap(), spec);
        assert!(GateSpec::decode(b"{}").is_err());
        // No input path and no ledger in the spec: only the facts the client wrote.
        let encoded = String::from_utf8(spec.encode()).unwrap();
        for input in ["members.parquet", "consent.parquet", "erasures.parquet"] {
            assert!(!encoded.contains(input), "{input} in {encoded}");
        }

        let remade = GateRef::from_spec(spec.clone());
        let remade = remade.gate().unwrap();
        assert_eq!(
            remade.members_held(),
            0,
            "nothing is compiled before a row needs it"
        );

        // The rows of one shard's authors load that shard's members only.
        let shard = |id: i64| crate::layout::keyed_shard(KEY, id, SHARDS);
        let one: Vec<Row<'_>> = rows((0..400).filter(|i| shard(*i) == 3));
        let in_three = members.keys().filter(|id| shard(**id) == 3).count() as u64;
        assert!(in_three > 0 && in_three < members.len() as u64);
        // Mentions not resolved by the narrow join: the rows fail, never read as naming
        // nobody (an executor's gate holds no mentions table).
        let err = remade.decide(&one, &mentions(&one)).unwrap_err();
        assert!(
            matches!(err, crate::gate::RowError::MentionsMissing { .. }),
            "{err}"
        );
        assert_eq!(
            remade
                .decide(&one, &resolved(remade, &mentions(&one)))
                .unwrap(),
            direct.decide(&one, &mentions(&one)).unwrap()
        );
        // Resolving mentions reads the mentioned members' mentions files, never their facts.
        assert_eq!(remade.members_held(), in_three);
        assert!(remade.mention_statuses_held() > 0);
        assert!(remade.mention_statuses_held() <= members.len() as u64);

        // Every row: the same verdicts, fingerprints and redacted text as the client's gate,
        // the executor's from mentions resolved by its gate's answers (the client's gate
        // given them resolved by its own answers agrees too).
        let all = rows(0..400);
        let named = mentions(&all);
        let resolved_named = resolved(remade, &named);
        let a = direct.decide(&all, &named).unwrap();
        assert_eq!(a, remade.decide(&all, &resolved_named).unwrap());
        assert_eq!(a, direct.decide(&all, &resolved(&direct, &named)).unwrap());
        assert!(a.iter().any(|c| kept(*c)) && a.iter().any(|c| !kept(*c)));
        let mut redacted = 0;
        // One memo across every row (many authors, hints and verdicts): the same fingerprint
        // as computed afresh.
        let mut memo = crate::gate::FingerprintMemo::default();
        let (mut spans, mut with_pieces) = (Vec::new(), 0);
        for (i, code) in a.iter().enumerate() {
            let verdict = cg_model::Verdict::from_code(*code).unwrap();
            let id = all[i].content_id;
            let text = format!("hi @m{} call +33 6 12 34 56 78", id * 3 % 400);
            let (m, r) = (named.get(i).unwrap(), resolved_named.get(i).unwrap());
            assert_eq!(
                direct.redaction_fingerprint(id, None, m, &verdict),
                remade.redaction_fingerprint(id, None, r, &verdict)
            );
            assert_eq!(
                remade.hinted_fingerprint(&mut memo, remade.phone_hint(id, None), id, r, &verdict),
                direct.redaction_fingerprint(id, None, m, &verdict)
            );
            assert_eq!(
                direct.redact(&text, id, None, m, &verdict),
                remade.redact(&text, id, None, r, &verdict)
            );
            // The writer's way (pieces into the shard's column, one span buffer for every
            // row): the same text as whole, with and without entities, scrubbing mentions or
            // not (every kept row here mentions an excluded member, so both are asked for).
            if verdict.decision().is_kept() {
                let hint = direct.phone_hint(id, None);
                for text in [text.as_str(), "nothing personal here"] {
                    for scrub in [false, true] {
                        let mut pieces = String::new();
                        direct.redact_kept_with(text, hint, id, m, scrub, &mut spans, |p| {
                            pieces.push_str(p)
                        });
                        let whole = direct.redact_kept(text, hint, id, m, scrub);
                        assert_eq!(pieces, whole, "{text}, scrubbing {scrub}");
                    }
                }
                let whole = direct.redact(&text, id, None, m, &verdict).unwrap();
                assert_ne!(whole, text, "an entity and a mention are redacted");
                with_pieces += 1;
            }
            redacted += usize::from(
                verdict
                    .reasons()
                    .contains(&cg_model::ReasonCode::MentionRedacted),
            );
        }
        assert!(redacted > 0, "some kept rows mention excluded members");
        assert_eq!(with_pieces, redacted, "every kept row scrubs a mention");
        assert!(remade.members_held() <= members.len() as u64);

        // Given each author's shard (a distributed plan's `cg_shard`), the same answers; given a
        // wrong one, the author reads as unknown — excluded, never another member's facts.
        let hinted: Vec<Row<'_>> = all
            .iter()
            .map(|r| Row {
                shard: r.member_id.map(shard),
                ..*r
            })
            .collect();
        assert_eq!(remade.decide(&hinted, &resolved_named).unwrap(), a);
        for (i, code) in a.iter().enumerate() {
            let verdict = cg_model::Verdict::from_code(*code).unwrap();
            let (id, hint) = (all[i].content_id, hinted[i].shard);
            let (m, r) = (named.get(i).unwrap(), resolved_named.get(i).unwrap());
            assert_eq!(
                remade.redaction_fingerprint(id, hint, r, &verdict),
                direct.redaction_fingerprint(id, None, m, &verdict)
            );
            // The same author, except that an executor's gate leaves the shard to the writer.
            let (executor, client) = (remade.author(Some(id), hint), direct.author(Some(id), None));
            assert_eq!(
                (executor.erased, executor.region),
                (client.erased, client.region)
            );
            assert_eq!(executor.shard, None);
        }
        let misrouted: Vec<Row<'_>> = all
            .iter()
            .map(|r| Row {
                shard: r.member_id.map(|m| (shard(m) + 1) % SHARDS),
                ..*r
            })
            .collect();
        for code in remade.decide(&misrouted, &resolved_named).unwrap() {
            assert!(!kept(code), "a misrouted author was kept");
            let verdict = cg_model::Verdict::from_code(code).unwrap();
            assert!(
                verdict
                    .reasons()
                    .contains(&cg_model::ReasonCode::MemberUnknown)
            );
        }
    }

    #[test]
    fn a_spec_is_refused_when_anything_differs_from_the_client() {
        let (corpus, _) = cg_test_support::small_corpus(300, 10, cg_io::Format::Parquet);
        let out = cg_test_support::tempdir();
        let (_, spec, _) = client(corpus.path(), out.path());
        let mut other = spec.clone();
        other.tool_version = "0.0.0-other".into();
        let err = other.make_gate().unwrap_err().to_string();
        assert!(err.contains("same version"), "{err}");
        let mut other = spec.clone();
        other.policy_hash = "0".repeat(64);
        let err = other.make_gate().unwrap_err().to_string();
        assert!(err.contains("policy hash"), "{err}");
        let (changed, _) = cg_test_support::small_corpus(301, 10, cg_io::Format::Parquet);
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
        // A mentions file that differs from the client's: resolving a mention of one of its
        // members fails, naming it.
        let mut other = spec.clone();
        other.facts.shards[1].mentions_sha256 = "0".repeat(64);
        let gate = other.make_gate().unwrap();
        let in_one = (0..400)
            .find(|i| crate::layout::keyed_shard(KEY, *i, SHARDS) == 1)
            .unwrap();
        let err = gate.resolve_mention(in_one, None).unwrap_err().to_string();
        assert!(
            err.contains("mentions-00001.json") && err.contains("differ"),
            "{err}"
        );

        // A shard file changed after the client wrote it: the rows that need it fail, naming
        // the file; they are never decided without their author's facts.
        let gate = spec.make_gate().unwrap();
        let path = spec.facts.dir.join("shard-00002.jsonl");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"[999999,{}]\n");
        std::fs::write(&path, bytes).unwrap();
        let shard = |id: i64| crate::layout::keyed_shard(KEY, id, SHARDS);
        let two = rows((0..400).filter(|i| shard(*i) == 2));
        let err = gate.decide(&two, &Mentions::none(two.len())).unwrap_err();
        assert!(
            err.to_string().contains("shard-00002.jsonl") && err.to_string().contains("differ"),
            "{err}"
        );
        assert_eq!(
            gate.author(two[0].member_id, None),
            crate::gate::Author {
                erased: true,
                region: 0,
                shard: None,
                hint: None,
            },
            "read as erased"
        );
        let others = rows((0..400).filter(|i| shard(*i) != 2));
        assert!(gate.decide(&others, &Mentions::none(others.len())).is_ok());
    }

    fn kept(code: u32) -> bool {
        cg_model::Verdict::from_code(code).is_some_and(|v| v.decision().is_kept())
    }
}
