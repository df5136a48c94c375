//! The driver: streams members and content through Arrow batches into the seven files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use cg_io::{Format, IoError, TableWriter, schema};
use cg_model::Timestamp;
use cg_model::instant::date_to_days;
use cg_model::progress::Progress;
use serde::Serialize;

use crate::content;
use crate::members::{self, Member, ts};
use crate::rng::{Rng, Stream};

const BATCH_ROWS: usize = 16 * 1024;

/// What to generate.
#[derive(Clone, Debug)]
pub struct CorpusConfig {
    /// Number of members (ids `1..=members`).
    pub members: u64,
    /// Number of content items (ids `1..=content`).
    pub content: u64,
    /// The seed: same seed, same bytes.
    pub seed: u64,
    /// File format.
    pub format: Format,
}

/// Errors while generating.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The output directory could not be created.
    #[error("cannot create the output directory `{}`", path.display())]
    OutputDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A table could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A batch could not be assembled (a bug: the schemas are fixed).
    #[error("cannot assemble a batch for `{table}`")]
    Batch {
        /// The table.
        table: &'static str,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The summary could not be written.
    #[error("cannot write `{}`", path.display())]
    Summary {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One generated file.
#[derive(Clone, Debug, Serialize)]
pub struct TableSummary {
    /// The input-contract table (`members`, `content`, ...).
    pub table: &'static str,
    /// Where it was written.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
}

/// What was generated; also written as `corpus.json` next to the files.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusSummary {
    /// Corpus format version (bumped whenever a seed would yield different data).
    pub corpus_version: u32,
    /// The seed.
    pub seed: u64,
    /// Members requested.
    pub members: u64,
    /// Content rows requested.
    pub content: u64,
    /// The format.
    pub format: &'static str,
    /// The files, in input-contract order, then the PII ground truth.
    pub tables: Vec<TableSummary>,
    /// Cut-offs worth building at: inside the 2024-09 suspension and after the 2025-11 resumption.
    pub suggested_as_of: [&'static str; 2],
}

/// The corpus format version.
pub const CORPUS_VERSION: u32 = 1;

fn batch(
    table: &'static str,
    schema: &SchemaRef,
    cols: Vec<ArrayRef>,
) -> Result<RecordBatch, SynthError> {
    RecordBatch::try_new(schema.clone(), cols).map_err(|source| SynthError::Batch { table, source })
}

fn ts_builder(capacity: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("+00:00")
}

/// A table being written: its schema and writer.
struct Table {
    name: &'static str,
    schema: SchemaRef,
    writer: TableWriter,
}

impl Table {
    fn create(
        dir: &Path,
        name: &'static str,
        schema: SchemaRef,
        format: Format,
    ) -> Result<Table, SynthError> {
        let path = dir.join(format!("{name}.{}", format.extension()));
        let writer = TableWriter::create(&path, schema.clone())?;
        Ok(Table {
            name,
            schema,
            writer,
        })
    }

    fn write(&mut self, cols: Vec<ArrayRef>) -> Result<(), SynthError> {
        let b = batch(self.name, &self.schema, cols)?;
        if b.num_rows() > 0 {
            self.writer.write(&b)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<TableSummary, SynthError> {
        let rows = self.writer.rows();
        let path = self.writer.finish()?;
        Ok(TableSummary {
            table: self.name,
            path,
            rows,
        })
    }
}

/// Builders for the member-side tables, flushed every [`BATCH_ROWS`] members.
#[derive(Default)]
struct MemberBatch {
    id: Int64Builder,
    country: StringBuilder,
    birth: Date32Builder,
    created: Option<TimestampMicrosecondBuilder>,
    closed: Option<TimestampMicrosecondBuilder>,
    display: StringBuilder,
    handle: StringBuilder,
    res_member: Int64Builder,
    res_country: StringBuilder,
    res_from: Option<TimestampMicrosecondBuilder>,
    ev_id: Int64Builder,
    ev_member: Int64Builder,
    ev_purpose: StringBuilder,
    ev_granted: BooleanBuilder,
    ev_ts: Option<TimestampMicrosecondBuilder>,
    ev_source: StringBuilder,
    ev_notice: StringBuilder,
    no_member: Int64Builder,
    no_version: StringBuilder,
    no_at: Option<TimestampMicrosecondBuilder>,
    er_member: Int64Builder,
    er_ts: Option<TimestampMicrosecondBuilder>,
}

fn tsb(b: &mut Option<TimestampMicrosecondBuilder>) -> &mut TimestampMicrosecondBuilder {
    b.get_or_insert_with(|| ts_builder(BATCH_ROWS))
}

fn finish_ts(b: &mut Option<TimestampMicrosecondBuilder>) -> ArrayRef {
    Arc::new(tsb(b).finish())
}

/// Generates the corpus into `out` (created if missing).
pub fn generate(
    cfg: &CorpusConfig,
    out: &Path,
    progress: &dyn Progress,
) -> Result<CorpusSummary, SynthError> {
    std::fs::create_dir_all(out).map_err(|source| SynthError::OutputDir {
        path: out.to_owned(),
        source,
    })?;
    let f = cfg.format;
    let mut members_t = Table::create(out, "members", schema::members(), f)?;
    let mut residences_t = Table::create(out, "residences", schema::residences(), f)?;
    let mut consent_t = Table::create(out, "consent", schema::consent_events(), f)?;
    let mut notices_t = Table::create(out, "notices", schema::notices(), f)?;
    let mut erasures_t = Table::create(out, "erasures", schema::erasures(), f)?;

    progress.stage("members", Some(cfg.members));
    let mut b = MemberBatch::default();
    let mut next_event_id = 1i64;
    let total = i64::try_from(cfg.members).unwrap_or(i64::MAX);
    let mut pending = 0usize;
    for id in 1..=total {
        let m = Member::generate(cfg.seed, id);
        let (display, handle) = members::names(cfg.seed, id);
        b.id.append_value(id);
        b.country.append_option(m.country);
        b.birth.append_option(m.birth_date.map(date_to_days));
        tsb(&mut b.created).append_value(m.created_at.micros());
        tsb(&mut b.closed).append_option(m.closed_at.map(Timestamp::micros));
        b.display.append_value(&display);
        b.handle.append_value(&handle);
        if let Some((from, moved_at)) = m.moved_from {
            b.res_member.append_value(id);
            b.res_country.append_value(from);
            tsb(&mut b.res_from).append_value(m.created_at.micros());
            b.res_member.append_value(id);
            b.res_country.append_option(m.country);
            tsb(&mut b.res_from).append_value(moved_at.micros());
        }
        for e in members::consent_events(cfg.seed, &m) {
            b.ev_id.append_value(next_event_id);
            next_event_id += 1;
            b.ev_member.append_value(id);
            b.ev_purpose.append_value(e.purpose);
            b.ev_granted.append_value(e.granted);
            tsb(&mut b.ev_ts).append_value(e.ts.micros());
            b.ev_source.append_value(e.source);
            b.ev_notice.append_option(e.notice_version);
        }
        let mut facts = Rng::for_entity(cfg.seed, Stream::Facts, id as u64);
        if m.in_noticed_region() && facts.chance(0.85) {
            let at = facts.range_i64(ts("2025-09-18").micros(), ts("2025-10-20").micros());
            b.no_member.append_value(id);
            b.no_version.append_value("2025-09");
            tsb(&mut b.no_at).append_value(at.max(m.created_at.micros()));
        }
        if facts.chance(0.005) {
            let lo = m.created_at.micros().max(ts("2024-01-01").micros());
            b.er_member.append_value(id);
            tsb(&mut b.er_ts).append_value(facts.range_i64(lo, ts(members::CONTENT_END).micros()));
        }
        pending += 1;
        if pending == BATCH_ROWS || id == total {
            members_t.write(vec![
                Arc::new(b.id.finish()),
                Arc::new(b.country.finish()),
                Arc::new(b.birth.finish()),
                finish_ts(&mut b.created),
                finish_ts(&mut b.closed),
                Arc::new(b.display.finish()),
                Arc::new(b.handle.finish()),
            ])?;
            residences_t.write(vec![
                Arc::new(b.res_member.finish()),
                Arc::new(b.res_country.finish()),
                finish_ts(&mut b.res_from),
            ])?;
            consent_t.write(vec![
                Arc::new(b.ev_id.finish()),
                Arc::new(b.ev_member.finish()),
                Arc::new(b.ev_purpose.finish()),
                Arc::new(b.ev_granted.finish()),
                finish_ts(&mut b.ev_ts),
                Arc::new(b.ev_source.finish()),
                Arc::new(b.ev_notice.finish()),
            ])?;
            notices_t.write(vec![
                Arc::new(b.no_member.finish()),
                Arc::new(b.no_version.finish()),
                finish_ts(&mut b.no_at),
            ])?;
            erasures_t.write(vec![
                Arc::new(b.er_member.finish()),
                finish_ts(&mut b.er_ts),
            ])?;
            progress.advance(pending as u64);
            pending = 0;
        }
    }
    progress.finish_stage();
    let mut tables = vec![
        members_t.finish()?,
        residences_t.finish()?,
        consent_t.finish()?,
        notices_t.finish()?,
        erasures_t.finish()?,
    ];

    let (content_summary, spans_summary) = generate_content(cfg, out, progress)?;
    tables.push(content_summary);
    tables.push(spans_summary);

    let summary = CorpusSummary {
        corpus_version: CORPUS_VERSION,
        seed: cfg.seed,
        members: cfg.members,
        content: cfg.content,
        format: f.extension(),
        tables,
        suggested_as_of: ["2025-03-01", "2025-12-01"],
    };
    let path = out.join("corpus.json");
    let json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    std::fs::write(&path, json).map_err(|source| SynthError::Summary { path, source })?;
    Ok(summary)
}

fn generate_content(
    cfg: &CorpusConfig,
    out: &Path,
    progress: &dyn Progress,
) -> Result<(TableSummary, TableSummary), SynthError> {
    let mut content_t = Table::create(out, "content", schema::content(), cfg.format)?;
    let mut spans_t = Table::create(out, "pii_spans", schema::pii_spans(), cfg.format)?;
    progress.stage("content", Some(cfg.content));
    let members = i64::try_from(cfg.members).unwrap_or(i64::MAX);
    let total = i64::try_from(cfg.content).unwrap_or(i64::MAX);
    let mut id_b = Int64Builder::with_capacity(BATCH_ROWS);
    let mut member_b = Int64Builder::with_capacity(BATCH_ROWS);
    let mut kind_b = StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 8);
    let mut created_b = ts_builder(BATCH_ROWS);
    let mut text_b = StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 160);
    let mut mentions_b = ListBuilder::new(Int64Builder::new());
    let mut sp_content = Int64Builder::new();
    let mut sp_start = Int64Builder::new();
    let mut sp_end = Int64Builder::new();
    let mut sp_type = StringBuilder::new();
    let mut pending = 0usize;
    for id in 1..=total {
        let c = content::generate(cfg.seed, id, members);
        id_b.append_value(c.id);
        member_b.append_value(c.member_id);
        kind_b.append_value(c.kind);
        created_b.append_value(c.created_at.micros());
        text_b.append_value(&c.text);
        if c.mentions.is_empty() {
            mentions_b.append_null();
        } else {
            mentions_b.values().append_slice(&c.mentions);
            mentions_b.append(true);
        }
        for s in &c.spans {
            sp_content.append_value(c.id);
            sp_start.append_value(s.start as i64);
            sp_end.append_value(s.end as i64);
            sp_type.append_value(s.kind.as_str());
        }
        pending += 1;
        if pending == BATCH_ROWS || id == total {
            content_t.write(vec![
                Arc::new(id_b.finish()),
                Arc::new(member_b.finish()),
                Arc::new(kind_b.finish()),
                Arc::new(created_b.finish()),
                Arc::new(text_b.finish()),
                Arc::new(mentions_b.finish()),
            ])?;
            spans_t.write(vec![
                Arc::new(sp_content.finish()),
                Arc::new(sp_start.finish()),
                Arc::new(sp_end.finish()),
                Arc::new(sp_type.finish()),
            ])?;
            progress.advance(pending as u64);
            pending = 0;
        }
    }
    progress.finish_stage();
    Ok((content_t.finish()?, spans_t.finish()?))
}
