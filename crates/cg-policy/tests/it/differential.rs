//! The memoised decision table equals direct Cedar evaluation (exact ages, raw kinds, no
//! tuples) on 100 000 random items across every bundled policy and a few configs.

use cg_model::consent::{ConsentEvent, ConsentSource};
use cg_model::{ConsentState, MemberId, Purpose, Timestamp};
use cg_policy::{DecisionTable, EvalContext, ItemFacts, MemberFacts, Policy, PolicyConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const COUNTRIES: &[Option<&str>] = &[
    None,
    Some("US"),
    Some("US-CA"),
    Some("DE"),
    Some("FR"),
    Some("GB"),
    Some("UK"),
    Some("RE"),
    Some("CH"),
    Some("CA"),
    Some("HK"),
    Some("GI"),
    Some("JE"),
    Some("FO"),
    Some("EU"),
    Some("XX"),
    Some("ES"),
    Some("NO"),
    Some("IN"),
    Some("BR"),
];
const KINDS: &[&str] = &[
    "post",
    "comment",
    "article",
    "group_message",
    "profile",
    "message",
    "salary",
    "poll",
];

fn day(d: i64) -> Timestamp {
    Timestamp::parse("2020-01-01").unwrap().plus_days(d)
}

#[derive(Debug, Clone)]
struct Raw {
    creation_country: usize,
    cutoff_country: usize,
    birth: Option<i64>,
    kind: usize,
    created: i64,
    as_of: i64,
    events: Vec<(bool, i64, u8, bool)>,
    erased: Option<i64>,
    notice: Option<i64>,
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        (
            0..COUNTRIES.len(),
            0..COUNTRIES.len(),
            proptest::option::of(-15_000i64..1_000),
            0..KINDS.len(),
        ),
        (0i64..2_500, 0i64..2_500),
        proptest::collection::vec((any::<bool>(), 0i64..2_500, 0u8..4, any::<bool>()), 0..3),
        (
            proptest::option::of(0i64..2_500),
            proptest::option::of(1_500i64..2_500),
        ),
    )
        .prop_map(
            |((a, b, birth, kind), (created, as_of), events, (erased, notice))| Raw {
                creation_country: a,
                cutoff_country: b,
                birth,
                kind,
                created,
                as_of,
                events,
                erased,
                notice,
            },
        )
}

fn facts(r: &Raw, purpose: &Purpose) -> (ConsentState, bool) {
    let events: Vec<ConsentEvent> = r
        .events
        .iter()
        .map(|(granted, at, source, other_purpose)| ConsentEvent {
            event_id: None,
            member_id: MemberId(1),
            purpose: if *other_purpose {
                Purpose::new("ranking_training").unwrap()
            } else {
                purpose.clone()
            },
            granted: *granted,
            ts: day(*at),
            source: ConsentSource::from(
                ["settings", "gpc", "objection_form", "api"][*source as usize],
            ),
            notice_version: Some(if *at % 2 == 0 { "2025-09" } else { "2024-06" }.to_owned()),
        })
        .collect();
    let this: Vec<&ConsentEvent> = events.iter().filter(|e| &e.purpose == purpose).collect();
    let other = events
        .iter()
        .any(|e| &e.purpose != purpose && e.granted && e.ts <= day(r.as_of));
    (ConsentState::fold(this, day(r.as_of)), other)
}

#[test]
fn table_equals_direct_cedar_on_100k_random_items() {
    let configs = [
        ("timeline", vec![]),
        ("li-2024-pre", vec![]),
        (
            "li-2024-09",
            vec!["gpc_as_objection=false", "gibraltar_as_uk=false"],
        ),
        ("li-2025-11", vec!["notice_window_days=30"]),
        (
            "strict-optin",
            vec!["minimum_age=0", "accepted_notice_versions=[\"2025-09\"]"],
        ),
        ("strict-optin", vec![]),
    ];
    let purpose = Purpose::genai_training();
    let mut total = 0;
    for (name, sets) in configs {
        let mut cfg = PolicyConfig::default();
        for s in &sets {
            cfg.set(s).unwrap();
        }
        let policy = Policy::bundled(name, cfg).unwrap();
        // One table per cut-off day: group items by as_of so memoisation is exercised.
        let tables: std::cell::RefCell<std::collections::HashMap<i64, DecisionTable<'_>>> =
            Default::default();
        let mut runner = TestRunner::new(Config {
            cases: 17_000,
            ..Config::default()
        });
        runner
            .run(&raw(), |r| {
                let (consent, other_purpose_grant) = facts(&r, &purpose);
                let member = MemberFacts {
                    country_at_creation: COUNTRIES[r.creation_country],
                    country_at_cutoff: COUNTRIES[r.cutoff_country],
                    birth_date: r.birth.map(|b| day(b).date()),
                    consent,
                    other_purpose_grant,
                    erased_at: r.erased.map(day),
                    notice_delivered_at: r.notice.map(day),
                };
                let item = ItemFacts {
                    kind: KINDS[r.kind],
                    created_at: day(r.created),
                    member: Some(member),
                };
                let ctx = EvalContext {
                    purpose: purpose.clone(),
                    as_of: day(r.as_of),
                };
                let direct = policy.evaluate_direct(&item, &ctx);
                // One table per cut-off day, reused by every item with that cut-off.
                let bucket = r.as_of;
                let mut tables = tables.borrow_mut();
                let table = tables
                    .entry(bucket)
                    .or_insert_with(|| DecisionTable::new(&policy, ctx.clone()));
                let memo = table.decide(&item);
                prop_assert_eq!(&memo.verdict, &direct.verdict, "{} {:?}", name, r);
                Ok(())
            })
            .unwrap();
        total += 17_000;
    }
    assert!(total >= 100_000);
}
