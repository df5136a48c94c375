//! Decisions per second through the memoised table, and the one-off cost of filling it.
//!
//! `cargo bench -p cg-policy --bench decisions`
//!
//! - `lookup`: one hash lookup per item once the table is filled (goal ≥ 100 M/s/core);
//! - `derive+lookup`: turning raw item facts into a tuple key and looking it up;
//! - `fill`: evaluating every distinct tuple of a realistic population with Cedar.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use cg_model::{ConsentState, Purpose, Timestamp};
use cg_policy::{DecisionTable, EvalContext, ItemFacts, MemberFacts, Policy, PolicyConfig, Tuple};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const COUNTRIES: &[&str] = &[
    "US", "US-CA", "IN", "BR", "GB", "FR", "DE", "CA", "ES", "IT", "NL", "CH", "RE", "XX",
];
const KINDS: &[&str] = &[
    "post",
    "comment",
    "article",
    "message",
    "group_message",
    "profile",
    "salary",
];

fn population(n: usize) -> Vec<ItemFacts<'static>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let country = COUNTRIES[(next() % COUNTRIES.len() as u64) as usize];
            let birth_year = 1950 + (next() % 62) as i32;
            let member = MemberFacts {
                country_at_creation: Some(country),
                country_at_cutoff: Some(country),
                birth_date: time::Date::from_calendar_date(birth_year, time::Month::March, 1).ok(),
                consent: ConsentState::default(),
                other_purpose_grant: false,
                erased_at: None,
                notice_delivered_at: None,
            };
            let created = Timestamp::parse("2021-01-01")
                .unwrap()
                .plus_days((next() % 1400) as i64);
            ItemFacts {
                kind: KINDS[(next() % KINDS.len() as u64) as usize],
                created_at: created,
                member: Some(member),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let policy = Policy::bundled("timeline", PolicyConfig::default()).unwrap();
    let ctx = EvalContext {
        purpose: Purpose::genai_training(),
        as_of: Timestamp::parse("2025-03-01").unwrap(),
    };
    let items = population(100_000);
    let tuples: Vec<Tuple> = items
        .iter()
        .flat_map(|i| policy.tuples(i, &ctx).unwrap())
        .collect();
    let keys: Vec<u64> = tuples.iter().map(Tuple::key).collect();
    let mut table = DecisionTable::new(&policy, ctx.clone());
    for t in &tuples {
        table.id_for_tuple(t);
    }
    eprintln!("{} items, {} distinct tuples", items.len(), table.len());

    let mut g = c.benchmark_group("decision_table");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("lookup", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &keys {
                acc = acc.wrapping_add(u64::from(table.lookup(*k).unwrap_or(u32::MAX)));
            }
            black_box(acc)
        })
    });
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("derive+lookup", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for i in &items {
                for t in policy.tuples(i, &ctx).unwrap() {
                    acc = acc.wrapping_add(u64::from(table.lookup(t.key()).unwrap_or(u32::MAX)));
                }
            }
            black_box(acc)
        })
    });
    g.sample_size(10);
    g.throughput(Throughput::Elements(table.len() as u64));
    g.bench_function("fill (Cedar per distinct tuple)", |b| {
        b.iter(|| {
            let mut fresh = DecisionTable::new(&policy, ctx.clone());
            for t in &tuples {
                fresh.id_for_tuple(t);
            }
            black_box(fresh.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
