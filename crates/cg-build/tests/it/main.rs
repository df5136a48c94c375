//! Integration tests of `cg-build` on generated corpora, through its public API.

mod pass;
