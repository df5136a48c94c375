//! What a published dataset holds, read from its own files: the manifest (and its SHA-256, the
//! digest the transparency log records), whether every file still matches it, and a summary
//! of the kept content read from the shards (rows and text bytes per kind, the period the
//! content was created in, redaction placeholders per entity type).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use cg_model::Timestamp;
use cg_model::manifest::Manifest;
use cg_proof::commitment::DatasetCommitment;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ReportError;

/// Bytes of UTF-8 text per token in the estimate every document states: a common rule of
/// thumb for English byte-pair-encoding tokenizers (about four characters per token).
pub const BYTES_PER_TOKEN: u64 = 4;

/// How documents say tokens were estimated.
pub const TOKEN_METHOD: &str = "UTF-8 bytes of the redacted text divided by 4 (about four characters per token for English byte-pair-encoding tokenizers); an estimate, not a tokenizer's count";

/// Kept rows of one content kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindStats {
    /// Rows in the shards.
    pub rows: u64,
    /// UTF-8 bytes of their (redacted) text.
    pub text_bytes: u64,
}

/// The content in a dataset's shards.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeptContent {
    /// By content kind.
    pub kinds: BTreeMap<String, KindStats>,
    /// The earliest `created_at` of a kept row.
    pub created_from: Option<String>,
    /// The latest `created_at` of a kept row.
    pub created_until: Option<String>,
    /// Redaction placeholders in the text, by entity type (`EMAIL`, `PHONE`, ...).
    pub placeholders: BTreeMap<String, u64>,
}

impl KeptContent {
    /// Rows in the shards.
    pub fn rows(&self) -> u64 {
        self.kinds.values().map(|k| k.rows).sum()
    }

    /// Bytes of text in the shards.
    pub fn text_bytes(&self) -> u64 {
        self.kinds.values().map(|k| k.text_bytes).sum()
    }

    /// The token estimate ([`TOKEN_METHOD`]).
    pub fn tokens_estimate(&self) -> u64 {
        self.text_bytes().div_ceil(BYTES_PER_TOKEN)
    }
}

/// A dataset as a document sees it.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetFacts {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// SHA-256 of `manifest.json` (what the transparency log records).
    pub manifest_sha256: String,
    /// What `dataset verify` finds wrong (empty: every file matches the manifest).
    pub problems: Vec<String>,
    /// The kept content.
    pub kept: KeptContent,
}

impl DatasetFacts {
    /// Reads a dataset directory: its manifest, a verification against it, and its shards.
    pub fn read(dir: &Path) -> Result<DatasetFacts, ReportError> {
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path).map_err(|e| ReportError::io(&path, e))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| ReportError::invalid(&path, format!("not a manifest: {e}")))?;
        let problems = check_files(dir, &manifest).problems;
        let mut kept = KeptContent::default();
        let (mut from, mut until) = (i64::MAX, i64::MIN);
        for shard in &manifest.shards {
            read_shard(&dir.join(&shard.file), &mut kept, &mut from, &mut until)?;
        }
        if from <= until {
            kept.created_from = Some(Timestamp::from_micros(from).to_string());
            kept.created_until = Some(Timestamp::from_micros(until).to_string());
        }
        Ok(DatasetFacts {
            dir: dir.to_owned(),
            manifest_sha256: hex(&Sha256::digest(&bytes)),
            manifest,
            problems,
            kept,
        })
    }

    /// Whether every file matches the manifest.
    pub fn verifies(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What [`check_files`] found.
#[derive(Debug, Default)]
pub struct FileCheck {
    /// Everything that does not match the manifest (empty: the dataset is sound).
    pub problems: Vec<String>,
    /// The member commitment, when it could be read.
    pub commitment: Option<DatasetCommitment>,
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex(&h.finalize()))
}

fn parquet_rows(path: &Path) -> Result<u64, String> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let f = File::open(path).map_err(|e| e.to_string())?;
    let r = SerializedFileReader::new(f).map_err(|e| e.to_string())?;
    Ok(r.metadata().file_metadata().num_rows().max(0) as u64)
}

/// Checks a dataset directory against its manifest: every shard's and the decision record's
/// SHA-256 and row count, the dataset card's and the member commitment's SHA-256, the
/// commitment's root and size, and that no shard is there that the manifest does not list.
pub fn check_files(dir: &Path, m: &Manifest) -> FileCheck {
    let mut problems = Vec::new();
    let check = |problems: &mut Vec<String>, file: &str, sha: &str, rows: Option<u64>| {
        let path = dir.join(file);
        match sha256_file(&path) {
            Ok(got) if got == sha => {}
            Ok(_) => problems.push(format!("{file}: SHA-256 differs from the manifest")),
            Err(e) => problems.push(format!("{file}: cannot read it: {e}")),
        }
        if let Some(expected) = rows {
            match parquet_rows(&path) {
                Ok(n) if n == expected => {}
                Ok(n) => problems.push(format!("{file}: {n} rows, the manifest says {expected}")),
                Err(e) => problems.push(format!("{file}: not readable Parquet: {e}")),
            }
        }
    };
    for s in &m.shards {
        check(&mut problems, &s.file, &s.sha256, Some(s.rows));
    }
    check(
        &mut problems,
        &m.decisions.file,
        &m.decisions.sha256,
        Some(m.decisions.rows),
    );
    if let Some(card) = &m.card {
        check(&mut problems, &card.file, &card.sha256, None);
    }
    if m.shards.len() != m.shard_count as usize {
        problems.push(format!(
            "the manifest lists {} shards, shard_count is {}",
            m.shards.len(),
            m.shard_count
        ));
    }
    let listed: std::collections::BTreeSet<&str> =
        m.shards.iter().map(|s| s.file.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("shards")) {
        let mut unlisted: Vec<String> = entries
            .flatten()
            .map(|e| format!("shards/{}", e.file_name().to_string_lossy()))
            .filter(|rel| !listed.contains(rel.as_str()))
            .collect();
        unlisted.sort();
        for rel in unlisted {
            problems.push(format!("{rel}: not listed in the manifest"));
        }
    }
    let mut commitment = None;
    match &m.member_commitment {
        None => problems.push("the manifest has no member commitment".into()),
        Some(c) => {
            check(&mut problems, &c.file, &c.sha256, None);
            if m.member_commitment_root.as_deref() != Some(c.root.as_str()) {
                problems.push("member_commitment_root differs from member_commitment.root".into());
            }
            match std::fs::read(dir.join(&c.file))
                .map_err(|e| e.to_string())
                .and_then(|b| DatasetCommitment::decode(&b).map_err(|e| e.to_string()))
            {
                Err(e) => problems.push(format!("{}: {e}", c.file)),
                Ok(tree) => {
                    if cg_proof::hex(&tree.root()) != c.root {
                        problems.push(format!("{}: its root differs from the manifest", c.file));
                    }
                    if tree.scheme() != c.key_scheme {
                        problems.push(format!(
                            "{}: a {} file, the manifest says {}",
                            c.file,
                            tree.scheme(),
                            c.key_scheme
                        ));
                    }
                    let (what, announced) = match &tree {
                        DatasetCommitment::Roster(_) => ("roster members", c.roster_members),
                        DatasetCommitment::Intervals(_) => ("members", c.members),
                    };
                    if tree.entries() != announced {
                        problems.push(format!(
                            "{}: {} {what}, the manifest says {announced}",
                            c.file,
                            tree.entries(),
                        ));
                    }
                    commitment = Some(tree);
                }
            }
        }
    }
    FileCheck {
        problems,
        commitment,
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_shard(
    path: &Path,
    kept: &mut KeptContent,
    from: &mut i64,
    until: &mut i64,
) -> Result<(), ReportError> {
    let bad = |e: &dyn std::fmt::Display| ReportError::invalid(path, e.to_string());
    let f = File::open(path).map_err(|e| ReportError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(&e))?;
    let schema = builder.parquet_schema();
    let wanted: Vec<usize> = ["kind", "created_at", "text"]
        .iter()
        .map(|name| {
            (0..schema.num_columns())
                .find(|i| schema.column(*i).name() == *name)
                .ok_or_else(|| bad(&format!("no column `{name}`")))
        })
        .collect::<Result<_, _>>()?;
    let mask = ProjectionMask::leaves(schema, wanted);
    let reader = builder.with_projection(mask).build().map_err(|e| bad(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| bad(&e))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad(&format!("no column `{name}`")))
        };
        let kinds = column("kind")?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad(&"`kind` is not a string column"))?;
        let texts = column("text")?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad(&"`text` is not a string column"))?;
        let created = column("created_at")?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| bad(&"`created_at` is not a timestamp column"))?;
        for i in 0..batch.num_rows() {
            let kind = if kinds.is_valid(i) {
                kinds.value(i)
            } else {
                ""
            };
            let text = if texts.is_valid(i) {
                texts.value(i)
            } else {
                ""
            };
            match kept.kinds.get_mut(kind) {
                Some(k) => {
                    k.rows += 1;
                    k.text_bytes += text.len() as u64;
                }
                None => {
                    kept.kinds.insert(
                        kind.to_owned(),
                        KindStats {
                            rows: 1,
                            text_bytes: text.len() as u64,
                        },
                    );
                }
            }
            if created.is_valid(i) {
                *from = (*from).min(created.value(i));
                *until = (*until).max(created.value(i));
            }
            count_placeholders(text, &mut kept.placeholders);
        }
    }
    Ok(())
}

/// Counts the engine's placeholders (`<EMAIL>`, or a pseudonym `<EMAIL_1a2b3c4d>`) of the
/// built-in entity types in a redacted text.
pub fn count_placeholders(text: &str, counts: &mut BTreeMap<String, u64>) {
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let inner = &rest[..close];
        let name = match inner.rsplit_once('_') {
            Some((name, tag))
                if !tag.is_empty()
                    && tag.bytes().all(|b| b.is_ascii_hexdigit())
                    && is_type(name) =>
            {
                name
            }
            _ => inner,
        };
        if is_type(name) {
            match counts.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(name.to_owned(), 1);
                }
            }
            rest = &rest[close + 1..];
        }
    }
}

fn is_type(name: &str) -> bool {
    cg_redact::EntityType::BUILT_IN
        .iter()
        .any(|t| t.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_counted_by_type_and_other_brackets_are_not() {
        let mut c = BTreeMap::new();
        count_placeholders(
            "mail <EMAIL> or <EMAIL_0a1b> call <PHONE>, <b>bold</b> <IP_ADDRESS> <PERSON><PERSON> <NOPE> <",
            &mut c,
        );
        let got: Vec<(&str, u64)> = c.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            got,
            vec![("EMAIL", 2), ("IP_ADDRESS", 1), ("PERSON", 2), ("PHONE", 1)]
        );
    }

    #[test]
    fn tokens_are_estimated_from_bytes_rounding_up() {
        let mut k = KeptContent::default();
        k.kinds.insert(
            "post".into(),
            KindStats {
                rows: 2,
                text_bytes: 9,
            },
        );
        assert_eq!(k.tokens_estimate(), 3);
        assert_eq!(k.rows(), 2);
    }
}
