//! # cg-prove — machine-checked policy comparisons
//!
//! `consentgate policy prove --old P1 --new P2` asks whether a policy change admits anything
//! the old policy denied, for **every** member, item, purpose and time, not just today's data.
//! Cedar's symbolic compiler ([`cedar_policy_symcc`]) encodes both policy sets into SMT and the
//! cvc5 solver decides the implication "new includes ⇒ old included"; a counterexample is read
//! back as a concrete member, item and cut-off and replayed through the normal decision engine
//! ([`cg_policy::Policy::explain`]) under both policies.
//!
//! The two policies are compared *as the gate applies them* ([`model`]): each side's config
//! (minimum age, kinds, territory flags, notice window, accepted notice versions) and regime
//! timeline (a pinned regime at every instant; the timeline's regimes in their periods) become
//! that side's copies of the derived attributes, defined from shared raw facts by assumptions
//! the report lists. Fail closed: any error, timeout or `unknown` from the solver is a
//! [`ProveError`], never a proof.
//!
//! ```no_run
//! use cg_policy::{Policy, PolicyConfig};
//! use cg_prove::{Check, Comparison, SolverConfig};
//!
//! let old = Policy::bundled("li-2025-11", PolicyConfig::default()).unwrap();
//! let new = Policy::bundled("li-2024-09", PolicyConfig::default()).unwrap();
//! let report = Comparison { old: &old, new: &new, purpose: None, checks: &[Check::NothingNewAdmitted] }
//!     .run(&SolverConfig::default())
//!     .unwrap();
//! assert!(report.all_proved()); // re-suspending admits nothing new
//! ```

#![deny(missing_docs)]

mod error;
pub mod model;
mod prove;
mod replay;
mod rewrite;
mod solver;

pub use error::ProveError;
pub use model::{Assumption, Side};
pub use prove::{Check, CheckResult, Comparison, Outcome, Period, PolicyRef, Report};
pub use replay::{Counterexample, ExampleEvent, ExampleItem, ExampleMember, RawFacts, Replay};
pub use solver::{SolverConfig, SolverInfo};
