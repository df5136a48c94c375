//! The compiled engine equals direct Cedar evaluation (exact ages, raw kinds, no
//! tuples) on 100 000 random items across every bundled policy and a few configs.

use cg_model::consent::{ConsentEvent, ConsentSource};
use std::sync::Arc;

use cg_model::member::ConsentFold;
use cg_model::{MemberFacts, MemberId, Purpose, Timestamp};
use cg_policy::{DecisionMemo, Engine, Policy, PolicyConfig};
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

fn facts(r: &Raw, purpose: &Purpose) -> MemberFacts {
    let mut fold = ConsentFold::new(purpose, day(r.as_of));
    for (granted, at, source, other_purpose) in &r.events {
        fold.push(ConsentEvent {
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
        });
    }
    // The creation country holds until just after the item was made, then the cut-off
    // country (an item made at the cut-off sees one residence).
    let created = day(r.created);
    let mut residences = Vec::new();
    if created < day(r.as_of) {
        residences.push((
            Timestamp::from_micros(created.micros() + 1),
            COUNTRIES[r.cutoff_country].map(str::to_owned),
        ));
    }
    let mut m = MemberFacts {
        country: COUNTRIES[r.creation_country].map(str::to_owned),
        residences,
        birth_date: r.birth.map(|b| day(b).date()),
        erasure_requested_at: r.erased.map(day),
        notice_at: r.notice.map(day),
        ..MemberFacts::default()
    };
    fold.finish_into(&mut m);
    m
}

#[test]
fn engine_equals_direct_cedar_on_100k_random_items() {
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
        let policy = Arc::new(Policy::bundled(name, cfg).unwrap());
        // One memo for every cut-off (as the service keeps it), one engine per cut-off day.
        let memo = DecisionMemo::new(policy.clone(), purpose.clone());
        let engines: std::cell::RefCell<std::collections::HashMap<i64, Engine>> =
            Default::default();
        let mut runner = TestRunner::new(Config {
            cases: 17_000,
            ..Config::default()
        });
        runner
            .run(&raw(), |r| {
                let m = facts(&r, &purpose);
                let as_of = day(r.as_of);
                let created = day(r.created);
                let mut engines = engines.borrow_mut();
                let engine = engines.entry(r.as_of).or_insert_with(|| memo.at(as_of));
                let direct = policy.evaluate_direct(
                    &engine.item(Some(&m), KINDS[r.kind], created),
                    &engine.context(),
                );
                let compiled = engine.compile(&m);
                let kind = engine.kind(KINDS[r.kind]);
                let fast = engine.decider().verdict(Some(&compiled), kind, created);
                prop_assert_eq!(&fast, &direct.verdict, "{} {:?}", name, r);
                Ok(())
            })
            .unwrap();
        total += 17_000;
    }
    assert!(total >= 100_000);
}
