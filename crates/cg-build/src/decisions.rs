//! The one reader of a dataset's `decisions.parquet` (the record of processing: one row per
//! content row, with its member, the shard it went to if kept, and the fingerprint of what its
//! redacted text depends on). Rebuilds, withdrawal impact, receipts' membership and the demo read
//! it through here; the build's writer is [`crate::layout`]'s `DecisionsOut`.
//!
//! Only the narrow integer columns are read (a projection), never the reasons.

use std::fs::File;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::BuildError;

/// The decision record's file name inside a dataset directory.
pub const DECISIONS_FILE: &str = "decisions.parquet";

/// One row of the decision record, as far as readers need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecisionRow {
    /// The content row.
    pub content_id: i64,
    /// Its author (`None` for a row whose member id did not parse, quarantined).
    pub member_id: Option<i64>,
    /// The shard it went to; `None` when it was excluded.
    pub shard: Option<u32>,
    /// What the kept text depends on; `None` in records written before incremental rebuilds.
    pub fingerprint: Option<i64>,
}

/// Calls `each` for every row of `dir/decisions.parquet` with a content id, in file order. A
/// missing file, a missing `content_id`, `member_id` or `shard` column or a column of another
/// type is an error naming the file.
pub fn for_each_decision(
    dir: &Path,
    mut each: impl FnMut(DecisionRow) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let path = dir.join(DECISIONS_FILE);
    let bad = |message: String| BuildError::Source {
        file: path.display().to_string(),
        message,
    };
    let f = File::open(&path).map_err(|e| BuildError::io(&path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(e.to_string()))?;
    let schema = builder.parquet_schema();
    let position = |name: &str| schema.columns().iter().position(|c| c.name() == name);
    let mut wanted = Vec::new();
    for name in ["content_id", "member_id", "shard"] {
        wanted.push(position(name).ok_or_else(|| bad(format!("no column `{name}`")))?);
    }
    wanted.extend(position("fingerprint"));
    let mask = ProjectionMask::leaves(schema, wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        read_batch(&batch, &path, &mut each)?;
    }
    Ok(())
}

fn read_batch(
    batch: &RecordBatch,
    path: &Path,
    each: &mut impl FnMut(DecisionRow) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let bad = |message: String| BuildError::Source {
        file: path.display().to_string(),
        message,
    };
    let int64 = |name: &str| {
        batch
            .column_by_name(name)
            .map(|c| {
                c.as_primitive_opt::<Int64Type>()
                    .ok_or_else(|| bad(format!("column `{name}` is not int64")))
            })
            .transpose()
    };
    let ids = int64("content_id")?.ok_or_else(|| bad("no column `content_id`".into()))?;
    let members = int64("member_id")?.ok_or_else(|| bad("no column `member_id`".into()))?;
    let fingerprints = int64("fingerprint")?;
    let shards = batch
        .column_by_name("shard")
        .ok_or_else(|| bad("no column `shard`".into()))?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| bad("column `shard` is not int32".into()))?;
    for i in 0..batch.num_rows() {
        if !ids.is_valid(i) {
            continue;
        }
        // A negative shard is a damaged record, not an exclusion: reading it as "not in the
        // dataset" would let a receipt deny what a shard holds.
        let shard = if shards.is_valid(i) {
            Some(u32::try_from(shards.value(i)).map_err(|_| {
                bad(format!(
                    "content {}: shard {} is negative",
                    ids.value(i),
                    shards.value(i)
                ))
            })?)
        } else {
            None
        };
        each(DecisionRow {
            content_id: ids.value(i),
            member_id: members.is_valid(i).then(|| members.value(i)),
            shard,
            fingerprint: fingerprints.and_then(|f| f.is_valid(i).then(|| f.value(i))),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;

    use super::*;

    fn write(dir: &Path, columns: Vec<(&str, ArrayRef)>) {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema.clone(),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let f = File::create(dir.join(DECISIONS_FILE)).unwrap();
        let mut w = ArrowWriter::try_new(f, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    fn read(dir: &Path) -> Result<Vec<DecisionRow>, String> {
        let mut rows = Vec::new();
        for_each_decision(dir, |r| {
            rows.push(r);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(rows)
    }

    #[test]
    fn rows_come_back_with_their_nulls_and_without_id_less_rows() {
        let dir = cg_test_support::tempdir();
        write(
            dir.path(),
            vec![
                (
                    "content_id",
                    Arc::new(Int64Array::from(vec![Some(1), Some(2), None, Some(4)])) as ArrayRef,
                ),
                (
                    "member_id",
                    Arc::new(Int64Array::from(vec![Some(7), None, Some(9), Some(8)])),
                ),
                (
                    "shard",
                    Arc::new(Int32Array::from(vec![Some(3), None, Some(1), None])),
                ),
                ("fingerprint", Arc::new(Int64Array::from(vec![11, 0, 0, 0]))),
            ],
        );
        let rows = read(dir.path()).unwrap();
        assert_eq!(
            rows,
            vec![
                DecisionRow {
                    content_id: 1,
                    member_id: Some(7),
                    shard: Some(3),
                    fingerprint: Some(11)
                },
                DecisionRow {
                    content_id: 2,
                    member_id: None,
                    shard: None,
                    fingerprint: Some(0)
                },
                DecisionRow {
                    content_id: 4,
                    member_id: Some(8),
                    shard: None,
                    fingerprint: Some(0)
                },
            ]
        );
    }

    #[test]
    fn damaged_or_old_records_are_errors_or_say_what_they_lack() {
        let dir = cg_test_support::tempdir();
        // Written before incremental rebuilds: no fingerprint column.
        write(
            dir.path(),
            vec![
                (
                    "content_id",
                    Arc::new(Int64Array::from(vec![1])) as ArrayRef,
                ),
                ("member_id", Arc::new(Int64Array::from(vec![7]))),
                ("shard", Arc::new(Int32Array::from(vec![0]))),
            ],
        );
        assert_eq!(read(dir.path()).unwrap()[0].fingerprint, None);
        // A negative shard is damage, never "not in the dataset".
        write(
            dir.path(),
            vec![
                (
                    "content_id",
                    Arc::new(Int64Array::from(vec![5])) as ArrayRef,
                ),
                ("member_id", Arc::new(Int64Array::from(vec![7]))),
                ("shard", Arc::new(Int32Array::from(vec![-2]))),
            ],
        );
        let err = read(dir.path()).unwrap_err();
        assert!(
            err.contains("decisions.parquet") && err.contains("content 5: shard -2 is negative"),
            "{err}"
        );
        // A missing column, a column of another type, a missing file.
        write(
            dir.path(),
            vec![
                (
                    "content_id",
                    Arc::new(Int64Array::from(vec![5])) as ArrayRef,
                ),
                ("member_id", Arc::new(Int64Array::from(vec![7]))),
            ],
        );
        assert!(read(dir.path()).unwrap_err().contains("no column `shard`"));
        write(
            dir.path(),
            vec![
                (
                    "content_id",
                    Arc::new(Int64Array::from(vec![5])) as ArrayRef,
                ),
                ("member_id", Arc::new(Int32Array::from(vec![7]))),
                ("shard", Arc::new(Int32Array::from(vec![0]))),
            ],
        );
        assert!(
            read(dir.path())
                .unwrap_err()
                .contains("column `member_id` is not int64")
        );
        let empty = cg_test_support::tempdir();
        assert!(
            read(empty.path())
                .unwrap_err()
                .contains("decisions.parquet")
        );
    }
}
