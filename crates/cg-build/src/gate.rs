//! [`Gate`]: the per-row decision, shared by the gate UDF and the writer of one build, through
//! the compiled decision engine ([`cg_policy::Engine`]). Members are compiled once when the gate
//! is made (jurisdiction classes, age instants, consent class, and whether the member is
//! excluded as of the cut-off, for mentions) — all of them when an embedded build makes the
//! gate, or, in a distributed build, each shard's members when a row of that shard is first
//! decided, from the facts the client wrote as data ([`crate::facts_data`]; the client's own
//! gate is made over that data too and compiles nothing, since it decides no row). A batch of
//! rows is then decided by a [`cg_policy::Decider`] of its own, with no lock shared between
//! partitions once a tuple has been seen. A row
//! carries its verdict through the plan as a self-describing `u32` ([`Verdict::code`]), the
//! same in every process, so a distributed build's executors and its client agree on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cg_model::{Jurisdiction, MemberFacts, ReasonCode, Region, RegionSet, Timestamp, Verdict};
use cg_policy::{CompiledMember, Decider, Engine, EvalContext, Policy, with_mention_redacted};
use rustc_hash::FxHashMap;
use sha2::Digest;

use crate::facts::Members;
use crate::facts_data::{FactsData, FactsDataError};
use crate::layout::keyed_shard;

/// One member as the gate keeps them.
#[derive(Debug)]
struct GateMember {
    /// Handle and display name, kept only for members excluded as of the cut-off (the only
    /// ones whose mentions are scrubbed): the full facts are dropped once compiled, which is
    /// most of a member's memory.
    names: Option<Box<Names>>,
    compiled: CompiledMember,
    /// Excluded as of the cut-off (a post made now would be): their mentions are scrubbed.
    excluded_now: bool,
    /// Report region at the cut-off, as an index into [`region_labels`].
    region: u8,
    /// Country at the cut-off (the phone-number hint for redaction).
    hint: Option<cg_model::CountryCode>,
    /// The member's keyed shard, computed once when compiled, or [`UNROUTED`] for a gate made
    /// without the build's shard key (the writer then computes it).
    shard: u32,
}

/// [`GateMember::shard`] of a gate that does not know the build's shard key.
const UNROUTED: u32 = u32::MAX;

/// The build's shard key and shard count, for a gate that routes its members.
#[derive(Clone, Copy, Debug)]
pub struct Routing<'k> {
    /// The shard key.
    pub key: &'k [u8],
    /// Shards.
    pub shards: u32,
}

/// What the writer needs of a row's author ([`Gate::author`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Author {
    /// Asked for erasure on or before the cut-off (or their facts could not be loaded).
    pub erased: bool,
    /// Report region at the cut-off, an index for [`Gate::region_label`].
    pub region: u8,
    /// The author's keyed shard, when the gate was made with the build's [`Routing`].
    pub shard: Option<u32>,
    /// The author's country at the cut-off, the phone hint of redaction ([`Gate::phone_hint`]).
    pub hint: Option<cg_model::CountryCode>,
}

/// What is scrubbed when a kept row mentions an excluded member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) handle: Option<String>,
    pub(crate) display_name: Option<String>,
}

impl Names {
    /// The names of an excluded member (`None` when they have neither).
    pub(crate) fn of(handle: Option<String>, display_name: Option<String>) -> Option<Names> {
        (handle.is_some() || display_name.is_some()).then_some(Names {
            handle,
            display_name,
        })
    }
}

/// Everything the gate UDF and the writer need to decide and redact a row.
#[derive(Debug)]
pub struct Gate {
    engine: Engine,
    members: Table,
    redactor: cg_redact::Redactor,
    quarantine: bool,
    /// Deciders' caches between batches ([`Gate::decide`]): a batch takes one and puts it
    /// back, so the tuples a thread has seen are not asked of the shared memo (and its lock)
    /// batch after batch.
    caches: std::sync::Mutex<Vec<cg_policy::DeciderCache>>,
}

/// The members a gate decides with.
#[derive(Debug)]
enum Table {
    /// Every member, compiled when the gate is made (an embedded build).
    Whole(WholeTable<GateMember>),
    /// A distributed build's executor: each shard's members compiled when a row of that shard
    /// is first decided, from the facts the client wrote ([`crate::facts_data`]).
    Parted(Box<Parted>),
}

/// One shard's members, compiled.
type ShardMembers = FxHashMap<i64, GateMember>;

/// A dense table's slot, aligned to a cache line: a lookup in a table far larger than the caches
/// waits for one line from memory, never two (an unaligned 56-byte member straddles two lines
/// in three slots of eight).
#[derive(Debug)]
#[repr(align(64))]
struct Line<T>(T);

// A member's slot is one line.
const _: () = assert!(std::mem::size_of::<Option<Line<GateMember>>>() == 64);

/// An embedded build's members by id. Member ids are usually dense (a platform numbers its
/// members), and then the table is a vector indexed by `id - base`: one memory read per
/// lookup, where a hash table reads its control bytes and then its slot, both cache misses
/// in a table of a million members. Sparse ids keep the hash table.
#[derive(Debug)]
enum WholeTable<T> {
    /// Ids within twice the member count of each other: slot `id - base`.
    Dense {
        base: i64,
        slots: Vec<Option<Line<T>>>,
        len: usize,
    },
    /// Any other ids.
    Hashed(FxHashMap<i64, T>),
}

impl<T> WholeTable<T> {
    /// Slack a dense table may have over its member count (absent ids are empty slots).
    const DENSE_SLACK: u128 = 2;

    /// Members a compiling thread takes at least (fewer members are compiled on one thread).
    const MEMBERS_PER_THREAD: usize = 1 << 14;

    /// Compiles `members` into the table their ids suit, on up to `threads` threads: each
    /// makes its own context (`context`, e.g. a decider with its memo) and compiles its part.
    fn new<F, C>(
        members: FxHashMap<i64, F>,
        threads: usize,
        context: impl Fn() -> C + Sync,
        compile: impl Fn(&mut C, i64, F) -> T + Sync,
    ) -> WholeTable<T>
    where
        F: Send,
        T: Send,
    {
        let (min, max) = members.keys().fold((i64::MAX, i64::MIN), |(lo, hi), id| {
            (lo.min(*id), hi.max(*id))
        });
        let len = members.len();
        let threads = threads.clamp(1, len / Self::MEMBERS_PER_THREAD + 1);
        let span = (i128::from(max) - i128::from(min) + 1).max(0) as u128;
        if len > 0 && span <= Self::DENSE_SLACK * len as u128 + 1024 {
            // `id - min` is below `span`, which fits in memory. Each thread fills one run of
            // slots, so the parts are split by slot.
            let span = span as usize;
            let per_thread = span.div_ceil(threads);
            let mut parts: Vec<Vec<(i64, F)>> = (0..threads)
                .map(|_| Vec::with_capacity(len / threads + 1))
                .collect();
            for (id, facts) in members {
                let at = (i128::from(id) - i128::from(min)) as usize;
                parts[at / per_thread].push((id, facts));
            }
            let mut slots: Vec<Option<Line<T>>> = Vec::new();
            slots.resize_with(span, || None);
            std::thread::scope(|scope| {
                for (run, (slots, part)) in slots.chunks_mut(per_thread).zip(parts).enumerate() {
                    let (context, compile) = (&context, &compile);
                    scope.spawn(move || {
                        let first = run * per_thread;
                        let mut cx = context();
                        for (id, facts) in part {
                            let at = (i128::from(id) - i128::from(min)) as usize;
                            slots[at - first] = Some(Line(compile(&mut cx, id, facts)));
                        }
                    });
                }
            });
            WholeTable::Dense {
                base: min,
                slots,
                len,
            }
        } else {
            let mut parts: Vec<Vec<(i64, F)>> = (0..threads)
                .map(|_| Vec::with_capacity(len / threads + 1))
                .collect();
            for (i, entry) in members.into_iter().enumerate() {
                parts[i % threads].push(entry);
            }
            let compiled: Vec<Vec<(i64, T)>> = std::thread::scope(|scope| {
                let handles: Vec<_> = parts
                    .into_iter()
                    .map(|part| {
                        let (context, compile) = (&context, &compile);
                        scope.spawn(move || {
                            let mut cx = context();
                            part.into_iter()
                                .map(|(id, facts)| (id, compile(&mut cx, id, facts)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
            let mut table = FxHashMap::default();
            table.reserve(len);
            table.extend(compiled.into_iter().flatten());
            WholeTable::Hashed(table)
        }
    }

    fn get(&self, id: i64) -> Option<&T> {
        match self {
            WholeTable::Dense { base, slots, .. } => {
                let at = usize::try_from(i128::from(id) - i128::from(*base)).ok()?;
                slots.get(at)?.as_ref().map(|line| &line.0)
            }
            WholeTable::Hashed(m) => m.get(&id),
        }
    }

    fn len(&self) -> usize {
        match self {
            WholeTable::Dense { len, .. } => *len,
            WholeTable::Hashed(m) => m.len(),
        }
    }

    #[cfg(test)]
    fn iter(&self) -> Box<dyn Iterator<Item = (i64, &T)> + '_> {
        match self {
            WholeTable::Dense { base, slots, .. } => Box::new(
                slots
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, m)| Some((*base + i as i64, &m.as_ref()?.0))),
            ),
            WholeTable::Hashed(m) => Box::new(m.iter().map(|(id, m)| (*id, m))),
        }
    }
}

/// The members of a gate made from facts as data.
#[derive(Debug)]
struct Parted {
    data: FactsData,
    key: Vec<u8>,
    /// One cell per shard, filled on first use (an error stays: the build fails).
    shards: Vec<OnceLock<Result<ShardMembers, Arc<FactsDataError>>>>,
    /// One cell per shard: the rule on mentions' view of its members, read from the shard's
    /// mentions file when a mention of one of them is first resolved
    /// ([`Gate::resolve_mention`], the narrow join's resolving side).
    mentions: Vec<OnceLock<Result<ShardMentions, Arc<FactsDataError>>>>,
    /// Members compiled so far (what this process holds).
    loaded: AtomicU64,
    /// Members whose mention status this process has read so far.
    mentions_loaded: AtomicU64,
}

impl Parted {
    /// The shard of member `id`: `shard` when the caller has it and the build has such a shard
    /// (see [`Row::shard`]), else its keyed shard. (`shards` and `mentions` have one cell a
    /// shard each.)
    fn shard_of(&self, id: i64, shard: Option<u32>) -> u32 {
        let count = u32::try_from(self.shards.len()).unwrap_or(u32::MAX);
        match shard {
            Some(s) if s < count => s,
            _ => crate::layout::keyed_shard(&self.key, id, count),
        }
    }

    /// The mention entry of `id` from its shard's mentions file, read on first use (`None`:
    /// included; `Some(names)`: excluded), `shard` as for [`Row::shard`] (a wrong one can only
    /// make the member read as excluded).
    fn mention_of(
        &self,
        id: i64,
        shard: Option<u32>,
    ) -> Result<Option<Option<&Names>>, Arc<FactsDataError>> {
        let shard = self.shard_of(id, shard);
        let cell = &self.mentions[shard as usize];
        let table = cell.get_or_init(|| {
            let data = self.data.read_mentions(shard).map_err(Arc::new)?;
            let members = data.included.len() + data.names.len();
            self.mentions_loaded
                .fetch_add(members as u64, Ordering::Relaxed);
            log::info!(
                target: "consentgate::facts",
                "read the mention statuses of shard {shard}: {members} members ({} held by this process)",
                self.mentions_loaded.load(Ordering::Relaxed)
            );
            Ok(ShardMentions {
                included: data.included,
                names: data
                    .names
                    .into_iter()
                    .map(|(id, handle, display_name)| {
                        (
                            id,
                            Names {
                                handle,
                                display_name,
                            },
                        )
                    })
                    .collect(),
            })
        });
        let table = table.as_ref().map_err(Arc::clone)?;
        Ok(if table.included.binary_search(&id).is_ok() {
            None
        } else {
            Some(table.names.get(&id))
        })
    }
}

/// One shard's members as the rule on mentions sees them.
#[derive(Debug)]
struct ShardMentions {
    /// Included as of the cut-off, ascending.
    included: Vec<i64>,
    /// Handle and display name of the excluded ones that have one.
    names: FxHashMap<i64, Names>,
}

/// What the rule on mentions knows of a mentioned member ([`Gate::resolve_mention`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MentionStatus<'a> {
    /// Included as of the cut-off: their mentions stay.
    Included,
    /// Excluded (an unknown id too), with the handle and display name scrubbed when they have
    /// one.
    Excluded {
        /// Handle.
        handle: Option<&'a str>,
        /// Display name.
        display_name: Option<&'a str>,
    },
}

/// Report region labels, indexed by [`Gate::author`]'s region: `UNKNOWN` first, then every
/// label [`cg_model::RegionSet::report_label`] gives, in its order. The same in every process.
fn region_labels() -> &'static [&'static str] {
    static LABELS: OnceLock<Vec<&'static str>> = OnceLock::new();
    LABELS.get_or_init(|| {
        let mut labels = vec!["UNKNOWN"];
        labels.extend(RegionSet::REPORT_ORDER.map(Region::as_str));
        labels.push("ROW");
        labels
    })
}

/// The index in [`region_labels`] of the report label of a member in `regions` (`None`: no
/// known country, `UNKNOWN`), found by region rather than by comparing label strings (once
/// per member, a million times a build).
fn region_index(regions: Option<RegionSet>) -> u8 {
    let Some(set) = regions else {
        return 0;
    };
    let at = RegionSet::REPORT_ORDER
        .iter()
        .position(|r| set.contains(*r))
        .unwrap_or(RegionSet::REPORT_ORDER.len());
    // `UNKNOWN` is label 0, `REPORT_ORDER` follows, then `ROW`; at most 8.
    u8::try_from(at + 1).unwrap_or(0)
}

/// One member's entry in the mentions table: included members by id, excluded ones by the
/// names the rule scrubs (when they have any).
fn add_mention_entry(
    data: &mut crate::facts_data::MentionsData,
    id: i64,
    excluded_now: bool,
    names: Option<&Names>,
) {
    if !excluded_now {
        data.included.push(id);
    } else if let Some(n) = names
        && (n.handle.is_some() || n.display_name.is_some())
    {
        data.names
            .push((id, n.handle.clone(), n.display_name.clone()));
    }
}

/// The mentions table ([`crate::facts_data::MentionsData`]) of some members (a distributed
/// build's client makes one per shard): each member is compiled as a gate compiles it, its
/// entry taken, and the compilation dropped.
pub(crate) struct MentionsTable<'e> {
    engine: &'e Engine,
    decider: Decider<'e>,
    data: crate::facts_data::MentionsData,
}

impl<'e> MentionsTable<'e> {
    /// An empty table, compiling with `engine`.
    pub(crate) fn new(engine: &'e Engine) -> MentionsTable<'e> {
        MentionsTable {
            engine,
            decider: engine.decider(),
            data: crate::facts_data::MentionsData::default(),
        }
    }

    /// Adds the entries of `members` (each member once over all parts).
    #[cfg(test)]
    pub(crate) fn add(&mut self, members: &Members) {
        for (id, facts) in members {
            self.add_one(*id, facts);
        }
    }

    /// Adds the entry of member `id` (each member once).
    pub(crate) fn add_one(&mut self, id: i64, facts: &MemberFacts) {
        // The same compilation a gate keeps (one rule for who is excluded and which names are
        // scrubbed), dropped after its entry is taken.
        let m = compile_member(
            self.engine,
            &mut self.decider,
            self.engine.as_of(),
            facts.clone(),
            UNROUTED,
        );
        add_mention_entry(&mut self.data, id, m.excluded_now, m.names.as_deref());
    }

    /// The table, ascending.
    pub(crate) fn finish(self) -> crate::facts_data::MentionsData {
        let mut data = self.data;
        data.included.sort_unstable();
        data.names.sort_unstable_by_key(|(id, _, _)| *id);
        data
    }
}

/// Compiles one member: what the gate keeps of them.
fn compile_member(
    engine: &Engine,
    decider: &mut Decider<'_>,
    as_of: Timestamp,
    facts: MemberFacts,
    shard: u32,
) -> GateMember {
    let flags = engine.policy().config().region_flags();
    let compiled = engine.compile(&facts);
    let excluded_now = decider.member_excluded(Some(&compiled));
    let j = Jurisdiction::normalize(facts.country_at(as_of)).ok();
    GateMember {
        region: region_index(j.as_ref().map(|j| j.regions(flags))),
        hint: j.map(|j| j.country()),
        names: excluded_now.then(|| {
            Box::new(Names {
                handle: facts.handle,
                display_name: facts.display_name,
            })
        }),
        compiled,
        excluded_now,
        shard,
    }
}

/// A content row the gate cannot decide (outside quarantine): the build fails naming it.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// The facts of the row's author could not be loaded (a distributed build's executor).
    #[error("content_id {content_id}: {source}")]
    Facts {
        /// The row.
        content_id: i64,
        /// The cause.
        #[source]
        source: Arc<FactsDataError>,
    },
    /// The row's mentions did not reach the gate (an engine fault: never kept unscrubbed).
    #[error("content_id {content_id}: its mentions did not reach the gate")]
    MentionsMissing {
        /// The row.
        content_id: i64,
    },
    /// A required value is missing.
    #[error(
        "content_id {content_id}: column `{column}` is missing a value (use --quarantine to exclude such rows)"
    )]
    MissingValue {
        /// The row.
        content_id: i64,
        /// The column.
        column: &'static str,
    },
}

/// The members each row of a batch names, flattened: one allocation per batch, none per row.
///
/// Either every id a row names (the gate tells who is excluded, from the members it holds),
/// or — *resolved*, a distributed build's narrow join ([`crate::mention_join`]) — only the
/// excluded members a row names, each with the names to scrub.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    /// `ends[i]`: where row `i`'s ids end in `ids`.
    ends: Vec<usize>,
    ids: Vec<i64>,
    /// Resolved: `names[j]` are the names of `ids[j]`, an excluded member.
    names: Option<Vec<Option<Names>>>,
}

/// The members one row names ([`Mentions::get`]).
#[derive(Clone, Copy, Debug)]
pub struct RowMentions<'a> {
    ids: &'a [i64],
    /// Resolved: these ids are the row's excluded mentions, with their names.
    names: Option<&'a [Option<Names>]>,
}

impl<'a> From<&'a [i64]> for RowMentions<'a> {
    /// Every id a row names, unresolved.
    fn from(ids: &'a [i64]) -> RowMentions<'a> {
        RowMentions { ids, names: None }
    }
}

impl<'a> RowMentions<'a> {
    /// The ids.
    pub fn ids(&self) -> &'a [i64] {
        self.ids
    }

    /// Whether only the row's excluded mentions are here, resolved.
    pub fn is_resolved(&self) -> bool {
        self.names.is_some()
    }
}

impl Mentions {
    /// `rows` rows naming nobody.
    pub fn none(rows: usize) -> Mentions {
        Mentions {
            ends: vec![0; rows],
            ids: Vec::new(),
            names: None,
        }
    }

    /// An empty batch of resolved rows ([`Mentions::push_resolved`]).
    pub(crate) fn resolved() -> Mentions {
        Mentions {
            names: Some(Vec::new()),
            ..Mentions::default()
        }
    }

    /// Appends a row naming `ids` (unresolved rows only).
    pub fn push_row(&mut self, ids: impl IntoIterator<Item = i64>) {
        self.ids.extend(ids);
        self.ends.push(self.ids.len());
        if let Some(names) = &mut self.names {
            // Only reachable by misuse: the ids would read as excluded with no names (fail
            // closed), never as included.
            names.resize(self.ids.len(), None);
        }
    }

    /// Appends a resolved row: the excluded members it names, in its order, with their names.
    pub(crate) fn push_resolved(
        &mut self,
        excluded: impl IntoIterator<Item = (i64, Option<Names>)>,
    ) {
        let names = self.names.get_or_insert_with(Vec::new);
        for (id, n) in excluded {
            self.ids.push(id);
            names.push(n);
        }
        self.ends.push(self.ids.len());
    }

    /// Row `i`'s mentions (`None` past the last row).
    pub fn get(&self, i: usize) -> Option<RowMentions<'_>> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(RowMentions {
            ids: self.ids.get(start..end)?,
            names: match &self.names {
                Some(n) => Some(n.get(start..end)?),
                None => None,
            },
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// One content row as the gate UDF sees it.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    /// Content id (for error messages).
    pub content_id: i64,
    /// Author.
    pub member_id: Option<i64>,
    /// Kind.
    pub kind: Option<&'a str>,
    /// Creation time.
    pub created_at: Option<Timestamp>,
    /// The author's keyed shard when the plan already computed it (`cg_shard`, a distributed
    /// plan's routing column), which saves hashing the id again; `None`: computed here.
    pub shard: Option<u32>,
}

impl Gate {
    /// A gate for one build: compiles every member once, on every core. With the build's
    /// `routing`, each member's keyed shard is computed then too (the writer needs it for
    /// each kept row, [`Gate::author`]).
    pub fn new(
        policy: Arc<Policy>,
        ctx: EvalContext,
        members: Members,
        quarantine: bool,
        routing: Option<Routing<'_>>,
    ) -> Result<Gate, cg_redact::RedactError> {
        let engine = Engine::new(policy, ctx.purpose, ctx.as_of);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let members = WholeTable::new(
            members,
            threads,
            || engine.decider(),
            |decider, id, facts| {
                let shard = routing.map_or(UNROUTED, |r| keyed_shard(r.key, id, r.shards));
                compile_member(&engine, decider, ctx.as_of, *facts, shard)
            },
        );
        Ok(Gate {
            engine,
            members: Table::Whole(members),
            redactor: cg_redact::Redactor::new()?,
            quarantine,
            caches: Default::default(),
        })
    }

    /// A gate over facts the client wrote as data: each shard's members when a row of theirs
    /// is first decided, each shard's mentions file when a mention of one of its members is
    /// first resolved; nothing read now. Rows decided by it must bring their mentions resolved
    /// ([`Mentions`]).
    pub fn from_data(
        policy: Arc<Policy>,
        ctx: EvalContext,
        data: FactsData,
        quarantine: bool,
    ) -> Result<Gate, crate::spec::SpecError> {
        use crate::spec::SpecError;
        if data.shards.is_empty() || u32::try_from(data.shards.len()).is_err() {
            return Err(SpecError::FactsData(FactsDataError::Spec(format!(
                "{} shards",
                data.shards.len()
            ))));
        }
        let key = data.key_bytes().map_err(SpecError::FactsData)?;
        let shards = data.shards.iter().map(|_| OnceLock::new()).collect();
        let mentions = data.shards.iter().map(|_| OnceLock::new()).collect();
        Ok(Gate {
            engine: Engine::new(policy, ctx.purpose, ctx.as_of),
            members: Table::Parted(Box::new(Parted {
                data,
                key,
                shards,
                mentions,
                loaded: AtomicU64::new(0),
                mentions_loaded: AtomicU64::new(0),
            })),
            redactor: cg_redact::Redactor::new().map_err(SpecError::Redactor)?,
            quarantine,
            caches: Default::default(),
        })
    }

    /// How many members this gate has compiled (all of them, unless made from data).
    pub fn members_held(&self) -> u64 {
        match &self.members {
            Table::Whole(m) => m.len() as u64,
            Table::Parted(p) => p.loaded.load(Ordering::Relaxed),
        }
    }

    /// What the rule on mentions needs, for executors that hold some members only: who is
    /// included as of the cut-off, and the names of the excluded (`None` for a gate that was
    /// itself made from data). The tests' reference for [`MentionsTable`], which builds use.
    #[cfg(test)]
    pub(crate) fn mentions_data(&self) -> Option<crate::facts_data::MentionsData> {
        let Table::Whole(members) = &self.members else {
            return None;
        };
        let mut data = crate::facts_data::MentionsData::default();
        for (id, m) in members.iter() {
            add_mention_entry(&mut data, id, m.excluded_now, m.names.as_deref());
        }
        data.included.sort_unstable();
        data.names.sort_unstable_by_key(|(id, _, _)| *id);
        Some(data)
    }

    /// [`Gate::mentions_data`] of a gate over `members`, without keeping the gate: each member
    /// is compiled, read and dropped.
    #[cfg(test)]
    pub(crate) fn mentions_data_of(
        policy: Arc<Policy>,
        ctx: &EvalContext,
        members: &Members,
    ) -> crate::facts_data::MentionsData {
        let engine = Engine::new(policy, ctx.purpose.clone(), ctx.as_of);
        let mut table = MentionsTable::new(&engine);
        table.add(members);
        table.finish()
    }

    /// The compiled member `id` (`None`: not a member). `shard` is the member's keyed shard
    /// when the caller has it (see [`Row::shard`]); a wrong one can only make the member look
    /// unknown (excluded), never another member's facts apply.
    fn member(
        &self,
        id: i64,
        shard: Option<u32>,
    ) -> Result<Option<&GateMember>, Arc<FactsDataError>> {
        let parted = match &self.members {
            Table::Whole(m) => return Ok(m.get(id)),
            Table::Parted(p) => p,
        };
        let shard = parted.shard_of(id, shard);
        let cell = &parted.shards[shard as usize];
        let members = cell.get_or_init(|| {
            let rows = parted.data.read_shard(shard).map_err(Arc::new)?;
            let mut decider = self.engine.decider();
            let as_of = self.engine.as_of();
            let map: ShardMembers = rows
                .into_iter()
                .map(|(id, facts)| {
                    let m = compile_member(&self.engine, &mut decider, as_of, facts, UNROUTED);
                    (id, m)
                })
                .collect();
            parted.loaded.fetch_add(map.len() as u64, Ordering::Relaxed);
            log::info!(
                target: "consentgate::facts",
                "compiled the member facts of shard {shard}: {} members ({} held by this process)",
                map.len(),
                parted.loaded.load(Ordering::Relaxed)
            );
            Ok(map)
        });
        match members {
            Ok(m) => Ok(m.get(&id)),
            Err(e) => Err(e.clone()),
        }
    }

    /// The member `id` for redaction and reports, where a row of theirs was already decided
    /// (so their facts are loaded): a load error here reads as "not a member".
    fn known(&self, id: i64, shard: Option<u32>) -> Option<&GateMember> {
        self.member(id, shard).ok().flatten()
    }

    /// The engine the gate decides with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a member is excluded as of the cut-off, with the names scrubbed for them.
    /// Unknown members count as excluded: their consent cannot be shown. A gate made from data
    /// answers from its shards' mentions files ([`Gate::resolve_mention`]); one it cannot
    /// read counts as excluded too.
    fn mention_of(&self, id: i64) -> Option<Option<&Names>> {
        match &self.members {
            Table::Whole(m) => match m.get(id) {
                Some(m) if !m.excluded_now => None,
                m => Some(m.and_then(|m| m.names.as_deref())),
            },
            Table::Parted(p) => p.mention_of(id, None).unwrap_or(Some(None)),
        }
    }

    /// What the rule on mentions knows of member `id` as of the cut-off: included, or excluded
    /// (an unknown id too) with the names to scrub. The resolving side of a distributed build's
    /// narrow join ([`crate::mention_join`]) asks a gate made from data, which reads the
    /// mentions file of the member's shard on first use (`shard`: as for [`Row::shard`]; a
    /// wrong one can only make the member read as excluded). A file that cannot be read fails
    /// the build.
    pub fn resolve_mention(
        &self,
        id: i64,
        shard: Option<u32>,
    ) -> Result<MentionStatus<'_>, Arc<FactsDataError>> {
        let names = match &self.members {
            Table::Whole(_) => self.mention_of(id),
            Table::Parted(p) => p.mention_of(id, shard)?,
        };
        Ok(match names {
            None => MentionStatus::Included,
            Some(n) => MentionStatus::Excluded {
                handle: n.and_then(|n| n.handle.as_deref()),
                display_name: n.and_then(|n| n.display_name.as_deref()),
            },
        })
    }

    /// Members whose mention status this gate has read (0 unless made from data).
    pub fn mention_statuses_held(&self) -> u64 {
        match &self.members {
            Table::Whole(_) => 0,
            Table::Parted(p) => p.mentions_loaded.load(Ordering::Relaxed),
        }
    }

    /// Decides a batch of rows; `mentions[i]` are the members row `i` names. Returns verdict
    /// codes. A malformed row fails the build, or with quarantine is `invalid_record`.
    pub fn decide(&self, rows: &[Row<'_>], mentions: &Mentions) -> Result<Vec<u32>, RowError> {
        // A poisoned pool only costs the cache: the batch starts from an empty one.
        let cache = self
            .caches
            .lock()
            .ok()
            .and_then(|mut c| c.pop())
            .unwrap_or_default();
        let mut decider = self.engine.decider_with(cache);
        let out = self.decide_with(&mut decider, rows, mentions);
        if let Ok(mut caches) = self.caches.lock() {
            caches.push(decider.into_cache());
        }
        out
    }

    /// [`Gate::decide`] with a decider.
    fn decide_with(
        &self,
        decider: &mut Decider<'_>,
        rows: &[Row<'_>],
        mentions: &Mentions,
    ) -> Result<Vec<u32>, RowError> {
        let mut kinds: Vec<(&str, u8)> = Vec::new();
        let mut out = Vec::with_capacity(rows.len());
        // Every author first, in a loop of independent lookups: the member table is far larger
        // than the caches, and lookups with no work between them overlap their memory reads.
        // A lookup's error is raised where its row is decided, as before.
        let mut authors = rows
            .iter()
            .map(|r| r.member_id.map(|id| self.member(id, r.shard)))
            .collect::<Vec<_>>()
            .into_iter();
        for (i, r) in rows.iter().enumerate() {
            let author = authors.next().flatten();
            let code = match (r.member_id, r.kind, r.created_at) {
                (Some(member_id), Some(kind), Some(created_at)) => {
                    let kind = match kinds.iter().find(|(k, _)| *k == kind) {
                        Some((_, index)) => *index,
                        None => {
                            let index = self.engine.kind(kind);
                            kinds.push((kind, index));
                            index
                        }
                    };
                    let author = author
                        .unwrap_or_else(|| self.member(member_id, r.shard))
                        .map_err(|source| RowError::Facts {
                            content_id: r.content_id,
                            source,
                        })?
                        .map(|m| &m.compiled);
                    let code = decider.decide(author, kind, created_at);
                    // A row whose mentions are missing cannot be checked for excluded members:
                    // fail, never keep it unscrubbed.
                    let missing = || RowError::MentionsMissing {
                        content_id: r.content_id,
                    };
                    let named = mentions.get(i).ok_or_else(missing)?;
                    // A gate made from data holds no mentions table: a row's mentions must
                    // arrive resolved by the plan's narrow join.
                    if matches!(self.members, Table::Parted(_))
                        && !named.is_resolved()
                        && !named.ids.is_empty()
                    {
                        return Err(missing());
                    }
                    let names_excluded = cg_policy::decision_of(code).is_kept()
                        && self.excluded_mentions(member_id, named).next().is_some();
                    if names_excluded {
                        with_mention_redacted(code)
                    } else {
                        code
                    }
                }
                _ if self.quarantine => Verdict::exclude(ReasonCode::InvalidRecord).code(),
                (m, k, _) => {
                    let column = if m.is_none() {
                        "member_id"
                    } else if k.is_none() {
                        "kind"
                    } else {
                        "created_at"
                    };
                    return Err(RowError::MissingValue {
                        content_id: r.content_id,
                        column,
                    });
                }
            };
            out.push(code);
        }
        Ok(out)
    }

    /// The verdict of a code from [`Gate::decide`] (`None` for a value no verdict has).
    pub fn outcome(&self, code: u32) -> Option<Verdict> {
        Verdict::from_code(code)
    }

    /// The excluded members a kept row names (not its author), in order, with their names:
    /// from the row itself when its mentions arrived resolved, else from the gate's members.
    fn excluded_mentions<'a>(
        &'a self,
        member_id: i64,
        mentions: RowMentions<'a>,
    ) -> impl Iterator<Item = Option<&'a Names>> + 'a {
        mentions
            .ids
            .iter()
            .enumerate()
            .filter(move |(_, m)| **m != member_id)
            .filter_map(move |(j, m)| match mentions.names {
                Some(names) => Some(names.get(j).and_then(Option::as_ref)),
                None => self.mention_of(*m),
            })
    }

    /// The redacted text of a kept row: the PII engine with the author's country as phone hint,
    /// then the names and handles of excluded members the row mentions. Borrows `text` when
    /// nothing in it is personal data (no allocation for clean text).
    pub fn redact<'t>(
        &self,
        text: &'t str,
        member_id: i64,
        shard: Option<u32>,
        mentions: RowMentions<'_>,
        outcome: &Verdict,
    ) -> Option<std::borrow::Cow<'t, str>> {
        if !outcome.decision().is_kept() {
            return None;
        }
        let hint = self.phone_hint(member_id, shard);
        let scrub = outcome.reasons().contains(&ReasonCode::MentionRedacted);
        Some(self.redact_kept(text, hint, member_id, mentions, scrub))
    }

    /// The redacted text of a row already known to be kept, with its author's phone hint
    /// already looked up: [`Gate::redact`] without the verdict, `scrub_mentions` saying whether
    /// it has `mention_redacted` (the writer reads both off the verdict's code,
    /// [`Verdict::code_has_reason`]).
    pub fn redact_kept<'t>(
        &self,
        text: &'t str,
        hint: Option<cg_model::CountryCode>,
        member_id: i64,
        mentions: RowMentions<'_>,
        scrub_mentions: bool,
    ) -> std::borrow::Cow<'t, str> {
        let mut out = self.redactor.redact(
            text,
            hint.as_ref().map(|c| c.as_str()),
            cg_redact::Replacement::Placeholder,
        );
        if scrub_mentions {
            for m in self.excluded_mentions(member_id, mentions).flatten() {
                if let Some(h) = &m.handle {
                    out = std::borrow::Cow::Owned(scrub(&out, h, "<MENTION>"));
                }
                if let Some(n) = &m.display_name {
                    out = std::borrow::Cow::Owned(scrub(&out, n, "<PERSON>"));
                }
            }
        }
        out
    }

    /// [`Gate::redact_kept`] handed to `put` in pieces (the text between entities, and their
    /// placeholders) instead of returned, finding entities into a span buffer the caller
    /// reuses: a row that scrubs no mention costs no allocation, and the writer puts its text
    /// straight into the shard's column. Gives exactly [`Gate::redact_kept`]'s text.
    #[allow(clippy::too_many_arguments)]
    pub fn redact_kept_with(
        &self,
        text: &str,
        hint: Option<cg_model::CountryCode>,
        member_id: i64,
        mentions: RowMentions<'_>,
        scrub_mentions: bool,
        spans: &mut Vec<cg_redact::Span>,
        mut put: impl FnMut(&str),
    ) {
        if scrub_mentions {
            put(&self.redact_kept(text, hint, member_id, mentions, true));
            return;
        }
        self.redactor
            .find_into(text, hint.as_ref().map(|c| c.as_str()), spans);
        self.redactor
            .apply_with(text, spans, cg_redact::Replacement::Placeholder, put);
    }

    /// The author's country at the cut-off, the phone-number hint of redaction (`None` for an
    /// unknown member or one whose facts could not be loaded). `shard`: as for [`Row::shard`].
    pub fn phone_hint(&self, member_id: i64, shard: Option<u32>) -> Option<cg_model::CountryCode> {
        self.known(member_id, shard).and_then(|m| m.hint)
    }

    /// What a kept row's redacted text depends on besides the row itself: the author's
    /// phone-hint country at the cut-off, and the handles and names scrubbed for the excluded
    /// members it mentions (in order; only when the verdict has `mention_redacted`). 0 for a
    /// row that is not kept. Stored in `decisions.parquet`, so an incremental rebuild can tell
    /// which shards must be rewritten.
    pub fn redaction_fingerprint(
        &self,
        member_id: i64,
        shard: Option<u32>,
        mentions: RowMentions<'_>,
        outcome: &Verdict,
    ) -> i64 {
        if !outcome.decision().is_kept() {
            return 0;
        }
        self.hinted_fingerprint(
            &mut FingerprintMemo::default(),
            self.phone_hint(member_id, shard),
            member_id,
            mentions,
            outcome,
        )
    }

    /// [`Gate::redaction_fingerprint`], the same value, with the author's phone hint already
    /// looked up ([`Gate::phone_hint`]) and the fingerprints of rows that scrub no mention
    /// taken from `memo`: those depend on the hint alone, a handful of distinct values, so a
    /// batch hashes each once instead of once a row.
    pub fn hinted_fingerprint(
        &self,
        memo: &mut FingerprintMemo,
        hint: Option<cg_model::CountryCode>,
        member_id: i64,
        mentions: RowMentions<'_>,
        outcome: &Verdict,
    ) -> i64 {
        if !outcome.decision().is_kept() {
            return 0;
        }
        let scrub = outcome.reasons().contains(&ReasonCode::MentionRedacted);
        self.kept_fingerprint(memo, hint, member_id, mentions, scrub)
    }

    /// The fingerprint of a row already known to be kept: [`Gate::hinted_fingerprint`] without
    /// the verdict, `scrub_mentions` saying whether it has `mention_redacted`.
    pub fn kept_fingerprint(
        &self,
        memo: &mut FingerprintMemo,
        hint: Option<cg_model::CountryCode>,
        member_id: i64,
        mentions: RowMentions<'_>,
        scrub_mentions: bool,
    ) -> i64 {
        let scrubbed =
            scrub_mentions && self.excluded_mentions(member_id, mentions).next().is_some();
        if !scrubbed {
            return *memo
                .0
                .entry(hint)
                .or_insert_with(|| fingerprint(hint, std::iter::empty()));
        }
        fingerprint(hint, self.excluded_mentions(member_id, mentions))
    }

    /// What the writer needs of a row's author, in one lookup: whether they asked for erasure
    /// on or before the cut-off, their report region at the cut-off as an index for
    /// [`Gate::region_label`] (`UNKNOWN` for an unknown or missing author), their keyed
    /// shard when the gate routes, and their phone hint for redaction. A member whose facts
    /// could not be loaded reads as erased (excluded). `shard`: as for [`Row::shard`].
    pub fn author(&self, member_id: Option<i64>, shard: Option<u32>) -> Author {
        let unknown = Author {
            erased: false,
            region: 0,
            shard: None,
            hint: None,
        };
        let Some(id) = member_id else {
            return unknown;
        };
        match self.member(id, shard) {
            Ok(m) => m.map_or(unknown, |m| Author {
                erased: m.compiled.erasure_requested(),
                region: m.region,
                shard: (m.shard != UNROUTED).then_some(m.shard),
                hint: m.hint,
            }),
            Err(_) => Author {
                erased: true,
                ..unknown
            },
        }
    }

    /// The label of a region index from [`Gate::author`] (`EU`, `UK`, ..., `ROW`, `UNKNOWN`).
    pub fn region_label(&self, index: u8) -> &'static str {
        region_labels()
            .get(usize::from(index))
            .copied()
            .unwrap_or("UNKNOWN")
    }
}

/// Replaces whole-word, ASCII-case-insensitive occurrences of `needle` in `text`.
fn scrub(text: &str, needle: &str, with: &str) -> String {
    let needle = needle.trim();
    if needle.chars().count() < 2 {
        return text.to_owned();
    }
    let lower_text = text.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(i) = lower_text[from..].find(&lower_needle) {
        let start = from + i;
        let end = start + lower_needle.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after_ok = text[end..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            out.push_str(&text[last..start]);
            out.push_str(with);
            last = end;
            from = end;
        } else {
            // A match inside a word may overlap a whole-word one (`Ana Ana` in `xAna Ana
            // Ana`): look again from its second character, not past its end.
            from = start + lower_text[start..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out.push_str(&text[last..]);
    out
}

/// The fingerprints of kept rows that scrub no mention, by the author's phone hint
/// ([`Gate::hinted_fingerprint`]).
#[derive(Debug, Default)]
pub struct FingerprintMemo(FxHashMap<Option<cg_model::CountryCode>, i64>);

/// [`Gate::redaction_fingerprint`]'s hash: the phone hint, then the handle and display name of
/// each excluded member scrubbed, in order (`None`: a member whose names are unknown).
fn fingerprint<'a>(
    hint: Option<cg_model::CountryCode>,
    scrubbed: impl Iterator<Item = Option<&'a Names>>,
) -> i64 {
    let mut h = sha2::Sha256::new();
    h.update([1]);
    h.update(hint.as_ref().map_or("-", |c| c.as_str()));
    for member in scrubbed {
        h.update([2]);
        h.update(member.and_then(|x| x.handle.as_deref()).unwrap_or(""));
        h.update([3]);
        h.update(member.and_then(|x| x.display_name.as_deref()).unwrap_or(""));
    }
    let d = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&d[..8]);
    i64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::{WholeTable, region_labels, scrub};
    use cg_model::{Region, RegionSet};
    use rustc_hash::FxHashMap;

    #[test]
    fn dense_and_sparse_member_tables_find_exactly_their_ids() {
        let cases: Vec<Vec<i64>> = vec![
            vec![],
            (1..=1000).collect(),
            (-500..500).step_by(2).collect(),
            vec![i64::MIN, -1, 0, 7, i64::MAX],
            (0..100).map(|i| i * 1_000_003).collect(),
            // Enough members for several compiling threads, dense and sparse.
            (7..100_007).collect(),
            (0..40_000).map(|i| i * 1_000_003).collect(),
        ];
        // One thread, and more threads than parts of a few ids each.
        for (ids, threads) in cases
            .iter()
            .flat_map(|ids| [(ids.clone(), 1), (ids.clone(), 3)])
        {
            let entries: FxHashMap<i64, i64> =
                ids.iter().map(|id| (*id, id.wrapping_mul(3))).collect();
            let table = WholeTable::new(entries, threads, || (), |(), _, v| v);
            let dense = matches!(table, WholeTable::Dense { .. });
            assert_eq!(table.len(), ids.len());
            for id in &ids {
                assert_eq!(
                    table.get(*id),
                    Some(&id.wrapping_mul(3)),
                    "{id}, dense {dense}"
                );
            }
            for absent in [i64::MIN + 1, -501, -499, 1001, 1_000_004, i64::MAX - 1] {
                if !ids.contains(&absent) {
                    assert_eq!(table.get(absent), None, "{absent}");
                }
            }
            let mut seen: Vec<i64> = table.iter().map(|(id, _)| id).collect();
            seen.sort_unstable();
            let mut expected = ids.clone();
            expected.sort_unstable();
            assert_eq!(seen, expected);
            // Dense where the ids are (1 000 ids in 1 000 or 1 000 slots); sparse ids hashed.
            let spread = ids.len() > 1 && ids[1] - ids[0] > 1_000;
            assert_eq!(dense, ids.len() >= 500 && !spread, "{} ids", ids.len());
        }
    }

    #[test]
    fn every_report_label_has_an_index() {
        // Each single region, every pair, and none: whatever `report_label` answers is listed
        // (an unlisted label would be counted as UNKNOWN).
        let mut sets = vec![RegionSet::EMPTY];
        for a in Region::ALL {
            sets.push(RegionSet::of(&[a]));
            for b in Region::ALL {
                sets.push(RegionSet::of(&[a, b]));
            }
        }
        for set in sets {
            let label = set.report_label();
            assert!(region_labels().contains(&label), "{label}");
            assert_eq!(
                region_labels()[usize::from(super::region_index(Some(set)))],
                label,
                "{set:?}"
            );
        }
        assert_eq!(region_labels()[0], "UNKNOWN");
        assert_eq!(super::region_index(None), 0);
    }

    #[test]
    fn scrub_whole_words_only() {
        assert_eq!(
            scrub("Thanks Anna Müller and anna müller!", "Anna Müller", "<P>"),
            "Thanks <P> and <P>!"
        );
        assert_eq!(
            scrub("annamuller12 vs annamuller1", "annamuller1", "<M>"),
            "annamuller12 vs <M>"
        );
        // A whole-word occurrence overlapping one inside a word is still found.
        assert_eq!(scrub("xAna Ana Ana", "Ana Ana", "<P>"), "xAna <P>");
    }
}
