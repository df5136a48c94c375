//! The dataset's files and how they are written: schemas of the shards and of
//! `decisions.parquet`, their writers (fixed batches of [`CHUNK`] rows, so bytes do not depend
//! on how the engine split the stream), the keyed shard of a member, and file digests.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sha2::{Digest, Sha256};

use crate::BuildError;
use crate::manifest::FileRef;

pub(crate) const CHUNK: usize = 8192;

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, BuildError> {
    let mut f = File::open(path).map_err(|e| BuildError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| BuildError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Writes the run `file` in `dir` whole or not at all: `write` fills `file.partial` (its path
/// is the second argument, for errors) through a buffer, which is then fsynced and renamed into
/// place, so a reader that finds `file` finds all of it. `dir` is not created: a distributed
/// task writes into the build's scratch directory, and once the client has removed it a late
/// attempt fails instead of leaving files behind.
pub(crate) fn write_run<T>(
    dir: &Path,
    file: &str,
    write: impl FnOnce(&mut dyn std::io::Write, &Path) -> Result<T, BuildError>,
) -> Result<T, BuildError> {
    let path = dir.join(file);
    let partial = dir.join(format!("{file}.partial"));
    let out = File::create(&partial).map_err(|e| BuildError::io(&partial, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 16, out);
    let value = write(&mut w, &partial)?;
    let out = w
        .into_inner()
        .map_err(|e| BuildError::io(&partial, e.into_error()))?;
    out.sync_all().map_err(|e| BuildError::io(&partial, e))?;
    drop(out);
    std::fs::rename(&partial, &path).map_err(|e| BuildError::io(&path, e))?;
    Ok(value)
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn shard_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("content_id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("created_at", cg_io::schema::timestamp_type(), false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

/// The schema of `decisions.parquet`. `fingerprint` is what a kept row's redacted text depends
/// on besides the row (0 when not kept): an incremental rebuild compares it.
pub fn decisions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("content_id", DataType::Int64, true),
        Field::new("member_id", DataType::Int64, true),
        Field::new("decision", DataType::Utf8, false),
        Field::new(
            "reasons",
            DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
            false,
        ),
        Field::new("shard", DataType::Int32, true),
        Field::new("fingerprint", DataType::Int64, false),
    ]))
}

/// A shard's columns that seldom repeat are written without a dictionary (`kind` keeps one), its
/// `content_id` (ascending within a shard) as deltas, and its text without min/max statistics
/// (nobody prunes a shard by its texts' order).
const SHARD_ENCODING: cg_io::WriteOptions = cg_io::WriteOptions {
    plain_columns: &["content_id", "created_at", "text"],
    unsummarised_columns: &["text"],
    delta_columns: &["content_id"],
    column_threads: false,
};

/// `decisions.parquet`: `content_id` (ascending) and `member_id` (a dense range) as deltas;
/// `fingerprint` (keyed hashes, zero for excluded rows) without a dictionary; `decision`,
/// `reasons` and `shard` in a dictionary, the first two without min/max statistics (every row
/// group holds most decisions and reasons, so no reader could prune by them; the writer
/// compared every value with the page's bounds). Its columns are encoded on threads of their
/// own: it is the build's longest file, and its encoding alone was the last stretch of the
/// write stage.
const DECISIONS_ENCODING: cg_io::WriteOptions = cg_io::WriteOptions {
    plain_columns: &["fingerprint"],
    unsummarised_columns: &["decision", "reasons.list.item"],
    delta_columns: &["content_id", "member_id"],
    column_threads: true,
};

/// One shard's writer. Its caller hands it rows in `content_id` order, in batches of exactly
/// [`CHUNK`] rows but the last (identical rows ⇒ identical bytes, however the engine split them).
pub(crate) struct ShardOut {
    writer: cg_io::TableWriter,
}

impl ShardOut {
    /// `dir/shards/part-NNNNN.parquet`.
    pub(crate) fn create(dir: &Path, i: u32) -> Result<ShardOut, BuildError> {
        let path = dir.join("shards").join(format!("part-{i:05}.parquet"));
        Ok(ShardOut {
            writer: cg_io::TableWriter::create_with(&path, shard_schema(), SHARD_ENCODING)
                .map_err(BuildError::from)?,
        })
    }

    /// `dir/shards/part-NNNNN.parquet`, through `scratch/part-NNNNN.parquet.TAG.partial` (a
    /// distributed task's attempt `tag`: another attempt of the same shard never writes into
    /// it, and once the client has removed `scratch`, a late attempt can create nothing).
    pub(crate) fn create_attempt(
        dir: &Path,
        scratch: &Path,
        i: u32,
        tag: &str,
    ) -> Result<ShardOut, BuildError> {
        let name = format!("part-{i:05}.parquet");
        let partial = scratch.join(format!("{name}.{tag}.partial"));
        Ok(ShardOut {
            writer: cg_io::TableWriter::create_through(
                &dir.join("shards").join(name),
                partial,
                shard_schema(),
                SHARD_ENCODING,
            )
            .map_err(BuildError::from)?,
        })
    }

    /// `dir/part-NNNNN.parquet` through a `.partial` file beside it: a shard an executor puts
    /// on an object store, written in a private directory of its attempt's, not the build's.
    pub(crate) fn create_private(dir: &Path, i: u32) -> Result<ShardOut, BuildError> {
        let path = dir.join(format!("part-{i:05}.parquet"));
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        Ok(ShardOut {
            writer: cg_io::TableWriter::create_through(
                &path,
                PathBuf::from(partial),
                shard_schema(),
                SHARD_ENCODING,
            )
            .map_err(BuildError::from)?,
        })
    }

    /// Appends rows in the shard's schema.
    pub(crate) fn write(&mut self, rows: &RecordBatch) -> Result<(), BuildError> {
        let rows = RecordBatch::try_new(shard_schema(), rows.columns().to_vec())
            .map_err(BuildError::from)?;
        self.writer.write(&rows).map_err(BuildError::from)
    }

    /// Rows written so far.
    pub(crate) fn rows_written(&self) -> u64 {
        self.writer.rows()
    }

    /// Bytes held in memory for the row group being written.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.writer.buffered_bytes()
    }

    /// Closes the file (fsynced, renamed into place) and returns its path and digest (hex),
    /// the digest computed as the file was written.
    pub(crate) fn finish(self) -> Result<(PathBuf, String), BuildError> {
        let written = self.writer.finish_digest().map_err(BuildError::from)?;
        Ok((written.path, hex(&written.sha256)))
    }
}

type RecordWriterThread = std::thread::JoinHandle<Result<Option<cg_io::Written>, BuildError>>;

/// What the decision record's writing thread is told.
enum ToRecordWriter {
    /// Encode and write these rows.
    Rows(RecordBatch),
    /// Close the file (without this, a closed channel abandons it unfinished).
    Finish,
}

/// The `decisions.parquet` writer. Full batches go to a thread of its own that encodes and
/// writes them (Parquet's encoding and compression are most of the record's cost), so that
/// building the next batch overlaps with writing the last.
pub(crate) struct DecisionsOut {
    to_writer: std::sync::mpsc::SyncSender<ToRecordWriter>,
    /// The writing thread: the file's rows and path once told to finish, `None` if its channel
    /// closed first. Taken when joined.
    writer: Option<RecordWriterThread>,
    id: Int64Builder,
    member: Int64Builder,
    decision: StringBuilder,
    reasons: ListBuilder<StringBuilder>,
    shard: Int32Builder,
    fingerprint: Int64Builder,
    len: usize,
}

impl DecisionsOut {
    /// `dir/decisions.parquet`.
    pub(crate) fn create(dir: &Path) -> Result<DecisionsOut, BuildError> {
        let mut file = cg_io::TableWriter::create_with(
            &dir.join(crate::decisions::DECISIONS_FILE),
            decisions_schema(),
            DECISIONS_ENCODING,
        )
        .map_err(BuildError::from)?;
        let (to_writer, batches) = std::sync::mpsc::sync_channel(2);
        let writer = std::thread::spawn(move || {
            for message in batches {
                match message {
                    ToRecordWriter::Rows(rows) => file.write(&rows).map_err(BuildError::from)?,
                    ToRecordWriter::Finish => {
                        return Ok(Some(file.finish_digest().map_err(BuildError::from)?));
                    }
                }
            }
            Ok(None)
        });
        Ok(DecisionsOut {
            to_writer,
            writer: Some(writer),
            id: Int64Builder::with_capacity(CHUNK),
            member: Int64Builder::with_capacity(CHUNK),
            decision: text_builder(),
            reasons: ListBuilder::with_capacity(text_builder(), CHUNK),
            shard: Int32Builder::with_capacity(CHUNK),
            fingerprint: Int64Builder::with_capacity(CHUNK),
            len: 0,
        })
    }

    /// Appends a row.
    pub(crate) fn push(
        &mut self,
        id: Option<i64>,
        member: Option<i64>,
        decision: &str,
        reasons: &[cg_model::ReasonCode],
        shard: Option<u32>,
        fingerprint: i64,
    ) -> Result<(), BuildError> {
        self.id.append_option(id);
        self.member.append_option(member);
        self.decision.append_value(decision);
        for r in reasons {
            self.reasons.values().append_value(r.as_str());
        }
        self.reasons.append(true);
        self.shard.append_option(shard.map(|s| s as i32));
        self.fingerprint.append_value(fingerprint);
        self.len += 1;
        if self.len == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the last rows and closes the file; returns its manifest entry.
    pub(crate) fn finish(mut self) -> Result<FileRef, BuildError> {
        self.flush()?;
        if self.to_writer.send(ToRecordWriter::Finish).is_err() {
            return Err(self.writer_failure());
        }
        let written = match self.writer.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(Some(done)))) => done,
            Some(Ok(Err(e))) => return Err(e),
            _ => return Err(record_writer_lost()),
        };
        Ok(FileRef {
            file: crate::decisions::DECISIONS_FILE.into(),
            rows: written.rows,
            sha256: hex(&written.sha256),
        })
    }

    fn flush(&mut self) -> Result<(), BuildError> {
        if self.len == 0 {
            return Ok(());
        }
        self.len = 0;
        // Finishing a builder would leave it without capacity: each is replaced by one with a
        // chunk's worth, so that the next chunk's values are not copied at every doubling.
        let ints = || Int64Builder::with_capacity(CHUNK);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(std::mem::replace(&mut self.id, ints()).finish()),
            Arc::new(std::mem::replace(&mut self.member, ints()).finish()),
            Arc::new(std::mem::replace(&mut self.decision, text_builder()).finish()),
            Arc::new(
                std::mem::replace(
                    &mut self.reasons,
                    ListBuilder::with_capacity(text_builder(), CHUNK),
                )
                .finish(),
            ),
            Arc::new(
                std::mem::replace(&mut self.shard, Int32Builder::with_capacity(CHUNK)).finish(),
            ),
            Arc::new(std::mem::replace(&mut self.fingerprint, ints()).finish()),
        ];
        let b = RecordBatch::try_new(decisions_schema(), cols).map_err(BuildError::from)?;
        match self.to_writer.send(ToRecordWriter::Rows(b)) {
            Ok(()) => Ok(()),
            // The writing thread stopped: its error says why.
            Err(_) => Err(self.writer_failure()),
        }
    }

    /// Why the writing thread stopped, once it has (it stops early only on an error).
    fn writer_failure(&mut self) -> BuildError {
        match self.writer.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => record_writer_lost(),
        }
    }
}

/// A builder of a chunk of short strings (decisions, reason codes).
fn text_builder() -> StringBuilder {
    StringBuilder::with_capacity(CHUNK, CHUNK * 16)
}

fn record_writer_lost() -> BuildError {
    BuildError::Engine("the decision record's writing thread stopped".into())
}

/// Bytes from lowercase or uppercase hex (`None` for anything else, or an odd length).
pub(crate) fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

/// The shard of a member: a keyed SHA-256 of the member id, modulo the shard count.
pub(crate) fn keyed_shard(key: &[u8], member: i64, shards: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(key);
    h.update(member.to_le_bytes());
    let d = h.finalize();
    let mut x = [0u8; 8];
    x.copy_from_slice(&d[..8]);
    (u64::from_le_bytes(x) % u64::from(shards)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every column an encoding names is a leaf of its table's Parquet schema: a name that
    /// matches nothing (a nested leaf not spelled as its dotted path) would be ignored by the
    /// writer without a word.
    #[test]
    fn encodings_name_leaves_of_their_tables() {
        for (table, schema, options) in [
            ("shard", shard_schema(), SHARD_ENCODING),
            ("decisions", decisions_schema(), DECISIONS_ENCODING),
        ] {
            let parquet = parquet::arrow::ArrowSchemaConverter::new()
                .convert(&schema)
                .unwrap();
            let leaves: Vec<String> = parquet
                .columns()
                .iter()
                .map(|c| c.path().string())
                .collect();
            for name in options
                .plain_columns
                .iter()
                .chain(options.unsummarised_columns)
                .chain(options.delta_columns)
            {
                assert!(
                    leaves.iter().any(|l| l == name),
                    "{table}: `{name}` is not among {leaves:?}"
                );
            }
        }
    }
}
