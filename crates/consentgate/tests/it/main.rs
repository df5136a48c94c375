//! consentgate's integration tests, one binary (link time matters on 2 cores).
//! Each module is an area; read this list as the table of contents.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod architecture;
mod browser;
mod build;
mod cli;
mod consent;
#[cfg(feature = "ballista")]
mod distributed;
mod generate;
mod object_store;
mod paths;
mod policy;
mod prove;
mod redact;
mod reference;
mod reports;
mod transparency;
mod util;
mod withdrawal;
