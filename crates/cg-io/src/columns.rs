//! Parquet with every column encoded on a thread of its own, the same bytes as
//! [`parquet::arrow::ArrowWriter`] with the same properties.
//!
//! Encoding (dictionaries, levels, compression) is most of the cost of writing a narrow table
//! with many rows; `ArrowWriter` does it for one column after another on the caller's thread.
//! Here the caller's thread only cuts batches into leaf columns and hands each to its column's
//! thread; at the end of a row group it collects the encoded column chunks in schema order and
//! appends them, as `ArrowWriter::flush` does. Row groups are cut where `ArrowWriter` cuts them
//! (every `max_row_group_row_count` rows; a byte limit is refused), so the file is the same.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    compute_leaves,
};
use parquet::errors::{ParquetError, Result};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

/// What a column's thread is told.
enum ToColumn {
    /// A new row group's writer for this column (boxed: it is large, the other messages small).
    Start(Box<ArrowColumnWriter>),
    /// Values of this column to encode.
    Leaf(ArrowLeafColumn),
    /// Close the row group's column chunk and send it back.
    Close,
}

/// One leaf column's thread.
struct ColumnThread {
    to: SyncSender<ToColumn>,
    chunks: Receiver<Result<ArrowColumnChunk>>,
    handle: JoinHandle<()>,
}

impl ColumnThread {
    fn spawn() -> std::io::Result<ColumnThread> {
        let (to, from) = sync_channel::<ToColumn>(2);
        let (reply, chunks) = sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("cg-parquet-column".into())
            .spawn(move || {
                let mut writer: Option<ArrowColumnWriter> = None;
                // The first error of the row group, reported when it closes.
                let mut failed: Option<ParquetError> = None;
                for message in from {
                    match message {
                        ToColumn::Start(w) => {
                            writer = Some(*w);
                            failed = None;
                        }
                        ToColumn::Leaf(leaf) => {
                            if failed.is_some() {
                                continue;
                            }
                            match writer.as_mut() {
                                Some(w) => failed = w.write(&leaf).err(),
                                None => failed = Some(no_row_group()),
                            }
                        }
                        ToColumn::Close => {
                            let chunk = match (failed.take(), writer.take()) {
                                (Some(e), _) => Err(e),
                                (None, Some(w)) => w.close(),
                                (None, None) => Err(no_row_group()),
                            };
                            if reply.send(chunk).is_err() {
                                return;
                            }
                        }
                    }
                }
            })?;
        Ok(ColumnThread { to, chunks, handle })
    }
}

fn no_row_group() -> ParquetError {
    ParquetError::General("a column's values came before its row group".into())
}

fn column_thread_lost() -> ParquetError {
    ParquetError::General("a Parquet column's encoding thread stopped".into())
}

/// A Parquet file written with one encoding thread per leaf column.
pub(crate) struct ColumnParallelWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    columns: Vec<ColumnThread>,
    max_rows: usize,
    /// Rows of the open row group (none open at 0).
    buffered: usize,
    row_groups: usize,
}

impl<W: Write + Send> ColumnParallelWriter<W> {
    /// A writer of `schema` to `out` with `props` (which must not limit row groups by bytes).
    pub(crate) fn try_new(
        out: W,
        schema: SchemaRef,
        props: WriterProperties,
    ) -> Result<ColumnParallelWriter<W>> {
        if props.max_row_group_bytes().is_some() {
            return Err(ParquetError::General(
                "column-parallel Parquet cuts row groups by rows only".into(),
            ));
        }
        let max_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        // `ArrowWriter` makes the file's schema and key-value metadata (the Arrow schema among
        // them) exactly as it would for its own writing; it has written only the magic bytes.
        let (file, factory) =
            ArrowWriter::try_new(out, schema.clone(), Some(props))?.into_serialized_writer()?;
        let leaves = file.schema_descr().num_columns();
        let columns = (0..leaves)
            .map(|_| ColumnThread::spawn())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(ColumnParallelWriter {
            file,
            factory,
            schema,
            columns,
            max_rows,
            buffered: 0,
            row_groups: 0,
        })
    }

    /// Encodes `batch`, closing row groups where `ArrowWriter` would.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut start = 0;
        while start < batch.num_rows() {
            if self.buffered == 0 {
                let writers = self.factory.create_column_writers(self.row_groups)?;
                if writers.len() != self.columns.len() {
                    return Err(ParquetError::General(format!(
                        "{} column writers for {} leaf columns",
                        writers.len(),
                        self.columns.len()
                    )));
                }
                for (column, writer) in self.columns.iter().zip(writers) {
                    column
                        .to
                        .send(ToColumn::Start(Box::new(writer)))
                        .map_err(|_| column_thread_lost())?;
                }
            }
            let take = (batch.num_rows() - start).min(self.max_rows - self.buffered);
            let part = batch.slice(start, take);
            let mut column = self.columns.iter();
            for (field, array) in self.schema.fields().iter().zip(part.columns()) {
                for leaf in compute_leaves(field, array)? {
                    column
                        .next()
                        .ok_or_else(|| ParquetError::General("more leaves than columns".into()))?
                        .to
                        .send(ToColumn::Leaf(leaf))
                        .map_err(|_| column_thread_lost())?;
                }
            }
            self.buffered += take;
            start += take;
            if self.buffered >= self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Closes the open row group: its column chunks, in schema order, appended to the file.
    fn flush(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        for column in &self.columns {
            column
                .to
                .send(ToColumn::Close)
                .map_err(|_| column_thread_lost())?;
        }
        let mut chunks = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            chunks.push(column.chunks.recv().map_err(|_| column_thread_lost())??);
        }
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.buffered = 0;
        self.row_groups += 1;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the underlying writer.
    pub(crate) fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        for column in std::mem::take(&mut self.columns) {
            drop(column.to);
            column.handle.join().map_err(|_| column_thread_lost())?;
        }
        self.file.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, Int64Array, ListBuilder, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::basic::Compression;
    use parquet::schema::types::ColumnPath;

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("decision", DataType::Utf8, false),
            Field::new(
                "reasons",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                false,
            ),
            Field::new("shard", DataType::Int32, true),
        ]))
    }

    /// `rows` rows from `from`, some of them null, reasons of 0–2 entries.
    fn batch(from: usize, rows: usize) -> RecordBatch {
        let ids: Int64Array = (from..from + rows)
            .map(|i| (i % 97 != 0).then_some(i as i64 * 7919))
            .collect();
        let mut decision = StringBuilder::new();
        let mut reasons = ListBuilder::new(StringBuilder::new());
        for i in from..from + rows {
            decision.append_value(["include", "exclude", "include_redacted"][i % 3]);
            for r in 0..i % 3 {
                reasons.values().append_value(["no_consent", "minor"][r]);
            }
            reasons.append(true);
        }
        let shards: Int32Array = (from..from + rows)
            .map(|i| (i % 5 != 0).then_some((i % 16) as i32))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ids),
            Arc::new(decision.finish()),
            Arc::new(reasons.finish()),
            Arc::new(shards),
        ];
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    fn props() -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(1000))
            .set_column_dictionary_enabled(ColumnPath::from("id"), false)
            .build()
    }

    #[test]
    fn the_same_bytes_as_arrow_writer() {
        // Batches that do not divide the row group, and row groups that end mid-batch.
        let sizes = [300, 700, 1, 1999, 0, 2500, 17];
        let mut expected = ArrowWriter::try_new(Vec::new(), schema(), Some(props())).unwrap();
        let mut parallel = ColumnParallelWriter::try_new(Vec::new(), schema(), props()).unwrap();
        let mut from = 0;
        for rows in sizes {
            let b = batch(from, rows);
            expected.write(&b).unwrap();
            parallel.write(&b).unwrap();
            from += rows;
        }
        let expected = expected.into_inner().unwrap();
        let parallel = parallel.into_inner().unwrap();
        assert!(expected.len() > 10_000);
        assert!(expected == parallel, "the files differ");
    }

    #[test]
    fn an_empty_file_is_the_same_too() {
        let expected = ArrowWriter::try_new(Vec::new(), schema(), Some(props()))
            .unwrap()
            .into_inner()
            .unwrap();
        let parallel = ColumnParallelWriter::try_new(Vec::new(), schema(), props())
            .unwrap()
            .into_inner()
            .unwrap();
        assert!(expected == parallel);
    }

    #[test]
    fn a_byte_limit_on_row_groups_is_refused() {
        let props = WriterProperties::builder()
            .set_max_row_group_bytes(Some(1 << 20))
            .build();
        assert!(ColumnParallelWriter::try_new(Vec::new(), schema(), props).is_err());
    }
}
