//! The narrow join for mentions of other members, in a distributed build: each task learns
//! whether the members its rows mention are excluded — and the names to scrub — without any
//! process holding a mentions table of every member.
//!
//! ```text
//!  content ─► (cg_shard(author), cg_mention_ids(mentions)) ─► unnest ─► distinct pairs
//!          ─► routed by the *mentioned* member's shard ─► cg_mention_status(mentioned, shard)
//!             (that shard's mentions file, read once per process: crate::facts_data)
//!          ─► routed back by the author's shard ────────────────────────────┐ resolved
//!  content ─► routed by the author's shard (the build's routing) ─► MentionJoinExec ─► cg_gate ─► sink
//! ```
//!
//! [`MentionJoinExec`] has two inputs hash-partitioned alike by their shard's route
//! ([`crate::udf::balanced_routes`]): the content, and the resolved pairs of the same author
//! shards. A task first reads its partition's resolved
//! pairs into a table (mentioned member → included, or excluded with names), then streams its
//! content, replacing each row's `mentions` by the excluded members it names, in its order,
//! with their names ([`resolved_type`]) — what the gate reads instead of a table of its own
//! ([`crate::gate::Mentions`]). A task holds the statuses of the members its own rows mention,
//! once each; bytes moved are one pair per distinct (author shard, mentioned member).
//!
//! Fail closed: a task's table keeps included members and excluded members with names; a
//! mentioned member it does not hold reads as excluded without names (its mention makes a kept
//! row `include_redacted`), so a pair lost on the way can only over-redact, never keep a
//! mention of an excluded member; a member resolved two ways fails the task.

use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int64Array, ListArray, RecordBatch, StringArray,
    StringBuilder, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use futures_lite::StreamExt;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::gate::{Mentions, Names};

/// Marks the join's (empty) payload in a plan, and its format version.
pub(crate) const MAGIC: &[u8] = b"consentgate-mentions/1\0";

/// The content's column the join resolves.
pub(crate) const MENTIONS: &str = "mentions";

/// The resolved pairs' author shard.
pub(crate) const AUTHOR_SHARD: &str = "cg_author_shard";

/// The route of the resolved pairs' author shard (what they are partitioned by, as the
/// content is by `cg_route`).
pub(crate) const AUTHOR_ROUTE: &str = "cg_author_route";

/// The resolved pairs' mentioned member.
pub(crate) const MENTIONED: &str = "cg_mentioned";

/// The mentioned member's keyed shard (what the pairs are routed by to be resolved).
pub(crate) const MENTIONED_SHARD: &str = "cg_mentioned_shard";

/// The resolved pairs' status ([`status_type`]).
pub(crate) const STATUS: &str = "cg_mention_status";

/// `cg_mention_status`'s type: `{included, handle, display_name}`, null for an excluded member
/// without names.
pub fn status_type() -> DataType {
    DataType::Struct(status_fields())
}

fn status_fields() -> Fields {
    Fields::from(vec![
        Field::new("included", DataType::Boolean, false),
        Field::new("handle", DataType::Utf8, true),
        Field::new("display_name", DataType::Utf8, true),
    ])
}

/// The type of a resolved `mentions` column: per row, the excluded members it names, in its
/// order, each `{id, handle, display_name}`.
pub fn resolved_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(resolved_fields()),
        false,
    )))
}

fn resolved_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("handle", DataType::Utf8, true),
        Field::new("display_name", DataType::Utf8, true),
    ])
}

fn exec_err(m: impl Into<String>) -> DataFusionError {
    DataFusionError::Execution(format!("consentgate: {}", m.into()))
}

/// Column `i` of a struct column, as text.
fn text_field<'a>(items: &'a StructArray, i: usize, what: &str) -> Result<&'a StringArray> {
    items
        .columns()
        .get(i)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| exec_err(format!("{what}: field {i} is not text")))
}

/// Value `j` of a text column (`None` when null).
fn text_at(s: &StringArray, j: usize) -> Option<String> {
    s.is_valid(j).then(|| s.value(j).to_owned())
}

/// Builds a `cg_mention_status` column.
pub(crate) struct StatusBuilder {
    included: BooleanBuilder,
    handle: StringBuilder,
    display_name: StringBuilder,
    valid: Vec<bool>,
}

impl StatusBuilder {
    /// Room for `rows`.
    pub(crate) fn with_capacity(rows: usize) -> StatusBuilder {
        StatusBuilder {
            included: BooleanBuilder::with_capacity(rows),
            handle: StringBuilder::new(),
            display_name: StringBuilder::new(),
            valid: Vec::with_capacity(rows),
        }
    }

    /// An included member.
    pub(crate) fn append_included(&mut self) {
        self.append(true, None, None, true);
    }

    /// An excluded member with these names (null when they have neither).
    pub(crate) fn append_excluded(&mut self, handle: Option<&str>, display_name: Option<&str>) {
        let named = handle.is_some() || display_name.is_some();
        self.append(false, handle, display_name, named);
    }

    fn append(
        &mut self,
        included: bool,
        handle: Option<&str>,
        display_name: Option<&str>,
        valid: bool,
    ) {
        self.included.append_value(included);
        self.handle.append_option(handle);
        self.display_name.append_option(display_name);
        self.valid.push(valid);
    }

    /// The column.
    pub(crate) fn finish(mut self) -> Result<ArrayRef> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.included.finish()),
            Arc::new(self.handle.finish()),
            Arc::new(self.display_name.finish()),
        ];
        Ok(Arc::new(StructArray::try_new(
            status_fields(),
            columns,
            Some(self.valid.into()),
        )?))
    }
}

/// Reads a resolved `mentions` column ([`resolved_type`]) back as the gate's [`Mentions`].
pub(crate) fn read_resolved(a: &ArrayRef) -> Result<Mentions> {
    let list = a
        .as_list_opt::<i32>()
        .ok_or_else(|| exec_err("resolved mentions are not a list"))?;
    let items = list
        .values()
        .as_struct_opt()
        .ok_or_else(|| exec_err("resolved mentions are not records"))?;
    let ids = items
        .columns()
        .first()
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| exec_err("resolved mentions without ids"))?;
    let handles = text_field(items, 1, "resolved mentions")?;
    let names = text_field(items, 2, "resolved mentions")?;
    let offsets = list.value_offsets();
    let mut out = Mentions::resolved();
    for i in 0..list.len() {
        let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
        if list.is_null(i) || start == end {
            out.push_resolved(std::iter::empty());
            continue;
        }
        let mut row = Vec::with_capacity(end - start);
        for j in start..end {
            if ids.is_null(j) {
                return Err(exec_err("a resolved mention without an id"));
            }
            row.push((
                ids.value(j),
                Names::of(text_at(handles, j), text_at(names, j)),
            ));
        }
        out.push_resolved(row);
    }
    Ok(out)
}

/// A task's resolved pairs: each mentioned member's status (absent from both: excluded, no
/// names). Included members, most of them, cost an id each.
#[derive(Debug, Default)]
struct Statuses {
    /// Included as of the cut-off.
    included: FxHashSet<i64>,
    /// Excluded, with the names to scrub.
    named: FxHashMap<i64, Names>,
}

impl Statuses {
    /// Adds a batch of resolved pairs (`cg_mentioned`, `cg_mention_status`). A member resolved
    /// differently by two pairs would be a fault: the build fails.
    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let ids = batch
            .column_by_name(MENTIONED)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .ok_or_else(|| exec_err(format!("resolved mentions without `{MENTIONED}`")))?;
        let status = batch
            .column_by_name(STATUS)
            .and_then(|c| c.as_struct_opt())
            .ok_or_else(|| exec_err(format!("resolved mentions without `{STATUS}`")))?;
        let included = status
            .columns()
            .first()
            .and_then(|c| c.as_boolean_opt())
            .ok_or_else(|| exec_err(format!("`{STATUS}` without `included`")))?;
        let handles = text_field(status, 1, STATUS)?;
        let names = text_field(status, 2, STATUS)?;
        for j in 0..batch.num_rows() {
            // No id, or an excluded member without names: nothing to add (absent reads as
            // excluded without names).
            if ids.is_null(j) || status.is_null(j) {
                continue;
            }
            let id = ids.value(j);
            let agrees = if included.value(j) {
                self.included.insert(id);
                !self.named.contains_key(&id)
            } else {
                let names = Names::of(text_at(handles, j), text_at(names, j)).unwrap_or_default();
                let before = self.named.insert(id, names.clone());
                !self.included.contains(&id) && before.is_none_or(|b| b == names)
            };
            if !agrees {
                return Err(exec_err(format!("member {id} was resolved two ways")));
            }
        }
        Ok(())
    }

    /// `batch` with its `mentions` column (at `at`) resolved.
    fn resolve(&self, batch: RecordBatch, at: usize, schema: &SchemaRef) -> Result<RecordBatch> {
        let mentions = crate::udf::mention_lists(batch.column(at))?;
        let mut offsets = Vec::with_capacity(mentions.len() + 1);
        offsets.push(0i32);
        let (mut ids, mut handles, mut names) =
            (Vec::new(), StringBuilder::new(), StringBuilder::new());
        for i in 0..mentions.len() {
            let row = mentions
                .get(i)
                .ok_or_else(|| exec_err("a row's mentions went missing"))?;
            for id in row.ids() {
                if self.included.contains(id) {
                    continue;
                }
                let n = self.named.get(id);
                ids.push(*id);
                handles.append_option(n.and_then(|n| n.handle.as_deref()));
                names.append_option(n.and_then(|n| n.display_name.as_deref()));
            }
            let end = i32::try_from(ids.len())
                .map_err(|_| exec_err("a batch names too many excluded members"))?;
            offsets.push(end);
        }
        let items = StructArray::try_new(
            resolved_fields(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(handles.finish()),
                Arc::new(names.finish()),
            ],
            None,
        )?;
        let DataType::List(field) = resolved_type() else {
            return Err(exec_err("the resolved type is a list"));
        };
        let list = ListArray::try_new(
            field,
            OffsetBuffer::new(offsets.into()),
            Arc::new(items),
            None,
        )?;
        let mut columns = batch.columns().to_vec();
        columns[at] = Arc::new(list);
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// The output schema: `content`'s, with `mentions` resolved.
fn joined_schema(content: &Schema) -> Result<(SchemaRef, usize)> {
    let at = content.index_of(MENTIONS)?;
    let mut fields: Vec<Arc<Field>> = content.fields().iter().cloned().collect();
    fields[at] = Arc::new(Field::new(MENTIONS, resolved_type(), true));
    Ok((
        Arc::new(Schema::new_with_metadata(
            fields,
            content.metadata().clone(),
        )),
        at,
    ))
}

/// The logical node: `content` with its mentions resolved by `resolved` (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MentionJoinNode {
    content: LogicalPlan,
    resolved: LogicalPlan,
    schema: DFSchemaRef,
}

impl MentionJoinNode {
    /// The join of `content` (with `mentions`, partitioned like `resolved`) and `resolved`
    /// (`cg_author_route`, `cg_mentioned`, `cg_mention_status`).
    pub(crate) fn try_new(content: LogicalPlan, resolved: LogicalPlan) -> Result<Self> {
        let input = content.schema();
        let at = input
            .index_of_column_by_name(None, MENTIONS)
            .ok_or_else(|| {
                DataFusionError::Plan(format!("the mention join's content has no `{MENTIONS}`"))
            })?;
        for column in [AUTHOR_ROUTE, MENTIONED, STATUS] {
            resolved.schema().field_with_unqualified_name(column)?;
        }
        let fields = input
            .iter()
            .enumerate()
            .map(|(i, (qualifier, field))| {
                let field = if i == at {
                    Arc::new(Field::new(MENTIONS, resolved_type(), true))
                } else {
                    field.clone()
                };
                (qualifier.cloned(), field)
            })
            .collect();
        let schema = Arc::new(DFSchema::new_with_metadata(
            fields,
            input.metadata().clone(),
        )?);
        Ok(MentionJoinNode {
            content,
            resolved,
            schema,
        })
    }

    /// The node as a plan.
    pub(crate) fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }

    /// The node from its payload and inputs (`None`: not this node's payload).
    #[cfg(feature = "ballista")]
    pub(crate) fn decode(
        buf: &[u8],
        content: LogicalPlan,
        resolved: LogicalPlan,
    ) -> Option<Result<MentionJoinNode>> {
        (buf == MAGIC).then(|| MentionJoinNode::try_new(content, resolved))
    }
}

impl fmt::Debug for MentionJoinNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MentionJoinNode")
    }
}

impl PartialOrd for MentionJoinNode {
    /// Unordered (two such nodes differ only in their inputs).
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (self == other).then_some(Ordering::Equal)
    }
}

impl UserDefinedLogicalNodeCore for MentionJoinNode {
    fn name(&self) -> &str {
        "MentionJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.content, &self.resolved]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("MentionJoin")
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [content, resolved]: [LogicalPlan; 2] = inputs
            .try_into()
            .map_err(|_| DataFusionError::Plan("MentionJoin has two inputs".into()))?;
        MentionJoinNode::try_new(content, resolved)
    }
}

/// The physical join (see the module docs).
#[derive(Debug)]
pub struct MentionJoinExec {
    content: Arc<dyn ExecutionPlan>,
    resolved: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    /// Where `mentions` is.
    at: usize,
    properties: Arc<PlanProperties>,
}

impl MentionJoinExec {
    /// The join of `content` (with `mentions` and `cg_route`) and `resolved`.
    pub(crate) fn try_new(
        content: Arc<dyn ExecutionPlan>,
        resolved: Arc<dyn ExecutionPlan>,
    ) -> Result<MentionJoinExec> {
        let (schema, at) = joined_schema(&content.schema())?;
        content.schema().index_of(crate::sink::ROUTE_COLUMN)?;
        for column in [AUTHOR_ROUTE, MENTIONED, STATUS] {
            resolved.schema().index_of(column)?;
        }
        // Row for row the content, in its partitions: the same partitioning (no column moves).
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            content.properties().output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(MentionJoinExec {
            content,
            resolved,
            schema,
            at,
            properties,
        })
    }
}

impl DisplayAs for MentionJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("MentionJoinExec")
    }
}

impl ExecutionPlan for MentionJoinExec {
    fn name(&self) -> &str {
        "MentionJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.content, &self.resolved]
    }

    /// A partition's content and the resolved pairs of the same author shards: both inputs
    /// hash-partitioned by shard, alike.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![
            crate::sink::partitioned_by(&self.content, crate::sink::ROUTE_COLUMN),
            crate::sink::partitioned_by(&self.resolved, AUTHOR_ROUTE),
        ]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false, false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true, false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [content, resolved]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Plan("MentionJoinExec has two inputs".into()))?;
        Ok(Arc::new(MentionJoinExec::try_new(content, resolved)?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let content = self.content.execute(partition, context.clone())?;
        let mut resolved = self.resolved.execute(partition, context)?;
        let (schema, at) = (self.schema.clone(), self.at);
        let table = async move {
            let mut statuses = Statuses::default();
            let mut pairs = 0u64;
            while let Some(batch) = resolved.next().await {
                let batch = batch?;
                pairs += batch.num_rows() as u64;
                statuses.add(&batch)?;
            }
            let included = statuses.included.len();
            // (`partition` is the task's own numbering, not the stage's: not logged.)
            log::info!(
                target: "consentgate::facts",
                "resolved the members a task's rows mention: {} held ({included} included) from {pairs} pairs",
                included + statuses.named.len()
            );
            Ok::<_, DataFusionError>(Arc::new(statuses))
        };
        let out_schema = schema.clone();
        let mut content = Some(content);
        let stream = futures_lite::stream::once_future(table).flat_map(move |table| {
            let stream: std::pin::Pin<
                Box<dyn futures_lite::stream::Stream<Item = Result<RecordBatch>> + Send>,
            > = match (table, content.take()) {
                (Ok(table), Some(content)) => {
                    let schema = out_schema.clone();
                    Box::pin(
                        content.map(move |batch| batch.and_then(|b| table.resolve(b, at, &schema))),
                    )
                }
                (Err(e), _) => Box::pin(futures_lite::stream::once(Err(e))),
                (Ok(_), None) => Box::pin(futures_lite::stream::once(Err(exec_err(
                    "the mention join's content was read twice",
                )))),
            };
            stream
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::datasource::memory::MemorySourceConfig;

    fn content() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("content_id", DataType::Int64, false),
            Field::new(MENTIONS, DataType::Utf8, true),
            Field::new(crate::sink::ROUTE_COLUMN, DataType::UInt64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                // 10 included, 20 excluded with names, 30 excluded without, 40 never resolved.
                Arc::new(StringArray::from(vec![
                    Some("10;20;10;30"),
                    None,
                    Some("40"),
                    Some("20;20"),
                ])),
                Arc::new(arrow::array::UInt64Array::from(vec![0, 0, 1, 1])),
            ],
        )
        .unwrap()
    }

    /// A pair's status: included, or excluded with (handle, display name); `None`: excluded
    /// without names.
    type Status<'a> = Option<(bool, Option<&'a str>, Option<&'a str>)>;

    fn resolved(rows: &[(i64, Status<'_>)]) -> RecordBatch {
        let mut status = StatusBuilder::with_capacity(rows.len());
        for (_, s) in rows {
            match s {
                Some((true, _, _)) => status.append_included(),
                Some((false, h, n)) => status.append_excluded(*h, *n),
                None => status.append_excluded(None, None),
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new(AUTHOR_ROUTE, DataType::UInt64, true),
            Field::new(MENTIONED, DataType::Int64, true),
            Field::new(STATUS, status_type(), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::UInt64Array::from(vec![0; rows.len()])),
                Arc::new(Int64Array::from(
                    rows.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                )),
                status.finish().unwrap(),
            ],
        )
        .unwrap()
    }

    fn run(pairs: RecordBatch) -> Result<Vec<RecordBatch>> {
        let content = content();
        let left: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[vec![content.clone()]], content.schema(), None)
                .unwrap();
        let right: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[vec![pairs.clone()]], pairs.schema(), None).unwrap();
        let exec = Arc::new(MentionJoinExec::try_new(left, right).unwrap());
        let ctx = datafusion::prelude::SessionContext::new().task_ctx();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(datafusion::physical_plan::collect(exec, ctx))
    }

    /// Each row's excluded mentions in its order, with their names; included ones dropped;
    /// one never resolved reads as excluded without names.
    #[test]
    fn each_row_keeps_the_excluded_members_it_names_with_their_names() {
        let pairs = resolved(&[
            (10, Some((true, None, None))),
            (20, Some((false, Some("ann"), Some("Ann A")))),
            (30, None),
            (10, Some((true, None, None))),
        ]);
        let out = run(pairs).unwrap();
        let batch = arrow::compute::concat_batches(&out[0].schema(), &out).unwrap();
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(
            batch
                .schema()
                .field_with_name(MENTIONS)
                .unwrap()
                .data_type(),
            &resolved_type()
        );
        let mentions = read_resolved(batch.column_by_name(MENTIONS).unwrap()).unwrap();
        let row = |i: usize| {
            let r = mentions.get(i).unwrap();
            assert!(r.is_resolved());
            r.ids().to_vec()
        };
        assert_eq!(row(0), vec![20, 30]);
        assert_eq!(row(1), Vec::<i64>::new());
        assert_eq!(row(2), vec![40]);
        assert_eq!(row(3), vec![20, 20]);
        // The names come along: through the gate's reading of the column.
        let gate_names =
            crate::udf::mention_lists(batch.column_by_name(MENTIONS).unwrap()).unwrap();
        assert_eq!(gate_names, mentions);
        let list = batch.column_by_name(MENTIONS).unwrap().as_list::<i32>();
        let items = list.values().as_struct();
        let handles = items.column(1).as_string::<i32>();
        assert_eq!(handles.value(0), "ann");
        assert!(handles.is_null(1), "30 has no names");
        // The other columns pass through untouched.
        assert_eq!(batch.column(0), content().column(0));
        assert_eq!(batch.column(2), content().column(2));
    }

    proptest::proptest! {
        /// Fail closed: with every pair, a row keeps exactly its mentions of excluded members
        /// (in order, repeats too); with any pairs lost on the way, only mentions of included
        /// members are added (over-redaction), never one of an excluded member dropped.
        #[test]
        fn losing_pairs_can_only_add_excluded_mentions(
            rows in proptest::collection::vec(proptest::collection::vec(0i64..16, 0..6), 1..12),
            included in proptest::collection::vec(proptest::bool::ANY, 16),
            kept in proptest::collection::vec(proptest::bool::ANY, 16),
        ) {
            let text: Vec<String> = rows
                .iter()
                .map(|r| r.iter().map(i64::to_string).collect::<Vec<_>>().join(";"))
                .collect();
            let schema = Arc::new(Schema::new(vec![Field::new(MENTIONS, DataType::Utf8, true)]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(StringArray::from(text))],
            )
            .unwrap();
            let (out_schema, at) = joined_schema(&schema).unwrap();
            let table = |lost: bool| {
                let mut statuses = Statuses::default();
                for id in 0..16 {
                    if lost && !kept[id as usize] {
                        continue;
                    }
                    if included[id as usize] {
                        statuses.included.insert(id);
                    } else {
                        let names = Names::of(Some(format!("m{id}")), None).unwrap();
                        statuses.named.insert(id, names);
                    }
                }
                statuses
            };
            for lost in [false, true] {
                let out = table(lost).resolve(batch.clone(), at, &out_schema).unwrap();
                let got = read_resolved(out.column(at)).unwrap();
                for (i, row) in rows.iter().enumerate() {
                    let expected: Vec<i64> = row
                        .iter()
                        .copied()
                        .filter(|id| {
                            let i = *id as usize;
                            !included[i] || (lost && !kept[i])
                        })
                        .collect();
                    proptest::prop_assert_eq!(got.get(i).unwrap().ids(), &expected[..]);
                }
            }
        }
    }

    /// A member resolved two ways is a fault: the task fails rather than pick one.
    #[test]
    fn a_member_resolved_two_ways_fails_the_task() {
        let pairs = resolved(&[
            (10, Some((true, None, None))),
            (10, Some((false, Some("x"), None))),
        ]);
        let err = run(pairs).unwrap_err().to_string();
        assert!(err.contains("resolved two ways"), "{err}");
    }
}
