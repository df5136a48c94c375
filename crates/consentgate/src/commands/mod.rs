//! One module per command.

pub mod args;
pub mod consent;
pub mod generate;
pub mod policy;
pub mod redact;
