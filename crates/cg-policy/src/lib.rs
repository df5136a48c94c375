//! # cg-policy — the gate's brain
//!
//! Data-use rules are written in the [Cedar](https://www.cedarpolicy.com) policy language and
//! evaluated behind consentgate's own types:
//!
//! - the bundled schema and policies (`policies/`): `common.cedar` (rules of every regime) and
//!   one file per regime (`li-2024-pre`, `li-2024-09`, `li-2025-11`, `strict-optin`); regime
//!   *dates* are data (`cg_model::regime` plus custom regimes in the [`PolicyConfig`]), regime
//!   *rules* are Cedar policies guarded by `context.regimes.contains("<id>")`;
//! - [`Policy`]: loaded, validated against the schema (errors **and** warnings fail, with
//!   source spans naming the file), content-hashed, named; every policy carries `@id` and a
//!   `@reason` naming its reason code;
//! - [`Tuple`]: the discrete attributes a decision depends on, packed into a `u64`;
//! - [`Engine`]: the compiled decision engine every path uses — member facts
//!   ([`cg_model::MemberFacts`]) are compiled once per member, Cedar runs once per distinct
//!   tuple ([`DecisionMemo`]), and a decision is then a lookup in a per-thread [`Decider`];
//! - fail closed: a Cedar error, a default deny, or a missing regime is `policy_error`.
//!
//! ```
//! use cg_policy::{Policy, PolicyConfig, EvalContext, ItemFacts, MemberView};
//! use cg_model::{Decision, Purpose, Timestamp};
//!
//! let policy = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
//! let ctx = EvalContext { purpose: Purpose::genai_training(), as_of: Timestamp::parse("2025-03-01").unwrap() };
//! let member = MemberView {
//!     country_at_creation: Some("FR"),
//!     country_at_cutoff: Some("FR"),
//!     birth_date: Some(time::macros::date!(1990 - 01 - 01)),
//!     ..Default::default()
//! };
//! let item = ItemFacts { kind: "post", created_at: Timestamp::parse("2025-01-01").unwrap(), member: Some(member) };
//! let e = policy.explain(&item, &ctx);
//! assert_eq!(e.decision, Decision::Exclude);
//! assert_eq!(e.reasons[0].as_str(), "region_suspended");
//! assert_eq!(e.regime.as_deref(), Some("li-2024-09"));
//! ```

#![deny(missing_docs)]

mod compiled;
pub mod config;
mod engine;
mod error;
pub mod facts;
pub mod request;

pub use compiled::{
    CompiledMember, Decider, DeciderCache, DecisionMemo, Engine, decision_of, most_protective_code,
    verdict_of, with_mention_redacted,
};
pub use config::PolicyConfig;
pub use engine::{
    BUNDLED_FILES, BUNDLED_NAMES, Decided, EvalContext, Explanation, Policy, PolicyRecipe,
    RegimeSpec, SCHEMA, SourceFile, most_protective,
};
pub use error::{InvalidPolicy, PolicyError, Problem};
pub use facts::{ConsentClass, ItemFacts, MemberView, NoticeState, Tuple};
pub use request::{ConsentInput, EventInput, ExplainRequest};
