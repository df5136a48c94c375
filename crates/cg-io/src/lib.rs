//! # cg-io — the input contract on disk
//!
//! consentgate's inputs (members, residences, consent events, notices, erasures, content) are
//! tables in Parquet, CSV or JSONL, chosen by file extension. This crate owns:
//!
//! - [`schema`]: the Arrow schema of each input table (ARCHITECTURE.md, input contract);
//! - [`Format`]: the format of a path, from its extension;
//! - [`TableWriter`]: one writer over the three formats, publishing each file atomically
//!   (`<name>.partial`, fsync, rename);
//! - [`read_table`]: one reader over the three formats that conforms a file to its contract and
//!   names the file, row and column of any violation ([`schema::contract`] per table).
//!
//! ```no_run
//! use cg_io::{schema, Format, TableWriter};
//! let mut w = TableWriter::create("members.parquet".as_ref(), schema::members()).unwrap();
//! // w.write(&batch)?; ...
//! w.finish().unwrap();
//! ```
//!
//! CSV cannot hold lists: a `list<int64>` column (content `mentions`) is written as its values
//! joined by `;` (`"17;42"`), and read back the same way.

#![deny(missing_docs)]

mod columns;
mod reader;
pub mod schema;
mod writer;

use std::path::{Path, PathBuf};

pub use reader::{Contract, ReadError, Utf8Check, check_utf8, read_table};
pub use writer::{TableWriter, WriteOptions, Written};

/// Creates `dir` and missing parents readable by the owner only (0700 on Unix); an existing
/// directory is left as it is. For directories that hold personal data or keys (the ledger,
/// the log key).
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// A table file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Apache Parquet (`.parquet`).
    Parquet,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`).
    Jsonl,
}

impl Format {
    /// The format named by `path`'s extension.
    pub fn from_path(path: &Path) -> Result<Format, IoError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Ok(Format::Parquet),
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            _ => Err(IoError::UnknownFormat {
                path: path.to_owned(),
            }),
        }
    }

    /// Parses a format name (`parquet`, `csv`, `jsonl`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// The canonical extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Errors reading or writing table files. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The extension names no supported format.
    #[error("cannot tell the format of `{}`: use .parquet, .csv or .jsonl", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// An operating-system error on a file.
    #[error("{action} `{}`", path.display())]
    File {
        /// What was being done (`cannot create`, `cannot write`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An Arrow error while encoding or decoding a file.
    #[error("cannot encode `{}`", path.display())]
    Arrow {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A Parquet error while encoding or decoding a file.
    #[error("cannot encode `{}` as Parquet", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_extensions() {
        assert_eq!(
            Format::from_path("a/b.parquet".as_ref()).unwrap(),
            Format::Parquet
        );
        assert_eq!(Format::from_path("b.CSV".as_ref()).unwrap(), Format::Csv);
        assert_eq!(
            Format::from_path("b.ndjson".as_ref()).unwrap(),
            Format::Jsonl
        );
        let err = Format::from_path("b.xlsx".as_ref())
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.xlsx"), "{err}");
        assert_eq!(Format::from_name("JSONL"), Some(Format::Jsonl));
        assert_eq!(Format::from_name("avro"), None);
    }
}
