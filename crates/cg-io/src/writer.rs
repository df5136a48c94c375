//! [`TableWriter`]: Parquet, CSV or JSONL behind one `write`/`finish` pair.
//!
//! A file is written as `<name>.partial` and renamed into place by [`TableWriter::finish`]
//! after an fsync, so a reader never sees half a table under the real name. Its SHA-256 is
//! computed from the bytes as they are written ([`TableWriter::finish_digest`]), so a caller
//! that needs the digest does not read the file back.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};

use crate::{Format, IoError};

/// The file under a table writer: buffered, and hashed as the buffer is written out. Every
/// format writes its file front to back (nothing seeks), so the bytes hashed are the file's.
struct Digesting {
    file: BufWriter<File>,
    hash: Sha256,
}

impl Write for Digesting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)?;
        self.hash.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

enum Sink {
    Parquet(ArrowWriter<Digesting>),
    ParquetColumns(crate::columns::ColumnParallelWriter<Digesting>),
    Csv(arrow::csv::Writer<Digesting>),
    Jsonl(arrow::json::LineDelimitedWriter<Digesting>),
}

/// A finished table: where it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The file, under its real name.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// SHA-256 of the file's bytes.
    pub sha256: [u8; 32],
}

/// How a table is written, beyond its schema.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Parquet columns written without a dictionary: values that seldom repeat (ids, times,
    /// text). Parquet's writer would otherwise hash every value into a dictionary until the
    /// dictionary outgrows its page, in every column chunk, only to fall back to plain
    /// encoding.
    pub plain_columns: &'static [&'static str],
    /// Parquet columns written without min/max statistics (long free text; a nested leaf by its
    /// dotted path, e.g. `reasons.list.item`): the writer would compare every value with the
    /// chunk's and the page's minimum and maximum, and store up to 64 bytes of two texts in
    /// the footer, for statistics no reader prunes by.
    pub unsummarised_columns: &'static [&'static str],
    /// Parquet integer columns whose values lie near each other (ids in ascending order, or
    /// drawn from a dense range) written as deltas (`DELTA_BINARY_PACKED`, no dictionary): a
    /// value then takes the bits of its distance from the last, not eight bytes, and the
    /// compression codec has that much less to do.
    pub delta_columns: &'static [&'static str],
    /// Parquet only: each column encoded on a thread of its own (the same bytes). For a long,
    /// narrow table written while other work waits for it; a table of few rows, or one of
    /// many written at once, gains nothing from the threads.
    pub column_threads: bool,
}

/// A column named in [`WriteOptions`]: a top-level name, or a nested leaf's path with dots
/// (`reasons.list.item`). Parquet's `ColumnPath::from` takes a string as one part, so a dotted
/// name would silently match nothing.
fn column_path(name: &str) -> ColumnPath {
    ColumnPath::new(name.split('.').map(str::to_owned).collect())
}

/// Writes record batches of one schema to one file.
pub struct TableWriter {
    sink: Option<Sink>,
    format: Format,
    path: PathBuf,
    partial: PathBuf,
    rows: u64,
}

impl std::fmt::Debug for TableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("rows", &self.rows)
            .finish()
    }
}

impl TableWriter {
    /// Creates `path` (format from its extension) for batches of `schema`.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<TableWriter, IoError> {
        TableWriter::create_with(path, schema, WriteOptions::default())
    }

    /// [`TableWriter::create`] with `options`.
    pub fn create_with(
        path: &Path,
        schema: SchemaRef,
        options: WriteOptions,
    ) -> Result<TableWriter, IoError> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        TableWriter::create_as(path, PathBuf::from(partial), schema, options)
    }

    /// Like [`TableWriter::create`], through the caller's `partial` file (on the same file
    /// system as `path`; its directory must exist), renamed to `path` when finished: for
    /// writers of one file that may run at once (a task retried on another machine while the
    /// first attempt still runs), each through its own partial file in a directory the caller
    /// can take away from late writers; they write the same bytes, and the last rename wins.
    pub fn create_through(
        path: &Path,
        partial: PathBuf,
        schema: SchemaRef,
        options: WriteOptions,
    ) -> Result<TableWriter, IoError> {
        TableWriter::create_as(path, partial, schema, options)
    }

    fn create_as(
        path: &Path,
        partial: PathBuf,
        schema: SchemaRef,
        options: WriteOptions,
    ) -> Result<TableWriter, IoError> {
        let format = Format::from_path(path)?;
        let file = File::create(&partial).map_err(|source| IoError::File {
            action: "cannot create",
            path: partial.clone(),
            source,
        })?;
        let out = Digesting {
            file: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
        };
        let sink = match format {
            Format::Parquet => {
                let props = options.plain_columns.iter().fold(
                    WriterProperties::builder()
                        .set_compression(Compression::SNAPPY)
                        .set_max_row_group_row_count(Some(256 * 1024)),
                    |props, column| props.set_column_dictionary_enabled(column_path(column), false),
                );
                let props = options
                    .unsummarised_columns
                    .iter()
                    .fold(props, |props, column| {
                        props.set_column_statistics_enabled(
                            column_path(column),
                            EnabledStatistics::None,
                        )
                    });
                let props = options
                    .delta_columns
                    .iter()
                    .fold(props, |props, column| {
                        props
                            .set_column_dictionary_enabled(column_path(column), false)
                            .set_column_encoding(column_path(column), Encoding::DELTA_BINARY_PACKED)
                    })
                    .build();
                let parquet_err = |source| IoError::Parquet {
                    path: path.to_owned(),
                    source,
                };
                if options.column_threads {
                    Sink::ParquetColumns(
                        crate::columns::ColumnParallelWriter::try_new(out, schema, props)
                            .map_err(parquet_err)?,
                    )
                } else {
                    Sink::Parquet(
                        ArrowWriter::try_new(out, schema, Some(props)).map_err(parquet_err)?,
                    )
                }
            }
            Format::Csv => Sink::Csv(
                arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.6fZ".to_owned())
                    .with_date_format("%Y-%m-%d".to_owned())
                    .build(out),
            ),
            Format::Jsonl => Sink::Jsonl(arrow::json::LineDelimitedWriter::new(out)),
        };
        Ok(TableWriter {
            sink: Some(sink),
            format,
            path: path.to_owned(),
            partial,
            rows: 0,
        })
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes the writer holds in memory for the row group it is writing (Parquet keeps a row
    /// group's encoded pages until the group is complete; 0 for CSV and JSON Lines, and for
    /// a Parquet file whose columns are encoded on threads).
    pub fn buffered_bytes(&self) -> usize {
        match &self.sink {
            Some(Sink::Parquet(w)) => w.memory_size(),
            _ => 0,
        }
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), IoError> {
        let path = &self.path;
        let arrow_err = |source| IoError::Arrow {
            path: path.clone(),
            source,
        };
        match self.sink.as_mut() {
            Some(Sink::Parquet(w)) => w.write(batch).map_err(|source| IoError::Parquet {
                path: path.clone(),
                source,
            })?,
            Some(Sink::ParquetColumns(w)) => w.write(batch).map_err(|source| IoError::Parquet {
                path: path.clone(),
                source,
            })?,
            Some(Sink::Csv(w)) => w
                .write(&lists_as_text(batch).map_err(arrow_err)?)
                .map_err(arrow_err)?,
            Some(Sink::Jsonl(w)) => w.write(batch).map_err(arrow_err)?,
            None => {}
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Flushes, fsyncs and renames the file into place.
    pub fn finish(self) -> Result<PathBuf, IoError> {
        self.finish_digest().map(|written| written.path)
    }

    /// [`TableWriter::finish`], returning the file's digest (computed as it was written) and
    /// row count too.
    pub fn finish_digest(mut self) -> Result<Written, IoError> {
        let path = self.path.clone();
        let file_err = |action, source| IoError::File {
            action,
            path: path.clone(),
            source,
        };
        let buffered = match self.sink.take() {
            Some(Sink::Parquet(w)) => w.into_inner().map_err(|source| IoError::Parquet {
                path: path.clone(),
                source,
            })?,
            Some(Sink::ParquetColumns(w)) => w.into_inner().map_err(|source| IoError::Parquet {
                path: path.clone(),
                source,
            })?,
            Some(Sink::Csv(w)) => w.into_inner(),
            Some(Sink::Jsonl(mut w)) => {
                w.finish().map_err(|source| IoError::Arrow {
                    path: path.clone(),
                    source,
                })?;
                w.into_inner()
            }
            None => {
                return Err(file_err(
                    "cannot finish (already finished)",
                    std::io::Error::other("no open file"),
                ));
            }
        };
        let Digesting { file, hash } = buffered;
        let file = file
            .into_inner()
            .map_err(|e| file_err("cannot write", e.into_error()))?;
        file.sync_all().map_err(|e| file_err("cannot sync", e))?;
        std::fs::rename(&self.partial, &path).map_err(|e| file_err("cannot rename into", e))?;
        Ok(Written {
            path,
            rows: self.rows,
            sha256: hash.finalize().into(),
        })
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        // An unfinished writer leaves no file behind under either name.
        if self.sink.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// CSV has no lists: `list<int64>` columns become `;`-joined text.
fn lists_as_text(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::List(_)))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::List(item) if item.data_type() == &DataType::Int64 => {
                let list = column.as_list::<i32>();
                let mut text = StringBuilder::with_capacity(list.len(), list.len() * 8);
                let mut buf = String::new();
                for i in 0..list.len() {
                    if list.is_null(i) {
                        text.append_null();
                        continue;
                    }
                    buf.clear();
                    let values = list.value(i);
                    let values = values.as_primitive::<Int64Type>();
                    for (n, v) in values.iter().flatten().enumerate() {
                        if n > 0 {
                            buf.push(';');
                        }
                        buf.push_str(&v.to_string());
                    }
                    text.append_value(&buf);
                }
                fields.push(Field::new(field.name(), DataType::Utf8, true));
                columns.push(Arc::new(text.finish()));
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;
    use arrow::array::{Int64Builder, ListBuilder, StringArray, TimestampMicrosecondArray};

    fn content_batch() -> RecordBatch {
        let mut mentions = ListBuilder::new(Int64Builder::new());
        mentions.values().append_value(17);
        mentions.values().append_value(42);
        mentions.append(true);
        mentions.append_null();
        RecordBatch::try_new(
            schema::content(),
            vec![
                Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
                Arc::new(arrow::array::Int64Array::from(vec![10, 11])),
                Arc::new(StringArray::from(vec!["post", "comment"])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![0, 1_000_000]).with_timezone("+00:00"),
                ),
                Arc::new(StringArray::from(vec!["héllo, \"world\"", "second"])),
                Arc::new(mentions.finish()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_digest_is_the_finished_files() {
        let dir = tempfile::tempdir().unwrap();
        for ext in ["parquet", "csv", "jsonl"] {
            let path = dir.path().join(format!("content.{ext}"));
            let mut w = TableWriter::create(&path, schema::content()).unwrap();
            for _ in 0..20_000 {
                w.write(&content_batch()).unwrap();
            }
            let written = w.finish_digest().unwrap();
            assert_eq!(written.path, path);
            assert_eq!(written.rows, 40_000);
            let bytes = std::fs::read(&path).unwrap();
            if ext != "parquet" {
                // Text passes through the 1 MiB buffer more than once (Parquet compresses
                // these repeated rows to little).
                assert!(bytes.len() > 1 << 20, "{ext}: {} bytes", bytes.len());
            }
            let expected: [u8; 32] = Sha256::digest(&bytes).into();
            assert_eq!(written.sha256, expected, "{ext}");
        }
    }

    #[test]
    fn writes_every_format_atomically() {
        let dir = tempfile::tempdir().unwrap();
        for ext in ["parquet", "csv", "jsonl"] {
            let path = dir.path().join(format!("content.{ext}"));
            let mut w = TableWriter::create(&path, schema::content()).unwrap();
            w.write(&content_batch()).unwrap();
            assert!(!path.exists(), "{ext}: visible before finish");
            assert_eq!(w.finish().unwrap(), path);
            assert!(path.metadata().unwrap().len() > 0);
        }
        let csv = std::fs::read_to_string(dir.path().join("content.csv")).unwrap();
        assert!(
            csv.starts_with("content_id,member_id,kind,created_at,text,mentions\n"),
            "{csv}"
        );
        assert!(csv.contains("1970-01-01T00:00:00.000000Z"), "{csv}");
        assert!(csv.contains("17;42"), "{csv}");
        let jsonl = std::fs::read_to_string(dir.path().join("content.jsonl")).unwrap();
        assert_eq!(jsonl.lines().count(), 2);
        assert!(jsonl.contains("[17,42]"), "{jsonl}");
    }

    /// `content_batch()` written as Parquet with `options`: its first row group's metadata and
    /// the batches read back.
    fn written_with(
        options: WriteOptions,
    ) -> (parquet::file::metadata::RowGroupMetaData, Vec<RecordBatch>) {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("content.parquet");
        let mut w = TableWriter::create_with(&path, schema::content(), options).unwrap();
        w.write(&content_batch()).unwrap();
        w.finish().unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let group = reader.metadata().row_group(0).clone();
        let file = File::open(&path).unwrap();
        let back = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        (group, back)
    }

    /// The column chunk of the leaf `name` (its dotted path).
    fn chunk<'a>(
        group: &'a parquet::file::metadata::RowGroupMetaData,
        name: &str,
    ) -> &'a parquet::file::metadata::ColumnChunkMetaData {
        group
            .columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    #[test]
    fn plain_columns_are_written_without_a_dictionary_and_read_back_equal() {
        let (group, back) = written_with(WriteOptions {
            plain_columns: &["content_id", "text"],
            unsummarised_columns: &["text", "mentions.list.item"],
            ..WriteOptions::default()
        });
        let dictionary = |name: &str| chunk(&group, name).dictionary_page_offset().is_some();
        assert!(!dictionary("content_id") && !dictionary("text"));
        assert!(dictionary("member_id") && dictionary("kind"));
        let statistics = |name: &str| {
            chunk(&group, name)
                .statistics()
                .is_some_and(|s| s.min_bytes_opt().is_some())
        };
        assert!(
            !statistics("text"),
            "the text column has min/max statistics"
        );
        assert!(
            !statistics("mentions.list.item"),
            "a nested leaf named by its dotted path has min/max statistics"
        );
        assert!(statistics("content_id") && statistics("kind"));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].columns(), content_batch().columns());
    }

    #[test]
    fn delta_columns_are_written_as_deltas_and_read_back_equal() {
        use parquet::basic::Encoding;
        let (group, back) = written_with(WriteOptions {
            plain_columns: &["text"],
            delta_columns: &["content_id", "member_id"],
            ..WriteOptions::default()
        });
        let delta = |name: &str| {
            chunk(&group, name)
                .encodings()
                .any(|e| e == Encoding::DELTA_BINARY_PACKED)
        };
        for name in ["content_id", "member_id"] {
            assert!(delta(name), "{name} is not written as deltas");
            assert!(
                chunk(&group, name).dictionary_page_offset().is_none(),
                "{name} has a dictionary"
            );
        }
        assert!(!delta("created_at"));
        assert_eq!(back[0].columns(), content_batch().columns());
    }

    #[test]
    fn column_threads_write_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for column_threads in [false, true] {
            let path = dir.path().join(format!("c-{column_threads}.parquet"));
            let options = WriteOptions {
                plain_columns: &["content_id", "text"],
                unsummarised_columns: &["text"],
                delta_columns: &["member_id"],
                column_threads,
            };
            let mut w = TableWriter::create_with(&path, schema::content(), options).unwrap();
            for _ in 0..3 {
                w.write(&content_batch()).unwrap();
            }
            let written = w.finish_digest().unwrap();
            assert_eq!(written.rows, 6);
            files.push((std::fs::read(&path).unwrap(), written.sha256));
        }
        assert!(
            files[0] == files[1],
            "the two files or their digests differ"
        );
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("content.parquet");
        let mut w = TableWriter::create(&path, schema::content()).unwrap();
        w.write(&content_batch()).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn unwritable_directory_names_the_file() {
        let err = TableWriter::create("/nonexistent-dir/x.parquet".as_ref(), schema::members())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent-dir/x.parquet"), "{err}");
    }

    #[test]
    fn parquet_output_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for i in 0..2 {
            let path = dir.path().join(format!("c{i}.parquet"));
            let mut w = TableWriter::create(&path, schema::content()).unwrap();
            w.write(&content_batch()).unwrap();
            w.finish().unwrap();
            bytes.push(std::fs::read(&path).unwrap());
        }
        assert_eq!(bytes[0], bytes[1]);
    }
}
