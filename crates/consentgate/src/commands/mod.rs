//! One module per command.

pub mod args;
pub mod build;
pub mod consent;
pub mod generate;
pub mod policy;
pub mod redact;
