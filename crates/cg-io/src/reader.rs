//! [`read_table`]: reads an input-contract table in any of the three formats and conforms it to
//! the contract's schema: required columns present, types converted only where lossless
//! (`Int32`→`Int64`, `Utf8View`/`LargeUtf8`/dictionary→`Utf8`, any timestamp unit or zone →µs
//! UTC, text parsed strictly, `;`-joined text → `list<int64>` for CSV), nulls refused in
//! non-nullable columns. A column of the wrong type (an integer `ts`, a float `member_id`, an
//! integer `granted`) is an error, never a cast. JSONL columns come from the contract, not from
//! the first lines. Errors name the file, the row (1-based, data rows) and the column.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, ListBuilder, RecordBatch, new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::FormatOptions;

use crate::Format;

/// A table that does not follow the contract, or cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or decoded.
    #[error("cannot read `{}`: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A required column is missing.
    #[error("`{}`: missing column `{column}` (the {table} table needs {required})", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The column.
        column: String,
        /// All required columns.
        required: String,
    },
    /// A value does not fit its column's type, or a required value is null.
    #[error("`{}`: row {row}, column `{column}`: {message}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// 1-based data row.
        row: u64,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
}

impl ReadError {
    /// The same error naming `to` where it named the file `from` (a local copy of an object
    /// names the object).
    pub fn renamed(self, from: &Path, to: &Path) -> ReadError {
        let swap = |p: PathBuf| if p == from { to.to_owned() } else { p };
        match self {
            ReadError::File { path, message } => ReadError::File {
                path: swap(path),
                message,
            },
            ReadError::MissingColumn {
                path,
                table,
                column,
                required,
            } => ReadError::MissingColumn {
                path: swap(path),
                table,
                column,
                required,
            },
            ReadError::BadValue {
                path,
                row,
                column,
                message,
            } => ReadError::BadValue {
                path: swap(path),
                row,
                column,
                message,
            },
        }
    }
}

/// Checks that a CSV file is valid UTF-8, streaming (1 MiB at a time). Arrow's CSV reader
/// validates the bytes of a batch's fields concatenated, not each field: a multi-byte sequence
/// split by a delimiter (`\xd8,\x9c`) passes, and the two fields become `&str`s that are not
/// UTF-8 (undefined behaviour; found by the `table_csv` fuzz target). In a file that is valid
/// UTF-8 as a whole no field can be invalid (delimiters, quotes and newlines are ASCII), so
/// every CSV input is checked first. The error names the line.
pub fn check_utf8(path: &Path) -> Result<(), ReadError> {
    use std::io::Read;
    let mut file = File::open(path).map_err(|e| ReadError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mut check = Utf8Check::new(path);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| ReadError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if n == 0 {
            return check.finish();
        }
        check.feed(&buf[..n])?;
    }
}

/// [`check_utf8`] over bytes that arrive in chunks of any size (a file read, or an object
/// streamed from a store): [`Utf8Check::feed`] each chunk, then [`Utf8Check::finish`].
#[derive(Debug)]
pub struct Utf8Check {
    path: PathBuf,
    /// The bytes of a sequence cut by the end of the last chunk (at most 3).
    carried: Vec<u8>,
    /// Lines seen so far, counting the current one.
    line: u64,
}

impl Utf8Check {
    /// A check of the file or object `path` (named in errors).
    pub fn new(path: &Path) -> Utf8Check {
        Utf8Check {
            path: path.to_owned(),
            carried: Vec::new(),
            line: 1,
        }
    }

    /// Checks the next chunk; the error names the line of the first invalid byte.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ReadError> {
        let mut joined;
        let bytes = if self.carried.is_empty() {
            chunk
        } else {
            joined = std::mem::take(&mut self.carried);
            joined.extend_from_slice(chunk);
            &joined[..]
        };
        match std::str::from_utf8(bytes) {
            Ok(_) => {
                self.line += newlines(bytes);
                Ok(())
            }
            // An incomplete sequence at the end: carry it into the next chunk.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                self.line += newlines(&bytes[..valid]);
                self.carried = bytes[valid..].to_vec();
                Ok(())
            }
            Err(e) => {
                self.line += newlines(&bytes[..e.valid_up_to()]);
                Err(self.invalid())
            }
        }
    }

    /// Ends the check: bytes cut off at the end are an error.
    pub fn finish(self) -> Result<(), ReadError> {
        if self.carried.is_empty() {
            Ok(())
        } else {
            Err(self.invalid())
        }
    }

    fn invalid(&self) -> ReadError {
        ReadError::File {
            path: self.path.clone(),
            message: format!(
                "line {} is not valid UTF-8 (CSV input must be UTF-8)",
                self.line
            ),
        }
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

/// Which columns of a contract schema are required (the rest are optional: absent → null).
#[derive(Debug)]
pub struct Contract {
    /// The table's name, for messages.
    pub table: &'static str,
    /// The schema, in output column order.
    pub schema: SchemaRef,
    /// Columns that must be present.
    pub required: &'static [&'static str],
}

/// Reads the whole file as batches conforming to `contract`, calling `f` per batch with the
/// 1-based row number of its first row. Stops at the first violation.
pub fn read_table(
    path: &Path,
    contract: &Contract,
    mut f: impl FnMut(RecordBatch, u64) -> Result<(), ReadError>,
) -> Result<u64, ReadError> {
    let format = Format::from_path(path).map_err(|e| ReadError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    let file_err = |message: String| ReadError::File {
        path: path.to_owned(),
        message,
    };
    let file = File::open(path).map_err(|e| file_err(e.to_string()))?;
    let mut row = 1u64;
    let mut emit = |batch: RecordBatch, row: &mut u64| -> Result<(), ReadError> {
        let n = batch.num_rows() as u64;
        let conformed = conform(path, contract, &batch, *row)?;
        f(conformed, *row)?;
        *row += n;
        Ok(())
    };
    match format {
        Format::Parquet => {
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| file_err(e.to_string()))?
                    .with_batch_size(64 * 1024)
                    .build()
                    .map_err(|e| file_err(e.to_string()))?;
            for batch in reader {
                emit(batch.map_err(|e| file_err(e.to_string()))?, &mut row)?;
            }
        }
        Format::Csv | Format::Jsonl => {
            if format == Format::Csv {
                check_utf8(path)?;
            }
            // Read with the file's own columns as text/JSON types, then conform: the header
            // decides which contract columns are present.
            let schema = source_schema(path, contract, format)?;
            let reader: Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>>> =
                match format {
                    Format::Csv => Box::new(
                        arrow::csv::ReaderBuilder::new(schema)
                            .with_header(true)
                            .with_batch_size(64 * 1024)
                            .build(BufReader::new(file))
                            .map_err(|e| file_err(e.to_string()))?,
                    ),
                    _ => Box::new(
                        arrow::json::ReaderBuilder::new(schema)
                            .with_coerce_primitive(true)
                            .with_batch_size(64 * 1024)
                            .build(BufReader::new(file))
                            .map_err(|e| file_err(e.to_string()))?,
                    ),
                };
            for batch in reader {
                let batch = batch.map_err(|e| file_err(e.to_string()))?;
                emit(batch, &mut row)?;
            }
        }
    }
    Ok(row - 1)
}

/// For CSV and JSONL: the contract's columns that the file has, all read as text (CSV) or with
/// JSON-friendly types, so that conforming reports row and column for bad values.
fn source_schema(path: &Path, contract: &Contract, format: Format) -> Result<SchemaRef, ReadError> {
    let present: Vec<String> = match format {
        Format::Csv => {
            let mut r = arrow::csv::reader::Format::default().with_header(true);
            r = r.with_delimiter(b',');
            let file = File::open(path).map_err(|e| ReadError::File {
                path: path.into(),
                message: e.to_string(),
            })?;
            let (schema, _) =
                r.infer_schema(BufReader::new(file), Some(0))
                    .map_err(|e| ReadError::File {
                        path: path.into(),
                        message: e.to_string(),
                    })?;
            schema.fields().iter().map(|f| f.name().clone()).collect()
        }
        // JSONL: every contract column, whatever the first lines hold (a key that appears only
        // late in the file, such as `event_id`, must not be dropped); absent keys read as null
        // and required ones are then refused row by row.
        _ => contract
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
    };
    let fields: Vec<Field> = contract
        .schema
        .fields()
        .iter()
        .filter(|f| present.iter().any(|p| p == f.name()))
        .map(|f| match (format, f.data_type()) {
            // JSONL lists stay typed; every scalar is read as its text (numbers and booleans
            // coerced) so that conforming is as strict as for CSV: `1.9` is not an integer,
            // `1700000000` is not a time, `2` is not a boolean.
            (Format::Jsonl, t @ DataType::List(_)) => Field::new(f.name(), t.clone(), true),
            _ => Field::new(f.name(), DataType::Utf8, true),
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

fn conform(
    path: &Path,
    contract: &Contract,
    batch: &RecordBatch,
    first_row: u64,
) -> Result<RecordBatch, ReadError> {
    let bad = |row: u64, column: &str, message: String| ReadError::BadValue {
        path: path.to_owned(),
        row,
        column: column.to_owned(),
        message,
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(contract.schema.fields().len());
    for field in contract.schema.fields() {
        let name = field.name();
        let Some(source) = batch.column_by_name(name) else {
            if contract.required.contains(&name.as_str()) {
                return Err(ReadError::MissingColumn {
                    path: path.to_owned(),
                    table: contract.table,
                    column: name.clone(),
                    required: contract.required.join(", "),
                });
            }
            columns.push(new_null_array(field.data_type(), batch.num_rows()));
            continue;
        };
        let converted = convert(source, field.data_type())
            .map_err(|(i, msg)| bad(first_row + i as u64, name, msg))?;
        if !field.is_nullable() && converted.null_count() > 0 {
            let i = (0..converted.len())
                .find(|i| converted.is_null(*i))
                .unwrap_or(0);
            return Err(bad(
                first_row + i as u64,
                name,
                "a value is required".into(),
            ));
        }
        columns.push(converted);
    }
    RecordBatch::try_new(contract.schema.clone(), columns).map_err(|e| ReadError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Whether a column of type `source` may be read as `target` without losing or inventing
/// information. Deliberately narrow: an integer is not a time (epoch seconds read as
/// microseconds would silently backdate an event), a float is not an integer, an integer is not
/// a boolean (`granted = 2`), a number is not text.
fn compatible(source: &DataType, target: &DataType) -> bool {
    use DataType as T;
    let text = |t: &DataType| matches!(t, T::Utf8 | T::LargeUtf8 | T::Utf8View);
    match (source, target) {
        (s, t) if s == t => true,
        (T::Null, _) => true,
        (T::Dictionary(_, v), t) => compatible(v, t),
        (s, _) if text(s) => true,
        (
            T::Int8 | T::Int16 | T::Int32 | T::UInt8 | T::UInt16 | T::UInt32 | T::UInt64,
            T::Int64,
        ) => true,
        // Floats only when every value is a whole number (checked value by value): `7.0` from
        // a writer that turned a nullable integer column into floats is 7; `1.9` is an error.
        (T::Float32 | T::Float64, T::Int64) => true,
        (T::Timestamp(_, _) | T::Date32 | T::Date64, T::Timestamp(_, _)) => true,
        (T::Date64, T::Date32) => true,
        (T::List(f) | T::LargeList(f), T::List(t)) => compatible(f.data_type(), t.data_type()),
        _ => false,
    }
}

/// Casts `source` to `target`; on failure, finds the first row that does not convert.
fn convert(source: &ArrayRef, target: &DataType) -> Result<ArrayRef, (usize, String)> {
    if source.data_type() == target {
        return Ok(source.clone());
    }
    if !compatible(source.data_type(), target) {
        let first = (0..source.len()).find(|i| source.is_valid(*i)).unwrap_or(0);
        return Err((
            first,
            format!(
                "the column holds {} values; the contract wants a {} (no lossy conversion)",
                source.data_type(),
                describe(target)
            ),
        ));
    }
    let source = match source.data_type() {
        DataType::Dictionary(_, v) => {
            arrow::compute::cast(source, v).map_err(|e| (0usize, e.to_string()))?
        }
        _ => source.clone(),
    };
    if let DataType::List(_) = target
        && let Some(text) = as_text(&source)
    {
        return parse_id_lists(&text);
    }
    let text_source = matches!(
        source.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if text_source && *target == DataType::Boolean {
        return parse_booleans(&source);
    }
    if *target == DataType::Int64 {
        if text_source {
            return parse_integers(&source);
        }
        if matches!(source.data_type(), DataType::Float32 | DataType::Float64) {
            return whole_floats(&source);
        }
    }
    let source = if text_source && matches!(target, DataType::Timestamp(_, _)) {
        // Accept RFC 3339 with any offset and bare dates.
        normalise_times(&source)?
    } else {
        source
    };
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    match cast_with_options(&source, target, &strict) {
        Ok(a) => Ok(a),
        Err(_) => {
            let lenient = cast_with_options(&source, target, &CastOptions::default())
                .map_err(|e| (0usize, e.to_string()))?;
            let i = (0..source.len())
                .find(|i| source.is_valid(*i) && lenient.is_null(*i))
                .unwrap_or(0);
            let shown = arrow::util::display::array_value_to_string(&source, i).unwrap_or_default();
            Err((i, format!("`{shown}` is not a valid {}", describe(target))))
        }
    }
}

/// Text to booleans: `true`/`t`/`yes`/`y`/`on`/`1` and `false`/`f`/`no`/`n`/`off`/`0`, in any
/// case; anything else (`2`, `maybe`) is an error rather than a guess.
fn parse_booleans(a: &ArrayRef) -> Result<ArrayRef, (usize, String)> {
    const TRUE: [&str; 6] = ["true", "t", "yes", "y", "on", "1"];
    const FALSE: [&str; 6] = ["false", "f", "no", "n", "off", "0"];
    let text = as_text(a).unwrap_or_default();
    let mut b = arrow::array::BooleanBuilder::with_capacity(text.len());
    for (i, v) in text.iter().enumerate() {
        match v.as_deref().map(str::trim) {
            None | Some("") => b.append_null(),
            Some(s) if TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) => b.append_value(true),
            Some(s) if FALSE.iter().any(|f| s.eq_ignore_ascii_case(f)) => b.append_value(false),
            Some(s) => {
                return Err((
                    i,
                    format!("`{s}` is not a valid {}", describe(&DataType::Boolean)),
                ));
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

/// The magnitude below which every whole `f64` is exact (2^53).
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// One integer written as text: decimal digits with an optional sign, or a whole number
/// written as a decimal (`7.0`, what some writers make of a nullable integer column).
fn parse_integer(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let (int, frac) = s.split_once('.')?;
    if !frac.bytes().all(|c| c == b'0') {
        return None;
    }
    int.parse::<i64>().ok()
}

/// Text to integers ([`parse_integer`]); `1.9`, `1e3`, `abc` are errors.
fn parse_integers(a: &ArrayRef) -> Result<ArrayRef, (usize, String)> {
    let text = as_text(a).unwrap_or_default();
    let mut b = Int64Builder::with_capacity(text.len());
    for (i, v) in text.iter().enumerate() {
        match v.as_deref().map(str::trim) {
            None | Some("") => b.append_null(),
            Some(s) => match parse_integer(s) {
                Some(n) => b.append_value(n),
                None => {
                    return Err((
                        i,
                        format!("`{s}` is not a valid {}", describe(&DataType::Int64)),
                    ));
                }
            },
        }
    }
    Ok(Arc::new(b.finish()))
}

/// Floats to integers when every value is a whole number that a float holds exactly.
fn whole_floats(a: &ArrayRef) -> Result<ArrayRef, (usize, String)> {
    let floats =
        arrow::compute::cast(a, &DataType::Float64).map_err(|e| (0usize, e.to_string()))?;
    let floats = floats.as_primitive::<arrow::datatypes::Float64Type>();
    let mut b = Int64Builder::with_capacity(floats.len());
    for (i, v) in floats.iter().enumerate() {
        match v {
            None => b.append_null(),
            Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < EXACT_F64 => {
                b.append_value(f as i64)
            }
            Some(f) => {
                return Err((
                    i,
                    format!(
                        "`{f}` is not a valid {} (not a whole number)",
                        describe(&DataType::Int64)
                    ),
                ));
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

fn describe(t: &DataType) -> &'static str {
    match t {
        DataType::Int64 => "integer",
        DataType::Boolean => "boolean (true/false)",
        DataType::Date32 => "date (YYYY-MM-DD)",
        DataType::Timestamp(_, _) => "time (RFC 3339 or YYYY-MM-DD text, or a timestamp column)",
        DataType::Utf8 => "text",
        DataType::List(_) => "list of member ids",
        _ => "value",
    }
}

fn as_text(a: &ArrayRef) -> Option<Vec<Option<String>>> {
    match a.data_type() {
        DataType::Utf8 => Some(
            a.as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect(),
        ),
        DataType::LargeUtf8 => Some(
            a.as_string::<i64>()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect(),
        ),
        DataType::Utf8View => Some(
            a.as_string_view()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn parse_id_lists(text: &[Option<String>]) -> Result<ArrayRef, (usize, String)> {
    let mut b = ListBuilder::new(Int64Builder::new());
    for (i, v) in text.iter().enumerate() {
        match v {
            None => b.append_null(),
            Some(s) if s.trim().is_empty() => b.append(true),
            Some(s) => {
                for part in s
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split([';', ','])
                {
                    let id: i64 = part.trim().parse().map_err(|_| {
                        (
                            i,
                            format!("`{s}` is not a list of member ids (e.g. `17;42`)"),
                        )
                    })?;
                    b.values().append_value(id);
                }
                b.append(true);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

fn normalise_times(a: &ArrayRef) -> Result<ArrayRef, (usize, String)> {
    let text = as_text(a).unwrap_or_default();
    let mut b = arrow::array::TimestampMicrosecondBuilder::with_capacity(text.len())
        .with_timezone("+00:00");
    for (i, v) in text.iter().enumerate() {
        match v.as_deref().map(str::trim) {
            None | Some("") => b.append_null(),
            Some(s) => {
                let t = cg_model::Timestamp::parse(s).map_err(|e| (i, e.to_string()))?;
                b.append_value(t.micros());
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn read_all(path: &Path, table: &str) -> Result<Vec<RecordBatch>, ReadError> {
        let mut out = Vec::new();
        read_table(path, &schema::contract(table).unwrap(), |b, _| {
            out.push(b);
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn csv_with_optional_columns_absent_and_times_in_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.csv");
        std::fs::write(&p, "member_id,purpose,granted,ts\n1,genai_training,false,2025-01-10T01:00:00+01:00\n2,genai_training,true,2025-02-01\n").unwrap();
        let b = &read_all(&p, "consent").unwrap()[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema().field(0).name(), "event_id");
        assert_eq!(b.column(0).null_count(), 2);
        let ts = b
            .column(4)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(
            ts.value(0),
            cg_model::Timestamp::parse("2025-01-10").unwrap().micros()
        );
    }

    #[test]
    fn errors_name_file_row_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.csv");
        std::fs::write(&p, "member_id,purpose,granted,ts\n1,genai_training,false,2025-01-10\n2,genai_training,maybe,2025-02-01\n").unwrap();
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(
            e.contains("consent.csv")
                && e.contains("row 2")
                && e.contains("`granted`")
                && e.contains("maybe"),
            "{e}"
        );
        std::fs::write(&p, "member_id,purpose,ts\n1,genai_training,2025-01-10\n").unwrap();
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(e.contains("missing column `granted`"), "{e}");
        std::fs::write(
            &p,
            "member_id,purpose,granted,ts\n1,genai_training,true,last tuesday\n",
        )
        .unwrap();
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(
            e.contains("row 1") && e.contains("`ts`") && e.contains("last tuesday"),
            "{e}"
        );
        std::fs::write(
            &p,
            "member_id,purpose,granted,ts\n,genai_training,true,2025-01-01\n",
        )
        .unwrap();
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(
            e.contains("row 1") && e.contains("`member_id`") && e.contains("required"),
            "{e}"
        );
    }

    #[test]
    fn jsonl_and_parquet_round_trip_with_lists() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("content.jsonl");
        std::fs::write(&p, "{\"content_id\":1,\"member_id\":2,\"kind\":\"post\",\"created_at\":\"2025-01-01T00:00:00Z\",\"text\":\"hi\",\"mentions\":[3,4]}\n").unwrap();
        let b = &read_all(&p, "content").unwrap()[0];
        assert_eq!(b.num_rows(), 1);
        let csv = dir.path().join("content.csv");
        std::fs::write(&csv, "content_id,member_id,kind,created_at,text,mentions\n1,2,post,2025-01-01,hi,3;4\n2,2,post,2025-01-01,yo,\n").unwrap();
        let b = &read_all(&csv, "content").unwrap()[0];
        let lists = b.column(5).as_list::<i32>();
        assert_eq!(lists.value(0).len(), 2);
        assert_eq!(lists.value(1).len(), 0);
        let pq = dir.path().join("content.parquet");
        let mut w = crate::TableWriter::create(&pq, b.schema()).unwrap();
        w.write(b).unwrap();
        w.finish().unwrap();
        assert_eq!(read_all(&pq, "content").unwrap()[0].num_rows(), 2);
    }

    fn parquet_with(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) -> PathBuf {
        let p = dir.join(name);
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let mut w = crate::TableWriter::create(&p, batch.schema()).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        p
    }

    #[test]
    fn wrong_column_types_are_errors_not_casts() {
        use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
        let dir = tempfile::tempdir().unwrap();
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let purposes: ArrayRef = Arc::new(StringArray::from(vec!["genai_training"; 2]));
        let granted: ArrayRef = Arc::new(BooleanArray::from(vec![false, true]));
        // `ts` as epoch seconds: read as microseconds it would backdate a withdrawal to 1970.
        let epoch: ArrayRef = Arc::new(Int64Array::from(vec![1_700_000_000, 1_700_000_100]));
        let p = parquet_with(
            dir.path(),
            "epoch.parquet",
            vec![
                ("member_id", ids.clone()),
                ("purpose", purposes.clone()),
                ("granted", granted.clone()),
                ("ts", epoch),
            ],
        );
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(
            e.contains("epoch.parquet")
                && e.contains("`ts`")
                && e.contains("Int64")
                && e.contains("time"),
            "{e}"
        );
        let ts: ArrayRef = Arc::new(StringArray::from(vec!["2025-01-01", "2025-01-02"]));
        // Whole floats (a nullable integer column some writers turn into floats) are
        // integers; 1.9 is not.
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 1.9]));
        let p = parquet_with(
            dir.path(),
            "float.parquet",
            vec![
                ("member_id", floats),
                ("purpose", purposes.clone()),
                ("granted", granted.clone()),
                ("ts", ts.clone()),
            ],
        );
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(
            e.contains("`member_id`") && e.contains("row 2") && e.contains("1.9"),
            "{e}"
        );
        let whole: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0]));
        let p = parquet_with(
            dir.path(),
            "whole.parquet",
            vec![
                ("member_id", whole),
                ("purpose", purposes.clone()),
                ("granted", granted.clone()),
                ("ts", ts.clone()),
            ],
        );
        assert_eq!(read_all(&p, "consent").unwrap()[0].num_rows(), 2);
        let two: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let p = parquet_with(
            dir.path(),
            "int-granted.parquet",
            vec![
                ("member_id", ids.clone()),
                ("purpose", purposes.clone()),
                ("granted", two),
                ("ts", ts.clone()),
            ],
        );
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(e.contains("`granted`") && e.contains("boolean"), "{e}");
        // Dictionary-encoded text (what many writers produce) is text.
        let dict: ArrayRef = Arc::new(
            vec!["genai_training", "genai_training"]
                .into_iter()
                .collect::<arrow::array::DictionaryArray<arrow::datatypes::Int32Type>>(),
        );
        let p = parquet_with(
            dir.path(),
            "dict.parquet",
            vec![
                ("member_id", ids),
                ("purpose", dict),
                ("granted", granted),
                ("ts", ts),
            ],
        );
        assert_eq!(read_all(&p, "consent").unwrap()[0].num_rows(), 2);
    }

    #[test]
    fn text_values_are_parsed_strictly() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body, column) in [
            (
                "granted.csv",
                "member_id,purpose,granted,ts\n1,genai_training,2,2025-01-01\n",
                "`granted`",
            ),
            (
                "member.csv",
                "member_id,purpose,granted,ts\n1.9,genai_training,true,2025-01-01\n",
                "`member_id`",
            ),
            (
                "member.jsonl",
                "{\"member_id\":1.9,\"purpose\":\"genai_training\",\"granted\":true,\"ts\":\"2025-01-01\"}\n",
                "`member_id`",
            ),
            (
                "epoch.jsonl",
                "{\"member_id\":1,\"purpose\":\"genai_training\",\"granted\":true,\"ts\":1700000000}\n",
                "`ts`",
            ),
            (
                "granted.jsonl",
                "{\"member_id\":1,\"purpose\":\"genai_training\",\"granted\":2,\"ts\":\"2025-01-01\"}\n",
                "`granted`",
            ),
            (
                "missing.jsonl",
                "{\"member_id\":1,\"purpose\":\"genai_training\",\"ts\":\"2025-01-01\"}\n",
                "`granted`",
            ),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            let e = read_all(&p, "consent").unwrap_err().to_string();
            assert!(
                e.contains(name) && e.contains("row 1") && e.contains(column),
                "{name}: {e}"
            );
        }
        let p = dir.path().join("ok.csv");
        std::fs::write(&p, "member_id,purpose,granted,ts\n1,genai_training,TRUE,2025-01-01\n2,genai_training,0,2025-01-01\n7.0,genai_training,yes,2025-01-01\n-4,genai_training,F,2025-01-01\n").unwrap();
        let b = &read_all(&p, "consent").unwrap()[0];
        let g = b.column_by_name("granted").unwrap().as_boolean();
        assert_eq!(
            (0..4).map(|i| g.value(i)).collect::<Vec<_>>(),
            [true, false, true, false]
        );
        let ids = b
            .column_by_name("member_id")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(ids.values().to_vec(), [1, 2, 7, -4]);
    }

    #[test]
    fn jsonl_columns_come_from_the_contract_not_the_first_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.jsonl");
        let mut body = String::new();
        for i in 0..1500 {
            body.push_str(&format!(
                "{{\"member_id\":{i},\"purpose\":\"genai_training\",\"granted\":true,\"ts\":\"2025-01-01\"}}\n"
            ));
        }
        body.push_str("{\"member_id\":9,\"purpose\":\"genai_training\",\"granted\":false,\"ts\":\"2025-02-01\",\"event_id\":777,\"source\":\"app\"}\n");
        std::fs::write(&p, body).unwrap();
        let batches = read_all(&p, "consent").unwrap();
        let last = batches.last().unwrap();
        let ids = last
            .column_by_name("event_id")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(ids.value(last.num_rows() - 1), 777);
        let sources = last.column_by_name("source").unwrap().as_string::<i32>();
        assert_eq!(sources.value(last.num_rows() - 1), "app");
    }

    #[test]
    fn a_csv_that_is_not_utf8_is_refused_before_arrow_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("consent.csv");
        // `\xd8,\x9c` is valid UTF-8 once the comma is taken out (what Arrow validated), and
        // two invalid fields with it in.
        let mut body = b"member_id,purpose,granted,ts\n".to_vec();
        body.extend_from_slice(b"\xd8,\x9cenai_training,false,2025-01-10\n");
        std::fs::write(&p, &body).unwrap();
        let e = read_all(&p, "consent").unwrap_err().to_string();
        assert!(
            e.contains("consent.csv") && e.contains("line 2") && e.contains("UTF-8"),
            "{e}"
        );
        // Valid multi-byte text across the 1 MiB read boundary is fine.
        let mut big = String::from("member_id,purpose,granted,ts\n");
        while big.len() < (1 << 20) + 10 {
            big.push_str("1,genai_training,true,2025-01-01\n");
            big.push('#');
            big.push_str("é€😀\n");
        }
        let q = dir.path().join("text.csv");
        std::fs::write(&q, &big).unwrap();
        check_utf8(&q).unwrap();
    }

    #[test]
    fn the_utf8_check_finds_the_same_line_whatever_the_chunks() {
        // Line 4 holds a byte that is never UTF-8.
        let mut bytes = b"id,text\n1,caf".to_vec();
        bytes.extend_from_slice("\u{e9}\n2,\u{1F600} ok\n3,bad ".as_bytes());
        bytes.extend_from_slice(b"\xff\n");
        for size in [1, 2, 3, 5, 64] {
            let mut check = Utf8Check::new(Path::new("s3://b/content.csv"));
            let err = bytes
                .chunks(size)
                .try_for_each(|c| check.feed(c))
                .map(|()| check.finish())
                .and_then(|r| r)
                .unwrap_err()
                .to_string();
            assert!(err.contains("line 4 is not valid UTF-8"), "{size}: {err}");
            assert!(err.contains("s3://b/content.csv"), "{err}");
        }
        let good = "a,b\n\u{1F600},\u{e9}\n".as_bytes();
        for size in [1, 2, 3] {
            let mut check = Utf8Check::new(Path::new("x.csv"));
            good.chunks(size).for_each(|c| check.feed(c).unwrap());
            check.finish().unwrap();
        }
        // Cut off inside a sequence at the very end.
        let mut check = Utf8Check::new(Path::new("x.csv"));
        check.feed(&"a\u{1F600}".as_bytes()[..3]).unwrap();
        assert!(check.finish().is_err());
    }

    #[test]
    fn a_renamed_error_names_the_object() {
        let e = ReadError::BadValue {
            path: "/tmp/copy/members.csv".into(),
            row: 3,
            column: "member_id".into(),
            message: "not an integer".into(),
        }
        .renamed(
            Path::new("/tmp/copy/members.csv"),
            Path::new("s3://b/members.csv"),
        );
        assert_eq!(
            e.to_string(),
            "`s3://b/members.csv`: row 3, column `member_id`: not an integer"
        );
    }
}
