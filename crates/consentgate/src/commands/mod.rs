//! One module per command.

pub mod generate;
