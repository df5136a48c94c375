//! The pass: the same dataset whatever the memory budget (spilled or not), the content's
//! Parquet codec or its columns' common types, shards and the decision record in content-id
//! order, and duplicate or missing content ids named by row.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use cg_build::{BuildConfig, BuildError, ConsentSourceArg, Engine, build};
use cg_model::progress::NoProgress;
use cg_model::{Purpose, Timestamp};
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

fn config(
    corpus: &Path,
    content: PathBuf,
    out: PathBuf,
    memory_mb: usize,
    quarantine: bool,
) -> BuildConfig {
    let ext = content.extension().unwrap().to_str().unwrap().to_owned();
    let input = |name: &str| corpus.join(format!("{name}.{ext}"));
    BuildConfig {
        members: Some(input("members")),
        content,
        consent: ConsentSourceArg::File(input("consent")),
        residences: Some(input("residences")),
        notices: Some(input("notices")),
        erasures: Some(input("erasures")),
        as_of: Timestamp::parse("2025-12-01").unwrap(),
        purpose: Purpose::genai_training(),
        policy: Arc::new(cg_policy::Policy::bundled("timeline", Default::default()).unwrap()),
        out,
        shards: 4,
        quarantine,
        shard_key: None,
        member_keys: Arc::new(cg_proof::member_key::MemberKeySecret::from_seed(&[7; 32]).unwrap()),
        key_scheme: Default::default(),
        ledger_checkpoint: None,
        engine: Engine::Embedded,
        license: None,
        memory_mb,
        staging: None,
        shard_writes: Default::default(),
    }
}

/// `dataset verify --key` on a build's output: every digest, and the member roster the pass
/// collected while writing the record equal to the one made again from `decisions.parquet`.
fn verify_with_key(out: &cg_build::BuildOutput) {
    let key = cg_proof::member_key::MemberKeySecret::from_seed(&[7; 32]).unwrap();
    let report = cg_build::verify_dataset(&out.dir, Some(&key)).unwrap();
    assert!(report.commitment_recomputed);
    assert_eq!(
        out.manifest.member_commitment.as_ref().unwrap().key_scheme,
        cg_proof::roster::ROSTER_SCHEME
    );
}

/// The `content_id` column of a Parquet file, nulls as `None`.
fn ids(path: &Path) -> Vec<Option<i64>> {
    let reader =
        ParquetRecordBatchReader::try_new(std::fs::File::open(path).unwrap(), 4096).unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let c = b
            .column_by_name("content_id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        out.extend((0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i))));
    }
    out
}

#[test]
fn a_spilling_build_is_byte_identical_and_every_file_is_in_content_id_order() {
    // 20 000 rows: their narrow records alone (40 bytes each) exceed the tight build's budget,
    // so it spills decision records as well as shard rows.
    let (corpus, _) = cg_test_support::small_corpus(400, 20_000, cg_io::Format::Parquet);
    let content = corpus.path().join("content.parquet");
    let roomy = build(
        config(
            corpus.path(),
            content.clone(),
            corpus.path().join("a"),
            2048,
            false,
        ),
        &NoProgress,
    )
    .unwrap();
    // 1 MiB: the spools and the records (half of it together) spill runs many times and merge
    // them.
    let tight = build(
        config(corpus.path(), content, corpus.path().join("b"), 1, false),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(roomy.manifest.dataset_id, tight.manifest.dataset_id);
    // The pass counts what the engine delivered: every content row, in batches.
    let rows: u64 = roomy.manifest.totals.values().sum();
    assert_eq!((roomy.received.rows, tight.received.rows), (rows, rows));
    assert!(roomy.received.batches > 0 && roomy.received.bytes > rows * 8);
    assert_eq!(roomy.manifest.shards, tight.manifest.shards);
    assert_eq!(roomy.manifest.decisions, tight.manifest.decisions);
    assert_eq!(roomy.manifest.counts, tight.manifest.counts);
    assert_eq!(
        roomy.manifest.member_commitment_root,
        tight.manifest.member_commitment_root
    );
    let spill = |dir: &Path| {
        std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".spill"))
    };
    assert!(!spill(&tight.dir), "no spill directory is left behind");
    verify_with_key(&roomy);
    verify_with_key(&tight);

    let mut kept = 0;
    for s in &roomy.manifest.shards {
        let ids = ids(&roomy.dir.join(&s.file));
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{} is sorted by content id",
            s.file
        );
        kept += ids.len() as u64;
    }
    assert!(kept > 0);
    let record = ids(&roomy.dir.join("decisions.parquet"));
    assert_eq!(record.len(), 20_000);
    let with_ids: Vec<i64> = record.iter().flatten().copied().collect();
    assert!(
        with_ids.windows(2).all(|w| w[0] < w[1]),
        "the record is in content-id order"
    );
    let totals = &roomy.manifest.totals;
    assert_eq!(
        totals.get("include").copied().unwrap_or(0)
            + totals.get("include_redacted").copied().unwrap_or(0),
        kept
    );
}

/// A CSV copy of the corpus's content with `edit` applied to its data lines.
fn edited_content(corpus: &Path, edit: impl FnOnce(&mut Vec<String>)) -> PathBuf {
    let text = std::fs::read_to_string(corpus.join("content.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let header = lines.remove(0);
    edit(&mut lines);
    let path = corpus.join("edited.csv");
    std::fs::write(&path, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
    path
}

fn first_field(line: &str) -> i64 {
    line.split(',').next().unwrap().parse().unwrap()
}

/// A quarantining build of an unedited CSV copy of the corpus's content, in `corpus/r`.
fn unedited_build(corpus: &Path) -> cg_build::BuildOutput {
    let content = edited_content(corpus, |_| {});
    build(
        config(corpus, content, corpus.join("r"), 2048, true),
        &NoProgress,
    )
    .unwrap()
}

/// A CSV copy of the corpus's content with the data line `pick` chooses copied to a new last
/// line with another text (starting `LATER COPY`); returns the file, the copied line's index
/// and its content id.
fn with_later_copy(corpus: &Path, pick: impl FnOnce(&[String]) -> usize) -> (PathBuf, usize, i64) {
    let (mut row, mut id) = (0, 0);
    let content = edited_content(corpus, |lines| {
        row = pick(lines);
        id = first_field(&lines[row]);
        let fields: Vec<&str> = lines[row].splitn(5, ',').collect();
        let text = match fields[4].strip_prefix('"') {
            Some(quoted) => format!("\"LATER COPY {quoted}"),
            None => format!("LATER COPY {}", fields[4]),
        };
        let again = format!(
            "{},{},{},{},{text}",
            fields[0], fields[1], fields[2], fields[3]
        );
        lines.push(again);
    });
    (content, row, id)
}

/// How many rows of the dataset's shards have content id `id`, and their texts.
fn shard_texts(out: &cg_build::BuildOutput, id: i64) -> Vec<String> {
    let mut texts = Vec::new();
    for s in &out.manifest.shards {
        let reader = ParquetRecordBatchReader::try_new(
            std::fs::File::open(out.dir.join(&s.file)).unwrap(),
            4096,
        )
        .unwrap();
        for b in reader {
            let b = b.unwrap();
            let ids = b
                .column_by_name("content_id")
                .unwrap()
                .as_primitive::<Int64Type>();
            let text = b.column_by_name("text").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                if ids.value(i) == id {
                    texts.push(text.value(i).to_owned());
                }
            }
        }
    }
    texts
}

#[test]
fn duplicate_content_ids_are_named_by_row_or_the_later_copy_is_quarantined() {
    let (corpus, _) = cg_test_support::small_corpus(200, 1_000, cg_io::Format::Csv);
    let reference = unedited_build(corpus.path());
    // A row that is kept, copied to a new last row with another text: the later copy is the
    // violation, whatever it says.
    let (content, row, duplicated) = with_later_copy(corpus.path(), |lines| {
        lines
            .iter()
            .position(|l| !shard_texts(&reference, first_field(l)).is_empty())
            .unwrap()
    });
    let err = build(
        config(
            corpus.path(),
            content.clone(),
            corpus.path().join("a"),
            2048,
            false,
        ),
        &NoProgress,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, BuildError::BadRow { row: 1001, .. }),
        "{message}"
    );
    assert!(
        message.contains(&format!("duplicate content id {duplicated}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("rows {}, 1001", row + 1)),
        "{message}"
    );
    assert!(message.contains("edited.csv"), "{message}");
    assert!(
        !corpus.path().join("a").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("ds-"))
    );

    // Quarantined: the later copy is the one invalid record; the first copy is kept as it was,
    // so the shards are byte for byte those of the input without the later copy.
    let out = build(
        config(corpus.path(), content, corpus.path().join("b"), 2048, true),
        &NoProgress,
    )
    .unwrap();
    let record = ids(&out.dir.join("decisions.parquet"));
    assert_eq!(record.len(), 1_001);
    assert_eq!(record.iter().filter(|i| **i == Some(duplicated)).count(), 2);
    let invalid: u64 = out
        .manifest
        .counts
        .iter()
        .filter(|c| c.reason == "invalid_record")
        .map(|c| c.rows)
        .sum();
    assert_eq!(invalid, 1);
    let texts = shard_texts(&out, duplicated);
    assert_eq!(texts, shard_texts(&reference, duplicated));
    assert!(
        texts.len() == 1 && !texts[0].contains("LATER COPY"),
        "{texts:?}"
    );
    assert_eq!(reference.manifest.shards, out.manifest.shards);
    // The roster counts the author of both copies once, with the first copy's bit: the same
    // members in the dataset as without the later copy.
    assert_eq!(
        reference
            .manifest
            .member_commitment
            .as_ref()
            .unwrap()
            .members,
        out.manifest.member_commitment.as_ref().unwrap().members
    );
    verify_with_key(&out);
}

#[test]
fn the_first_copy_in_the_file_is_kept_when_the_copies_are_batches_apart() {
    // 20 000 rows are three batches of the engine's reader. The first copy is in the second
    // batch and the later copy, appended, in the third: an engine that dealt batches to its
    // streams in turn would see the later copy first.
    let (corpus, _) = cg_test_support::small_corpus(400, 20_000, cg_io::Format::Csv);
    let reference = unedited_build(corpus.path());
    let (content, _, duplicated) = with_later_copy(corpus.path(), |lines| {
        (10_000..16_000)
            .find(|&i| !shard_texts(&reference, first_field(&lines[i])).is_empty())
            .unwrap()
    });
    let out = build(
        config(corpus.path(), content, corpus.path().join("b"), 2048, true),
        &NoProgress,
    )
    .unwrap();
    let texts = shard_texts(&out, duplicated);
    assert!(
        texts.len() == 1 && !texts[0].contains("LATER COPY"),
        "{texts:?}"
    );
    assert_eq!(reference.manifest.shards, out.manifest.shards);
}

#[test]
fn a_csv_file_with_line_breaks_in_its_text_is_read_whole() {
    // Large enough to be read as several ranges if the engine split CSV files; every text but
    // the first row's holds a line break followed by something shaped like a row, which a
    // reader starting a range (or a chunk it infers types from) at a line break would take for
    // one.
    let (corpus, _) = cg_test_support::small_corpus(400, 20_000, cg_io::Format::Csv);
    let (same, _) = cg_test_support::small_corpus(400, 20_000, cg_io::Format::Parquet);
    let reader = ParquetRecordBatchReader::try_new(
        std::fs::File::open(same.path().join("content.parquet")).unwrap(),
        4096,
    )
    .unwrap();
    let content = corpus.path().join("broken.csv");
    let mut out = cg_io::TableWriter::create(&content, cg_io::schema::content()).unwrap();
    let mut row = 0;
    for batch in reader {
        let batch = batch.unwrap();
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let text = batch.column(4).as_string::<i32>();
        let broken: arrow::array::StringArray = (0..batch.num_rows())
            .map(|i| {
                row += 1;
                Some(if row == 1 {
                    text.value(i).to_owned()
                } else {
                    format!(
                        "{}\n{},1,post,2024-01-01T00:00:00.000000Z,not a row",
                        text.value(i),
                        ids.value(i) + 900_000_000
                    )
                })
            })
            .collect();
        let mut columns = batch.columns().to_vec();
        columns[4] = Arc::new(broken);
        out.write(&arrow::array::RecordBatch::try_new(cg_io::schema::content(), columns).unwrap())
            .unwrap();
    }
    out.finish().unwrap();
    assert!(content.metadata().unwrap().len() > 2 << 20);
    let out = build(
        config(corpus.path(), content, corpus.path().join("o"), 2048, false),
        &NoProgress,
    )
    .unwrap();
    let record = ids(&out.dir.join("decisions.parquet"));
    assert_eq!(record.len(), 20_000);
    // Erased rows are recorded without an id.
    assert!(record.iter().all(|id| id.is_none_or(|id| id < 900_000_000)));
    // The line breaks are in the published texts.
    let kept = out.manifest.shards.iter().map(|s| s.rows).sum::<u64>();
    assert!(kept > 0);
    let with_break = (1..20_000).find_map(|i| shard_texts(&out, record[i]?).pop());
    assert!(with_break.is_some_and(|t| t.contains("\n") && t.contains("not a row")));
}

#[test]
fn a_missing_content_id_is_named_by_row() {
    let (corpus, _) = cg_test_support::small_corpus(200, 500, cg_io::Format::Csv);
    let content = edited_content(corpus.path(), |lines| {
        let rest = lines[9].split_once(',').unwrap().1.to_owned();
        lines[9] = format!(",{rest}");
    });
    let err = build(
        config(
            corpus.path(),
            content.clone(),
            corpus.path().join("a"),
            2048,
            false,
        ),
        &NoProgress,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("missing content id (row 10)"), "{message}");
    let out = build(
        config(corpus.path(), content, corpus.path().join("b"), 2048, true),
        &NoProgress,
    )
    .unwrap();
    let record = ids(&out.dir.join("decisions.parquet"));
    assert_eq!(
        record[0], None,
        "a row without an id comes first in the record"
    );
    assert_eq!(record.len(), 500);
}

#[test]
fn a_ledger_that_cannot_be_read_fails_the_build_without_showing_its_password() {
    let (dir, _) = cg_test_support::small_corpus(50, 100, cg_io::Format::Parquet);
    let mut cfg = config(
        dir.path(),
        dir.path().join("content.parquet"),
        dir.path().join("out"),
        64,
        false,
    );
    cfg.consent = ConsentSourceArg::Store("postgres://app:s3cret@127.0.0.1:1/ledger".into());
    // A distributed build reads the ledger on the client only (executors get the facts as
    // data), so the URL's password is no reason to refuse; the unreachable ledger is.
    cfg.engine = Engine::Ballista("ballista://127.0.0.1:1".into());
    let err = build(cfg, &NoProgress).unwrap_err();
    assert!(matches!(err, cg_build::BuildError::Ledger(_)), "{err:?}");
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn an_unreadable_content_file_is_named_and_the_engine_error_kept_as_the_cause() {
    let (corpus, _) = cg_test_support::small_corpus(50, 100, cg_io::Format::Parquet);
    let content = corpus.path().join("broken.parquet");
    let good = std::fs::read(corpus.path().join("content.parquet")).unwrap();
    // A Parquet file cut in half: the footer DataFusion needs is gone.
    std::fs::write(&content, &good[..good.len() / 2]).unwrap();
    let out = corpus.path().join("out");
    let err = build(
        config(corpus.path(), content.clone(), out.clone(), 64, false),
        &NoProgress,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("broken.parquet"), "{message}");
    let cause = std::error::Error::source(&err)
        .unwrap_or_else(|| panic!("the engine error is kept as the cause: {err:?}"));
    assert!(
        cause
            .downcast_ref::<datafusion::error::DataFusionError>()
            .is_some(),
        "{cause:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "nothing is published or left behind: {left:?}"
    );
}

#[test]
fn a_row_without_a_kind_is_named_by_row_and_column() {
    let (corpus, _) = cg_test_support::small_corpus(200, 500, cg_io::Format::Csv);
    // Row 20 (1-based, header not counted): its kind (the third field) emptied.
    let content = edited_content(corpus.path(), |lines| {
        let fields: Vec<&str> = lines[19].splitn(4, ',').collect();
        lines[19] = format!("{},{},,{}", fields[0], fields[1], fields[3]);
    });
    let out = corpus.path().join("a");
    let err = build(
        config(corpus.path(), content.clone(), out.clone(), 2048, false),
        &NoProgress,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, BuildError::BadRow { row: 20, column, .. } if column == "kind"),
        "{message}"
    );
    assert!(message.contains("--quarantine"), "{message}");
    // With quarantine the row is excluded as invalid and the build completes.
    let quarantined = build(
        config(corpus.path(), content, corpus.path().join("q"), 2048, true),
        &NoProgress,
    )
    .unwrap();
    assert!(
        quarantined
            .manifest
            .totals
            .get("exclude")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

/// Builds from a Parquet copy of the corpus's content with the columns `retyped` cast to other
/// types and written with `props` (in `corpus/<name>`), and asserts the same counts, decision
/// record and shards as the build of the original content, `reference`.
fn same_dataset_from_rewritten_content(
    corpus: &Path,
    reference: &cg_build::BuildOutput,
    name: &str,
    retyped: &[(&str, arrow::datatypes::DataType)],
    props: Option<parquet::file::properties::WriterProperties>,
) -> cg_build::BuildOutput {
    use arrow::array::{ArrayRef, RecordBatch, RecordBatchReader};
    use arrow::datatypes::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    let original = corpus.join("content.parquet");
    let content = corpus.join(format!("{name}.parquet"));
    let reader =
        ParquetRecordBatchReader::try_new(std::fs::File::open(&original).unwrap(), 512).unwrap();
    let schema = Arc::new(Schema::new(
        reader
            .schema()
            .fields()
            .iter()
            .map(|f| match retyped.iter().find(|(n, _)| n == f.name()) {
                Some((_, t)) => Field::new(f.name(), t.clone(), f.is_nullable()),
                None => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
    ));
    let file = std::fs::File::create(&content).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), props).unwrap();
    for batch in reader {
        let batch = batch.unwrap();
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| arrow::compute::cast(c, f.data_type()).unwrap())
            .collect();
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
    let out = build(
        config(corpus, content, corpus.join(name), 2048, false),
        &NoProgress,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(out.manifest.counts, reference.manifest.counts, "{name}");
    assert_eq!(
        out.manifest.decisions, reference.manifest.decisions,
        "{name}"
    );
    assert_eq!(out.manifest.shards, reference.manifest.shards, "{name}");
    out
}

/// The build of a small Parquet corpus's own content, in `corpus/ref`.
fn parquet_reference(corpus: &Path) -> cg_build::BuildOutput {
    let content = corpus.join("content.parquet");
    build(
        config(corpus, content, corpus.join("ref"), 2048, false),
        &NoProgress,
    )
    .unwrap()
}

#[test]
fn content_compressed_with_any_common_codec_builds_the_same_dataset() {
    use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
    use parquet::file::properties::WriterProperties;

    // Exports come compressed as their writer chose: zstd (Polars, Spark on request), LZ4,
    // gzip, brotli. Every codec must be compiled in (a trimmed `parquet` feature set would
    // fail here), and the codec must change nothing but the input's digest.
    let (corpus, _) = cg_test_support::small_corpus(200, 2_000, cg_io::Format::Parquet);
    let reference = parquet_reference(corpus.path());
    for (name, codec) in [
        ("zstd", Compression::ZSTD(ZstdLevel::default())),
        ("lz4", Compression::LZ4_RAW),
        ("gzip", Compression::GZIP(GzipLevel::default())),
        ("brotli", Compression::BROTLI(BrotliLevel::default())),
    ] {
        let props = WriterProperties::builder().set_compression(codec).build();
        let out =
            same_dataset_from_rewritten_content(corpus.path(), &reference, name, &[], Some(props));
        // The input is another file: the dataset is another one, by its digest.
        assert_ne!(
            out.manifest.dataset_id, reference.manifest.dataset_id,
            "{name}"
        );
    }
}

#[test]
fn content_columns_of_other_common_types_build_the_same_dataset() {
    use arrow::datatypes::{DataType, TimeUnit};

    // What other writers choose: 32-bit ids, times without a zone (UTC by convention), times
    // as RFC 3339 text. The decisions and shards must not change (the shards' `created_at` is
    // always written as UTC microseconds).
    let (corpus, _) = cg_test_support::small_corpus(200, 2_000, cg_io::Format::Parquet);
    let reference = parquet_reference(corpus.path());
    let variants: [(&str, &[(&str, DataType)]); 3] = [
        (
            "int32",
            &[
                ("content_id", DataType::Int32),
                ("member_id", DataType::Int32),
            ],
        ),
        (
            "naive",
            &[(
                "created_at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
            )],
        ),
        ("text_time", &[("created_at", DataType::Utf8)]),
    ];
    for (name, retyped) in variants {
        same_dataset_from_rewritten_content(corpus.path(), &reference, name, retyped, None);
    }
}

/// The stages and figures a build reported.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<String>>);

impl cg_model::progress::Progress for Recorded {
    fn stage(&self, name: &str, _total: Option<u64>) {
        self.0.lock().unwrap().push(format!("stage {name}"));
    }
    fn advance(&self, _n: u64) {}
    fn figure(&self, name: &str, value: u64) {
        self.0.lock().unwrap().push(format!("{name}: {value}"));
    }
}

#[test]
fn shards_written_while_deciding_or_spooled_and_content_in_any_order_give_the_same_dataset() {
    use arrow::array::{RecordBatch, RecordBatchReader, UInt32Array};
    use parquet::arrow::ArrowWriter;

    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;

    let (corpus, _) = cg_test_support::small_corpus(400, 20_000, cg_io::Format::Parquet);
    let reader = ParquetRecordBatchReader::try_new(
        std::fs::File::open(corpus.path().join("content.parquet")).unwrap(),
        1024,
    )
    .unwrap();
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let all = arrow::compute::concat_batches(&schema, &batches).unwrap();
    // Copies in row groups of 500 rows, uncompressed (over 1 MiB): the pass reads them as
    // many streams, so rows reach the writers from streams finished out of turn.
    let copy = |name: &str, rows: &RecordBatch| {
        let path = corpus.path().join(name);
        let props = WriterProperties::builder()
            .set_compression(Compression::UNCOMPRESSED)
            .set_max_row_group_row_count(Some(500))
            .build();
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            schema.clone(),
            Some(props),
        )
        .unwrap();
        w.write(rows).unwrap();
        w.close().unwrap();
        assert!(
            std::fs::metadata(&path).unwrap().len() > 1 << 20,
            "{name} is split"
        );
        path
    };
    let content = copy("ordered.parquet", &all);
    assert!(
        ids(&content).windows(2).all(|w| w[0] < w[1]),
        "the generated content is in content_id order (this test's premise)"
    );
    let n = all.num_rows() as u32;
    let reversed =
        arrow::compute::take_record_batch(&all, &UInt32Array::from_iter_values((0..n).rev()))
            .unwrap();
    let reversed_path = copy("reversed.parquet", &reversed);
    let run = |content: &Path, name: &str, memory_mb: usize, how: cg_build::ShardWrites| {
        let progress = Recorded::default();
        let mut cfg = config(
            corpus.path(),
            content.to_owned(),
            corpus.path().join(name),
            memory_mb,
            false,
        );
        cfg.shard_writes = how;
        let out = build(cfg, &progress).unwrap_or_else(|e| panic!("{name}: {e}"));
        (out, progress.0.into_inner().unwrap())
    };
    let direct_said = |said: &[String]| {
        said.iter()
            .filter(|s| s.starts_with("shards written while deciding"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let again = "stage decide again (content not in content_id order)".to_owned();

    // Content in id order: shards written while deciding, with room and with 1 MiB (finished
    // streams then wait for the writer before a thread takes the next one).
    let (direct, said) = run(&content, "direct", 2048, cg_build::ShardWrites::Auto);
    assert_eq!(direct_said(&said), ["shards written while deciding: 1"]);
    let streams = said
        .iter()
        .find_map(|s| s.strip_prefix("pass streams with rows: "))
        .map(|n| n.parse::<u64>().unwrap());
    assert!(streams > Some(4), "{said:?}");
    assert!(!said.contains(&again));
    let (tight, said) = run(&content, "tight", 1, cg_build::ShardWrites::Auto);
    assert_eq!(direct_said(&said), ["shards written while deciding: 1"]);
    assert!(!said.contains(&again));
    // The spools, spilling runs and merging them.
    let (spooled, said) = run(&content, "spooled", 1, cg_build::ShardWrites::Spool);
    assert_eq!(direct_said(&said), ["shards written while deciding: 0"]);
    for other in [&tight, &spooled] {
        assert_eq!(other.manifest.dataset_id, direct.manifest.dataset_id);
        assert_eq!(other.manifest.shards, direct.manifest.shards);
        assert_eq!(other.manifest.decisions, direct.manifest.decisions);
        assert_eq!(other.manifest.counts, direct.manifest.counts);
    }

    // The same rows in reverse: the first pair of rows is out of order, the pass runs again
    // with the spools, and the shards and the record are the same files.
    let (from_reversed, said) = run(
        &reversed_path,
        "reversed",
        2048,
        cg_build::ShardWrites::Auto,
    );
    assert_eq!(
        direct_said(&said),
        [
            "shards written while deciding: 1",
            "shards written while deciding: 0"
        ]
    );
    assert!(said.contains(&again));
    assert_eq!(from_reversed.manifest.shards, direct.manifest.shards);
    assert_eq!(from_reversed.manifest.decisions, direct.manifest.decisions);
    assert_eq!(from_reversed.manifest.counts, direct.manifest.counts);
    // Nothing of the abandoned attempt is left: only finished shards, no partial files.
    let names: Vec<String> = std::fs::read_dir(from_reversed.dir.join("shards"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| n.ends_with(".parquet")),
        "only finished shards: {names:?}"
    );
    verify_with_key(&direct);
    verify_with_key(&from_reversed);
}
