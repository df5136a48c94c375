//! # cg-synth — a deterministic synthetic corpus in the input contract
//!
//! `consentgate generate` and every benchmark use this corpus: members across ~60 countries
//! weighted like a global professional network (with territory codes, unknown and invalid
//! codes, missing birth dates, minors, moves, closed accounts), their consent events (grants,
//! withdrawals, objections, GPC signals, other purposes, events after typical cut-offs),
//! notices, erasure requests, and content of every kind whose English text carries personal
//! data at known offsets (the `pii_spans` ground truth).
//!
//! Every row is a pure function of `(seed, id)` through a fixed generator ([`rng`]), so the
//! same seed yields the same bytes on any machine and generation streams in bounded memory.
//!
//! ```no_run
//! use cg_synth::{CorpusConfig, generate};
//! let cfg = CorpusConfig { members: 1000, content: 10_000, seed: 7, format: cg_io::Format::Parquet };
//! let summary = generate(&cfg, "corpus".as_ref(), &cg_model::progress::NoProgress).unwrap();
//! assert_eq!(summary.tables.len(), 7);
//! ```

#![deny(missing_docs)]

pub mod content;
mod corpus;
pub mod members;
pub mod pii;
pub mod rng;
mod vocab;

pub use corpus::{CORPUS_VERSION, CorpusConfig, CorpusSummary, SynthError, TableSummary, generate};
