//! # cg-model — consentgate's vocabulary
//!
//! The types every other crate speaks, with no I/O and no async:
//!
//! - [`ids`]: [`MemberId`], [`ContentId`], [`EventId`];
//! - [`instant`]: [`Timestamp`] (UTC, µs) and date helpers; RFC 3339 or bare dates everywhere;
//! - [`purpose`]: [`Purpose`] (`genai_training`, ...) and [`ContentKind`], validated names;
//! - [`consent`]: [`ConsentEvent`] and the point-in-time fold [`ConsentState`];
//! - [`member`]: [`MemberFacts`], the one model of what the gate knows about a member, and
//!   the consent fold every loader shares;
//! - [`jurisdiction`]: ISO 3166-1 codes, normalisation of territories and aliases, region sets;
//! - [`regime`]: the effective-dated regimes and the default [`Timeline`](regime::Timeline);
//! - [`age`]: age at an instant and national ages of digital consent;
//! - [`progress`]: the [`Progress`](progress::Progress) trait libraries report through;
//! - [`decision`]: [`Decision`], [`ReasonCode`] and [`Verdict`] — exclusion is a value.
//!
//! ```
//! use cg_model::{Jurisdiction, Timestamp, regime::Timeline, jurisdiction::RegionFlags};
//! let fr = Jurisdiction::normalize(Some("FR")).unwrap();
//! let regime = Timeline::default().regime_at(Timestamp::parse("2025-03-01").unwrap());
//! assert!(regime.suspended.intersects(fr.regions(RegionFlags::default())));
//! ```

#![deny(missing_docs)]

pub mod age;
pub mod consent;
mod countries;
pub mod decision;
pub mod ids;
pub mod instant;
pub mod jurisdiction;
pub mod manifest;
pub mod member;
pub mod progress;
pub mod purpose;
pub mod regime;

pub use consent::{ConsentEvent, ConsentSource, ConsentState};
pub use decision::{Decision, ReasonCode, Verdict};
pub use ids::{ContentId, EventId, MemberId};
pub use instant::Timestamp;
pub use jurisdiction::{CountryCode, Jurisdiction, Region, RegionSet};
pub use member::MemberFacts;
pub use purpose::{ContentKind, Purpose};
