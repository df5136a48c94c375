//! Arrow schemas of the input tables (ARCHITECTURE.md, input contract).
//!
//! Timestamps are `Timestamp(Microsecond, "+00:00")` (UTC; an offset, so no tz database is needed), dates `Date32`, ids `Int64`.
//! Columns the contract marks optional are nullable here.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The timestamp type used for every instant: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}

/// `members`: one row per member.
pub fn members() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, true),
        Field::new("birth_date", DataType::Date32, true),
        ts("created_at", true),
        ts("closed_at", true),
        Field::new("display_name", DataType::Utf8, true),
        Field::new("handle", DataType::Utf8, true),
    ]))
}

/// `residences`: residence history (`country` holds from `valid_from`).
pub fn residences() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, true),
        ts("valid_from", false),
    ]))
}

/// `consent events`.
pub fn consent_events() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, true),
        Field::new("member_id", DataType::Int64, false),
        Field::new("purpose", DataType::Utf8, false),
        Field::new("granted", DataType::Boolean, false),
        ts("ts", false),
        Field::new("source", DataType::Utf8, true),
        Field::new("notice_version", DataType::Utf8, true),
    ]))
}

/// `notices`: privacy notices delivered to members.
pub fn notices() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("notice_version", DataType::Utf8, false),
        ts("delivered_at", false),
    ]))
}

/// `erasures`: erasure requests.
pub fn erasures() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        ts("ts", false),
    ]))
}

/// The item type of the `mentions` list.
pub fn mentions_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)))
}

/// `content`: member content items.
pub fn content() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("content_id", DataType::Int64, false),
        Field::new("member_id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        ts("created_at", false),
        Field::new("text", DataType::Utf8, false),
        Field::new("mentions", mentions_type(), true),
    ]))
}

/// Ground truth of the PII the generator inserted: character offsets (Unicode scalar values)
/// into `content.text`, end exclusive.
pub fn pii_spans() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("content_id", DataType::Int64, false),
        Field::new("start", DataType::Int64, false),
        Field::new("end", DataType::Int64, false),
        Field::new("type", DataType::Utf8, false),
    ]))
}

/// The ledger's as-of snapshot for one purpose (`consent export`, build input via `--store`):
/// one row per member with at least one event up to the cut-off.
pub fn consent_snapshot() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("member_id", DataType::Int64, false),
        Field::new("granted", DataType::Boolean, true),
        ts("decided_at", true),
        Field::new("source", DataType::Utf8, true),
        Field::new("notice_version", DataType::Utf8, true),
        Field::new("event_seq", DataType::Int64, true),
        ts("gpc_at", true),
        Field::new("other_purpose_grant", DataType::Boolean, false),
    ]))
}

/// The contract of each input table by name (`members`, `residences`, `consent`, `notices`,
/// `erasures`, `content`): schema and required columns.
pub fn contract(table: &str) -> Option<crate::Contract> {
    let (table, schema, required): (&'static str, SchemaRef, &'static [&'static str]) = match table
    {
        "members" => (
            "members",
            members(),
            &["member_id", "country", "birth_date"],
        ),
        "residences" => (
            "residences",
            residences(),
            &["member_id", "country", "valid_from"],
        ),
        "consent" => (
            "consent",
            consent_events(),
            &["member_id", "purpose", "granted", "ts"],
        ),
        "notices" => (
            "notices",
            notices(),
            &["member_id", "notice_version", "delivered_at"],
        ),
        "erasures" => ("erasures", erasures(), &["member_id", "ts"]),
        "content" => (
            "content",
            content(),
            &["content_id", "member_id", "kind", "created_at", "text"],
        ),
        _ => return None,
    };
    Some(crate::Contract {
        table,
        schema,
        required,
    })
}
