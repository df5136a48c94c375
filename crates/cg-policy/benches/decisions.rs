//! Decisions per second through the compiled engine, from raw member facts.
//!
//! `cargo bench -p cg-policy --bench decisions`
//!
//! - `compile`: member facts → compiled member (countries normalised, classes, age instants);
//! - `decide/1 thread`: items of compiled members (residence lookup, age, bits, one cached
//!   lookup; both residences when they differ);
//! - `decide/1 thread, items by member`: the same items grouped by member (the member's compiled
//!   facts in cache: the engine's own cost; in random order a member's cache line is the cost);
//! - `decide/2 threads`: the same items split over two threads, each with its own decider;
//! - `reference (Cedar per item)`: what deciding costs without the engine, for scale;
//! - `fill`: Cedar once per distinct tuple of the population (a fresh memo).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use cg_model::{MemberFacts, Purpose, Timestamp};
use cg_policy::{CompiledMember, Engine, Policy, PolicyConfig};
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

struct Population {
    members: Vec<MemberFacts>,
    /// `(member index, kind, created_at)`.
    items: Vec<(usize, &'static str, Timestamp)>,
}

fn population(members: usize, items: usize) -> Population {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = Timestamp::parse("2021-01-01").unwrap();
    let members = (0..members)
        .map(|_| {
            let country = COUNTRIES[(next() % COUNTRIES.len() as u64) as usize];
            let birth_year = 1950 + (next() % 62) as i32;
            let moved = next() % 10 == 0;
            MemberFacts {
                country: Some(country.to_owned()),
                residences: if moved {
                    vec![(
                        start.plus_days((next() % 1400) as i64),
                        Some("DE".to_owned()),
                    )]
                } else {
                    Vec::new()
                },
                birth_date: time::Date::from_calendar_date(birth_year, time::Month::March, 1).ok(),
                ..MemberFacts::default()
            }
        })
        .collect::<Vec<_>>();
    let n = members.len() as u64;
    let items = (0..items)
        .map(|_| {
            (
                (next() % n) as usize,
                KINDS[(next() % KINDS.len() as u64) as usize],
                start.plus_days((next() % 1400) as i64),
            )
        })
        .collect();
    Population { members, items }
}

fn bench(c: &mut Criterion) {
    let policy = Arc::new(Policy::bundled("timeline", PolicyConfig::default()).unwrap());
    let as_of = Timestamp::parse("2025-03-01").unwrap();
    let engine = Engine::new(policy.clone(), Purpose::genai_training(), as_of);
    let pop = population(100_000, 1_000_000);
    let compiled: Vec<CompiledMember> = pop.members.iter().map(|m| engine.compile(m)).collect();
    let items: Vec<(usize, u8, Timestamp)> = pop
        .items
        .iter()
        .map(|(m, k, t)| (*m, engine.kind(k), *t))
        .collect();
    let decide_all = |items: &[(usize, u8, Timestamp)]| {
        let mut d = engine.decider();
        let mut acc = 0u64;
        for (m, k, t) in items {
            acc = acc.wrapping_add(u64::from(d.decide(Some(&compiled[*m]), *k, *t)));
        }
        acc
    };
    black_box(decide_all(&items));
    eprintln!(
        "{} members, {} items, {} distinct tuples",
        pop.members.len(),
        items.len(),
        engine.memo().len()
    );

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(pop.members.len() as u64));
    g.bench_function("compile", |b| {
        b.iter(|| {
            let n: usize = pop
                .members
                .iter()
                .map(|m| engine.compile(m).erasure_requested() as usize)
                .sum();
            black_box(n)
        })
    });
    g.throughput(Throughput::Elements(items.len() as u64));
    g.bench_function("decide/1 thread", |b| {
        b.iter(|| black_box(decide_all(&items)))
    });
    // The same items grouped by member: the member's compiled facts stay in cache, so this is
    // the engine's own cost (random order above is bound by the member's cache line).
    let mut grouped = items.clone();
    grouped.sort_by_key(|(m, _, _)| *m);
    g.bench_function("decide/1 thread, items by member", |b| {
        b.iter(|| black_box(decide_all(&grouped)))
    });
    g.bench_function("decide/2 threads", |b| {
        b.iter(|| {
            let (a, z) = items.split_at(items.len() / 2);
            std::thread::scope(|s| {
                let h = s.spawn(|| decide_all(a));
                let x = decide_all(z);
                black_box(x.wrapping_add(h.join().unwrap()))
            })
        })
    });
    g.sample_size(10);
    let sample = &pop.items[..2_000];
    g.throughput(Throughput::Elements(sample.len() as u64));
    g.bench_function("reference (Cedar per item)", |b| {
        b.iter(|| {
            let ctx = engine.context();
            let n = sample
                .iter()
                .map(|(m, k, t)| {
                    let item = engine.item(Some(&pop.members[*m]), k, *t);
                    policy.evaluate_direct(&item, &ctx).verdict.code() as u64
                })
                .sum::<u64>();
            black_box(n)
        })
    });
    let tuples = engine.memo().len();
    g.throughput(Throughput::Elements(tuples as u64));
    g.bench_function("fill (Cedar per distinct tuple)", |b| {
        b.iter(|| {
            let fresh = Engine::new(policy.clone(), Purpose::genai_training(), as_of);
            let mut d = fresh.decider();
            for (m, k, t) in &items[..200_000] {
                black_box(d.decide(Some(&compiled[*m]), *k, *t));
            }
            black_box(fresh.memo().len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
