//! The DataFusion extension points, kept in one module (their API changes each release):
//! `cg_gate(content_id, member_id, kind, created_at, mentions) -> UInt32` (the outcome id), the
//! shard functions `cg_shard` and `cg_in_shards`, and the two functions of a distributed
//! build's narrow join for mentions ([`crate::mention_join`]): `cg_mention_ids(mentions)`
//! (every id a row names, as a list, to unnest) and `cg_mention_status(member_id, shard)` (what
//! the rule on mentions knows of a member). Strings may arrive as `Utf8`, `LargeUtf8` or
//! `Utf8View`; times as any timestamp or RFC 3339 text; mentions as `list<int64>`, `;`-joined
//! text, or resolved by the narrow join. Redaction and the redaction fingerprint are not functions of the plan: the
//! writer computes them for the rows it keeps (`crate::pass`), with the author it has looked up.
//!
//! The gate UDF holds a [`GateRef`]: the planning process's gate, or on a distributed build's
//! executor the spec it is made from ([`crate::spec`]); [`gate_udf_spec`] and [`udf_from_spec`]
//! are what the Ballista codec ships and rebuilds.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType, UInt32Type};
use cg_model::Timestamp;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::gate::{Mentions, Row};
use crate::spec::GateRef;
#[cfg(feature = "ballista")]
use crate::spec::GateSpec;

fn exec_err(m: impl Into<String>) -> DataFusionError {
    DataFusionError::Execution(m.into())
}

fn arrays(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    args.args
        .iter()
        .map(|a| a.clone().into_array(args.number_rows))
        .collect()
}

fn strings(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(a, &DataType::Utf8)?)
}

/// A string column read in place when it is `Utf8`, `LargeUtf8` or `Utf8View` (Parquet scans
/// give views: no copy of the text), cast to `Utf8` once for any other type.
///
/// The column's type is resolved once, when it is made: reading a row is then one typed
/// access, not a match on the data type and a downcast per row (which a profile of the 10 M-row
/// build put at ~2 % of its CPU, in `cg_gate`'s kinds alone).
pub(crate) enum StrColumn {
    Utf8(arrow::array::StringArray),
    Large(arrow::array::LargeStringArray),
    View(arrow::array::StringViewArray),
}

impl StrColumn {
    pub(crate) fn new(a: &ArrayRef) -> Result<StrColumn> {
        let typed = match a.data_type() {
            DataType::LargeUtf8 => a.as_string_opt::<i64>().cloned().map(StrColumn::Large),
            DataType::Utf8View => a.as_string_view_opt().cloned().map(StrColumn::View),
            DataType::Utf8 => a.as_string_opt::<i32>().cloned().map(StrColumn::Utf8),
            _ => strings(a)?
                .as_string_opt::<i32>()
                .cloned()
                .map(StrColumn::Utf8),
        };
        typed.ok_or_else(|| exec_err(format!("a {} column is not text", a.data_type())))
    }

    /// Row `i`, `None` when null.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        match self {
            StrColumn::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            StrColumn::Large(a) => a.is_valid(i).then(|| a.value(i)),
            StrColumn::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// The optional trailing `cg_shard` argument (see [`udfs`]): `None` when the call has only
/// `required` arguments.
fn shards_arg(a: &[ArrayRef], required: usize) -> Result<Option<UInt32Array>> {
    a.get(required)
        .map(|s| {
            s.as_primitive_opt::<UInt32Type>()
                .cloned()
                .ok_or_else(|| exec_err("the cg_shard argument is not UInt32"))
        })
        .transpose()
}

/// Row `i`'s shard from [`shards_arg`].
fn shard_at(shards: &Option<UInt32Array>, i: usize) -> Option<u32> {
    shards
        .as_ref()
        .and_then(|s| s.is_valid(i).then(|| s.value(i)))
}

/// An integer column read in place when it is `Int64` (no copy), cast to it once otherwise (a
/// value that does not convert reads as null, which the gate never keeps).
struct Ints(arrow::array::Int64Array);

impl Ints {
    fn new(a: &ArrayRef) -> Result<Ints> {
        let c = cast(a, &DataType::Int64)?;
        Ok(Ints(c.as_primitive::<Int64Type>().clone()))
    }

    /// Row `i`, `None` when null.
    fn get(&self, i: usize) -> Option<i64> {
        self.0.is_valid(i).then(|| self.0.value(i))
    }

    /// Every row in order.
    fn iter(&self) -> impl Iterator<Item = Option<i64>> + '_ {
        self.0.iter()
    }
}

/// Times from any timestamp type or RFC 3339 text.
pub fn times_pub(a: &ArrayRef) -> Result<Vec<Option<Timestamp>>> {
    times(a)
}

fn times(a: &ArrayRef) -> Result<Vec<Option<Timestamp>>> {
    match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = strings(a)?;
            let s = s.as_string::<i32>();
            Ok(s.iter()
                .map(|v| v.and_then(|v| Timestamp::parse(v).ok()))
                .collect())
        }
        _ => {
            let c = cast(
                a,
                &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            )?;
            Ok(c.as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|v| v.map(Timestamp::from_micros))
                .collect())
        }
    }
}

/// Mentions per row, from `list<int64>`, `;`-joined text, null, or resolved by the narrow join
/// ([`crate::mention_join::resolved_type`]).
pub fn mention_lists(a: &ArrayRef) -> Result<Mentions> {
    match a.data_type() {
        DataType::Null => Ok(Mentions::none(a.len())),
        t if *t == crate::mention_join::resolved_type() => crate::mention_join::read_resolved(a),
        DataType::List(_) | DataType::LargeList(_) => {
            let l = cast(
                a,
                &DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(
                    DataType::Int64,
                    true,
                ))),
            )?;
            let l = l.as_list::<i32>();
            let values = l.values().as_primitive::<Int64Type>();
            let offsets = l.value_offsets();
            let mut out = Mentions::default();
            for i in 0..l.len() {
                if l.is_null(i) {
                    out.push_row(std::iter::empty());
                } else {
                    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                    out.push_row(
                        (start..end)
                            .filter(|&j| values.is_valid(j))
                            .map(|j| values.value(j)),
                    );
                }
            }
            Ok(out)
        }
        _ => {
            let s = strings(a)?;
            let s = s.as_string::<i32>();
            let mut out = Mentions::default();
            let mut row = Vec::new();
            for v in s.iter() {
                row.clear();
                if let Some(v) = v {
                    for p in v.split([';', ',']).map(str::trim).filter(|p| !p.is_empty()) {
                        row.push(
                            p.trim_matches(['[', ']']).parse::<i64>().map_err(|_| {
                                exec_err(format!("`{v}` is not a list of member ids"))
                            })?,
                        );
                    }
                }
                out.push_row(row.iter().copied());
            }
            Ok(out)
        }
    }
}

/// `cg_gate`.
#[derive(Debug)]
pub struct GateUdf {
    gate: Arc<GateRef>,
    signature: Signature,
}

macro_rules! identity_eq {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.gate, &other.gate)
            }
        }
        impl Eq for $t {}
        impl Hash for $t {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.name().hash(state);
            }
        }
    };
}
identity_eq!(GateUdf);

impl ScalarUDFImpl for GateUdf {
    fn name(&self) -> &str {
        "cg_gate"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let ids = Ints::new(&a[0])?;
        let members = Ints::new(&a[1])?;
        let kinds = StrColumn::new(&a[2])?;
        let created = times(&a[3])?;
        let mentions = mention_lists(&a[4])?;
        let shards = shards_arg(&a, 5)?;
        let rows: Vec<Row<'_>> = (0..args.number_rows)
            .map(|i| Row {
                content_id: ids.get(i).unwrap_or(0),
                member_id: members.get(i),
                kind: kinds.get(i),
                created_at: created[i],
                shard: shard_at(&shards, i),
            })
            .collect();
        let gate = self
            .gate
            .gate()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let out = gate
            .decide(&rows, &mentions)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(ColumnarValue::Array(Arc::new(UInt32Array::from(out))))
    }
}

/// `cg_mention_ids(mentions) -> List<Int64>`: every id a row names, read as the gate reads
/// them ([`mention_lists`]), so that a plan can unnest them.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MentionIdsUdf {
    signature: Signature,
}

impl ScalarUDFImpl for MentionIdsUdf {
    fn name(&self) -> &str {
        MENTION_IDS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(mention_ids_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let mentions = mention_lists(&a[0])?;
        let mut out = arrow::array::ListBuilder::with_capacity(
            arrow::array::Int64Builder::new(),
            mentions.len(),
        )
        .with_field(Arc::new(arrow::datatypes::Field::new_list_field(
            DataType::Int64,
            false,
        )));
        for i in 0..mentions.len() {
            let row = mentions
                .get(i)
                .ok_or_else(|| exec_err("a row's mentions went missing"))?;
            out.values().append_slice(row.ids());
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The name of [`mention_ids`].
pub const MENTION_IDS: &str = "cg_mention_ids";

/// The type [`mention_ids`] returns.
fn mention_ids_type() -> DataType {
    DataType::List(Arc::new(arrow::datatypes::Field::new_list_field(
        DataType::Int64,
        false,
    )))
}

/// The `cg_mention_ids` UDF.
pub fn mention_ids() -> ScalarUDF {
    ScalarUDF::from(MentionIdsUdf {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// `cg_mention_status(member_id, shard) -> Struct` ([`crate::mention_join::status_type`]): what
/// the rule on mentions knows of a mentioned member, from the gate ([`crate::gate::Gate::resolve_mention`]).
/// Null for an excluded member without names (and an unknown id): the narrow join reads a
/// member it is not told about as excluded. `shard` is the member's keyed shard (`cg_shard`,
/// which the plan routes by), so that a task reads only its shards' mentions files.
#[derive(Debug)]
pub struct MentionStatusUdf {
    gate: Arc<GateRef>,
    signature: Signature,
}
identity_eq!(MentionStatusUdf);

impl ScalarUDFImpl for MentionStatusUdf {
    fn name(&self) -> &str {
        MENTION_STATUS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(crate::mention_join::status_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let ids = Ints::new(&a[0])?;
        let shards = shards_arg(&a, 1)?;
        let gate = self
            .gate
            .gate()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut out = crate::mention_join::StatusBuilder::with_capacity(args.number_rows);
        for i in 0..args.number_rows {
            let Some(id) = ids.get(i) else {
                out.append_excluded(None, None);
                continue;
            };
            let status = gate
                .resolve_mention(id, shard_at(&shards, i))
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            match status {
                crate::gate::MentionStatus::Included => out.append_included(),
                crate::gate::MentionStatus::Excluded {
                    handle,
                    display_name,
                } => out.append_excluded(handle, display_name),
            }
        }
        Ok(ColumnarValue::Array(out.finish()?))
    }
}

/// The name of [`mention_status`].
pub const MENTION_STATUS: &str = "cg_mention_status";

/// `cg_mention_status` over one gate.
pub fn mention_status(gate: Arc<GateRef>) -> ScalarUDF {
    ScalarUDF::from(MentionStatusUdf {
        gate,
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Immutable,
        ),
    })
}

/// `cg_in_shards(member_id) -> Boolean`: whether the member's keyed shard is one of a set
/// (an incremental rebuild reads and redacts only the rows of the shards it rewrites).
#[derive(Debug)]
struct ShardFilterUdf {
    key: Vec<u8>,
    shards: u32,
    keep: Arc<rustc_hash::FxHashSet<u32>>,
    signature: Signature,
}

impl PartialEq for ShardFilterUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.keep, &other.keep)
    }
}
impl Eq for ShardFilterUdf {}
impl Hash for ShardFilterUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl ScalarUDFImpl for ShardFilterUdf {
    fn name(&self) -> &str {
        "cg_in_shards"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let members = Ints::new(&a[0])?;
        let mut memo: rustc_hash::FxHashMap<i64, bool> = rustc_hash::FxHashMap::default();
        let out: arrow::array::BooleanArray = members
            .iter()
            .map(|m| {
                Some(m.is_some_and(|m| {
                    *memo.entry(m).or_insert_with(|| {
                        self.keep
                            .contains(&crate::layout::keyed_shard(&self.key, m, self.shards))
                    })
                }))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `cg_route(shard) -> UInt64`: the value a distributed plan routes a shard's rows by
/// ([`balanced_routes`]), null for a null or unknown shard.
#[derive(Debug)]
struct RouteUdf {
    routes: Arc<Vec<u64>>,
    signature: Signature,
}

impl PartialEq for RouteUdf {
    fn eq(&self, other: &Self) -> bool {
        self.routes == other.routes
    }
}
impl Eq for RouteUdf {}
impl Hash for RouteUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        self.routes.len().hash(state);
    }
}

impl ScalarUDFImpl for RouteUdf {
    fn name(&self) -> &str {
        ROUTE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let shards = a[0]
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| exec_err("cg_route: the shard is not UInt32"))?;
        let out: arrow::array::UInt64Array = shards
            .iter()
            .map(|s| s.and_then(|s| self.routes.get(s as usize).copied()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The name of [`route`].
pub const ROUTE: &str = "cg_route";

/// The `cg_route` UDF over `routes` (one per shard, from [`balanced_routes`]).
pub fn route(routes: Arc<Vec<u64>>) -> ScalarUDF {
    ScalarUDF::from(RouteUdf {
        routes,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[cfg(feature = "ballista")]
/// The routes a `cg_route` UDF carries (`None` for any other function).
pub fn route_spec(udf: &ScalarUDF) -> Option<&[u64]> {
    udf.inner()
        .downcast_ref::<RouteUdf>()
        .map(|u| u.routes.as_slice())
}

#[cfg(feature = "ballista")]
/// The `cg_route` UDF over routes from a plan, checked: at least one, and each the number of
/// its shard modulo their count (so that two shards never share a route).
pub fn route_from_spec(routes: Vec<u64>) -> Result<ScalarUDF> {
    let n = routes.len() as u64;
    if n == 0 || (0..n).zip(&routes).any(|(s, r)| r % n != s) {
        return Err(exec_err("cg_route: routes that are not one per shard"));
    }
    Ok(route(Arc::new(routes)))
}

/// The value each shard's rows are routed by in a distributed plan of `partitions` tasks a
/// stage: for shard `s`, the least `s + k × shards` that DataFusion's hash repartitioning (the
/// one a Ballista shuffle uses) sends to task `s mod partitions`. Routing by the shard number
/// itself left tasks without a shard and others with two or more (16 shards on 16 tasks: 6
/// idle); with these routes the shards are dealt out evenly. Which task gets a shard never
/// changes what is decided or written (every row of a shard goes to one task either way).
/// A shard for which no such value is found among the first candidates keeps its number
/// (routed as before).
pub fn balanced_routes(shards: u32, partitions: usize) -> Result<Vec<u64>> {
    use arrow::datatypes::{Field, Schema};
    use datafusion::physical_plan::repartition::BatchPartitioner;
    let partitions = partitions.max(1);
    let shards_n = u64::from(shards);
    let mut routes: Vec<Option<u64>> = vec![None; shards as usize];
    let schema = Arc::new(Schema::new(vec![Field::new("r", DataType::UInt64, false)]));
    let column: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
        Arc::new(datafusion::physical_expr::expressions::Column::new("r", 0));
    let mut partitioner = BatchPartitioner::new_hash_partitioner(
        vec![column],
        partitions,
        datafusion::physical_plan::metrics::Time::new(),
    )?;
    // Rounds of candidates for the shards still without a route: ~`partitions` tries a shard
    // are expected; 64 rounds of `partitions` each leave a shard unplaced with odds ~e^-64.
    let per_round = partitions as u64;
    for round in 0..64u64 {
        let open: Vec<u64> = (0..shards_n)
            .filter(|s| routes[*s as usize].is_none())
            .collect();
        if open.is_empty() {
            break;
        }
        let candidates: Vec<u64> = open
            .iter()
            .flat_map(|s| {
                (round * per_round..(round + 1) * per_round).map(move |k| s + k * shards_n)
            })
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::UInt64Array::from(candidates))],
        )?;
        for part in partitioner.partition_iter(batch)? {
            let (task, part) = part?;
            let values = part
                .column(0)
                .as_primitive_opt::<arrow::datatypes::UInt64Type>()
                .ok_or_else(|| exec_err("cg_route: candidates are not UInt64"))?;
            for v in values.values() {
                let s = v % shards_n;
                let slot = &mut routes[s as usize];
                if s % partitions as u64 == task as u64 && (*slot).is_none_or(|r| *v < r) {
                    *slot = Some(*v);
                }
            }
        }
    }
    Ok((0..shards_n)
        .zip(routes)
        .map(|(s, r)| r.unwrap_or(s))
        .collect())
}

/// `cg_shard(member_id) -> UInt32`: the member's keyed shard (null for a missing member). A
/// distributed plan repartitions content by it, so the task deciding a shard's rows is the
/// only one that loads that shard's member facts.
#[derive(Debug)]
struct ShardOfUdf {
    key: Vec<u8>,
    shards: u32,
    signature: Signature,
}

impl PartialEq for ShardOfUdf {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.shards == other.shards
    }
}
impl Eq for ShardOfUdf {}
impl Hash for ShardOfUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
        self.shards.hash(state);
    }
}

impl ScalarUDFImpl for ShardOfUdf {
    fn name(&self) -> &str {
        "cg_shard"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let members = Ints::new(&a[0])?;
        let out: UInt32Array = members
            .iter()
            .map(|m| m.map(|m| crate::layout::keyed_shard(&self.key, m, self.shards)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The `cg_shard` UDF.
pub fn shard_of(key: &[u8], shards: u32) -> ScalarUDF {
    ScalarUDF::from(ShardOfUdf {
        key: key.to_vec(),
        shards,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[cfg(feature = "ballista")]
/// The spec of a `cg_shard` UDF (`None` for any other function): a [`ShardFilterSpec`] that
/// keeps nothing.
pub fn shard_of_spec(udf: &ScalarUDF) -> Option<ShardFilterSpec> {
    udf.inner()
        .downcast_ref::<ShardOfUdf>()
        .map(|u| ShardFilterSpec {
            key: crate::layout::hex(&u.key),
            shards: u.shards,
            keep: Vec::new(),
        })
}

#[cfg(feature = "ballista")]
/// The `cg_shard` UDF a [`ShardFilterSpec`] describes (its `keep` unused).
pub fn shard_of_from_spec(spec: &ShardFilterSpec) -> Result<ScalarUDF> {
    Ok(shard_of(&spec.checked_key("cg_shard")?, spec.shards))
}

#[cfg(feature = "ballista")]
/// What `cg_in_shards` needs: the shard key, the shard count and the shards kept (sorted), as
/// the distributed codec ships it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardFilterSpec {
    /// The shard key, hex.
    pub key: String,
    /// The shard count.
    pub shards: u32,
    /// The shards whose rows pass.
    pub keep: Vec<u32>,
}

#[cfg(feature = "ballista")]
impl ShardFilterSpec {
    /// The shard key as bytes, after checking the spec names a key and at least one shard
    /// (`udf`: the function it is for, in errors).
    fn checked_key(&self, udf: &str) -> Result<Vec<u8>> {
        let key = crate::layout::unhex(&self.key)
            .ok_or_else(|| exec_err(format!("{udf}: the shard key is not hex")))?;
        if self.shards == 0 {
            return Err(exec_err(format!("{udf}: no shards")));
        }
        Ok(key)
    }
}

#[cfg(feature = "ballista")]
/// The spec of a `cg_in_shards` UDF (`None` for any other function).
pub fn shard_filter_spec(udf: &ScalarUDF) -> Option<ShardFilterSpec> {
    udf.inner().downcast_ref::<ShardFilterUdf>().map(|u| {
        let mut keep: Vec<u32> = u.keep.iter().copied().collect();
        keep.sort_unstable();
        ShardFilterSpec {
            key: crate::layout::hex(&u.key),
            shards: u.shards,
            keep,
        }
    })
}

#[cfg(feature = "ballista")]
/// The `cg_in_shards` UDF a [`ShardFilterSpec`] describes.
pub fn shard_filter_from_spec(spec: &ShardFilterSpec) -> Result<ScalarUDF> {
    Ok(shard_filter(
        &spec.checked_key("cg_in_shards")?,
        spec.shards,
        Arc::new(spec.keep.iter().copied().collect()),
    ))
}

/// The shard filter UDF.
pub fn shard_filter(key: &[u8], shards: u32, keep: Arc<rustc_hash::FxHashSet<u32>>) -> ScalarUDF {
    ScalarUDF::from(ShardFilterUdf {
        key: key.to_vec(),
        shards,
        keep,
        signature: Signature::any(1, Volatility::Immutable),
    })
}

#[cfg(feature = "ballista")]
/// The names of the UDFs that carry a gate (and so a [`GateSpec`] across processes).
pub const GATE_UDFS: [&str; 2] = ["cg_gate", MENTION_STATUS];

#[cfg(feature = "ballista")]
/// The spec a gate UDF carries (`None` for any other function).
pub fn gate_udf_spec(udf: &ScalarUDF) -> Option<&GateSpec> {
    let inner = udf.inner();
    inner
        .downcast_ref::<GateUdf>()
        .map(|u| &u.gate)
        .or_else(|| inner.downcast_ref::<MentionStatusUdf>().map(|u| &u.gate))
        .and_then(|gate| gate.spec())
}

#[cfg(feature = "ballista")]
/// The gate UDF `name` over the gate `spec` describes (made on first use, once per process for
/// every UDF of one spec), or `None` when `name` is not one of [`GATE_UDFS`].
pub fn udf_from_spec(name: &str, spec: GateSpec) -> Option<ScalarUDF> {
    let gate = || Arc::new(GateRef::from_spec(spec));
    match name {
        "cg_gate" => Some(gate_udf(gate())),
        MENTION_STATUS => Some(mention_status(gate())),
        _ => None,
    }
}

/// `cg_gate` over one gate.
///
/// It takes its author's keyed shard as an optional last argument (`cg_shard`, which a
/// distributed plan has computed to route the row): given, the gate looks the author up without
/// hashing the id again.
pub fn gate_udf(gate: Arc<GateRef>) -> ScalarUDF {
    ScalarUDF::from(GateUdf {
        gate,
        signature: Signature::one_of(
            vec![TypeSignature::Any(5), TypeSignature::Any(6)],
            Volatility::Immutable,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, LargeStringArray, StringArray, StringViewArray};
    use arrow::datatypes::Int32Type;

    fn rows(column: &StrColumn, n: usize) -> Vec<Option<String>> {
        (0..n).map(|i| column.get(i).map(str::to_owned)).collect()
    }

    /// Each shard's route is hashed by DataFusion's repartitioning (as a Ballista shuffle hashes
    /// it) to task `shard mod tasks`, so shards are dealt evenly over the tasks; a route names
    /// its shard (route mod shards).
    #[test]
    fn balanced_routes_deal_the_shards_evenly_over_the_tasks() {
        use datafusion::common::hash_utils::create_hashes;
        use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;
        for (shards, tasks) in [
            (16u32, 16usize),
            (64, 4),
            (3, 8),
            (1, 1),
            (1000, 37),
            (16, 1),
        ] {
            let routes = balanced_routes(shards, tasks).unwrap();
            assert_eq!(routes.len(), shards as usize);
            let values: ArrayRef = Arc::new(arrow::array::UInt64Array::from(routes.clone()));
            let mut hashes = vec![0u64; routes.len()];
            create_hashes(
                &[values],
                REPARTITION_RANDOM_STATE.random_state(),
                &mut hashes,
            )
            .unwrap();
            let mut per_task = vec![0u32; tasks];
            for (s, (route, hash)) in routes.iter().zip(&hashes).enumerate() {
                assert_eq!(route % u64::from(shards), s as u64, "{shards}/{tasks}");
                let task = (hash % tasks as u64) as usize;
                assert_eq!(task, s % tasks, "shard {s} of {shards} on {tasks} tasks");
                per_task[task] += 1;
            }
            let (min, max) = (per_task.iter().min(), per_task.iter().max());
            assert!(max.unwrap() - min.unwrap() <= 1, "{per_task:?}");
        }
        // The shard numbers themselves, as routed before: uneven (the reason for routes).
        let numbers: ArrayRef = Arc::new(UInt32Array::from((0..16u32).collect::<Vec<_>>()));
        let mut hashes = vec![0u64; 16];
        create_hashes(
            &[numbers],
            datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE.random_state(),
            &mut hashes,
        )
        .unwrap();
        let used: std::collections::BTreeSet<u64> = hashes.iter().map(|h| h % 16).collect();
        assert!(used.len() < 16, "{used:?}");
    }

    /// `cg_route` maps each shard to its route; a null or unknown shard to null.
    #[test]
    fn the_route_of_a_shard_is_its_entry_and_nothing_else_has_one() {
        let udf = route(Arc::new(vec![10, 21]));
        let shards: ArrayRef = Arc::new(UInt32Array::from(vec![Some(1), None, Some(0), Some(2)]));
        let args = ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(shards)],
            arg_fields: vec![Arc::new(arrow::datatypes::Field::new(
                "s",
                DataType::UInt32,
                true,
            ))],
            number_rows: 4,
            return_field: Arc::new(arrow::datatypes::Field::new("r", DataType::UInt64, true)),
            config_options: Arc::new(Default::default()),
        };
        let ColumnarValue::Array(out) = udf.invoke_with_args(args).unwrap() else {
            panic!("an array");
        };
        let out = out.as_primitive::<arrow::datatypes::UInt64Type>();
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            vec![Some(21), None, Some(10), None]
        );
    }

    #[test]
    fn every_text_type_reads_the_same_rows_nulls_and_slices_included() {
        let values = [
            Some("post"),
            None,
            Some(""),
            Some("a longer text than a view's twelve inline bytes"),
            Some("é"),
        ];
        let expected: Vec<Option<String>> = values.iter().map(|v| v.map(str::to_owned)).collect();
        let dictionary: DictionaryArray<Int32Type> = values.iter().copied().collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(values.to_vec())),
            Arc::new(LargeStringArray::from(values.to_vec())),
            Arc::new(StringViewArray::from(values.to_vec())),
            Arc::new(dictionary),
        ];
        for column in columns {
            let read = StrColumn::new(&column).unwrap();
            assert_eq!(
                rows(&read, values.len()),
                expected,
                "{}",
                column.data_type()
            );
            // A slice starts at its own first row.
            let sliced = StrColumn::new(&column.slice(2, 3)).unwrap();
            assert_eq!(rows(&sliced, 3), expected[2..], "{}", column.data_type());
        }
    }

    #[test]
    fn a_column_that_is_not_text_is_cast_to_text_once() {
        let ints: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![Some(7), None]));
        let read = StrColumn::new(&ints).unwrap();
        assert_eq!(rows(&read, 2), vec![Some("7".to_owned()), None]);
    }
}
