//! cg-policy's integration tests, one binary. Areas:
//! - `scenarios`: the decision scenarios in `tests/scenarios/*.scen`;
//! - `rejection`: invalid policies are rejected with spans naming the file;
//! - `differential`: the memoised table equals direct Cedar evaluation on random items;
//! - `hashing`: content hashes name every policy version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod differential;
mod hashing;
mod rejection;
mod scenarios;
