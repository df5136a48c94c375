//! Integration tests of `cg-build` on generated corpora, through its public API.

// Test helpers outside `#[test]` functions: a failed fixture should stop the test at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pass;
