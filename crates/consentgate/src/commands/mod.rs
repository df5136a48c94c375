//! One module per command.

pub mod args;
pub mod build;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod consent;
pub mod dataset;
pub mod generate;
pub mod keys;
pub mod log;
pub mod policy;
pub mod prove;
pub mod receipt;
pub mod redact;
pub mod report;
pub mod serve;
pub mod withdrawal;
