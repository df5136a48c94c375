//! Ledger hot paths on SQLite: single-event commits (each fsynced), batched appends, as-of
//! lookups, the as-of snapshot, and the transparency log (checkpoint, verify, prove).
//!
//! `cargo bench -p cg-ledger --bench ledger`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use cg_ledger::{NewEvent, Store};
use cg_model::{MemberId, Purpose, Timestamp};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn event(i: i64) -> NewEvent {
    NewEvent::new(
        MemberId(i % 100_000),
        Purpose::genai_training(),
        i % 3 != 0,
        Timestamp::from_micros(1_700_000_000_000_000 + i * 1_000_000),
    )
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("ledger_sqlite");
    g.sample_size(10);

    let mut single = cg_ledger::open(dir.path().join("single.sqlite").to_str().unwrap()).unwrap();
    let mut i = 0;
    g.throughput(Throughput::Elements(1));
    g.bench_function("append one event per transaction (fsync)", |b| {
        b.iter(|| {
            i += 1;
            black_box(single.append(&[event(i)]).unwrap())
        })
    });

    let mut batched = cg_ledger::open(dir.path().join("batch.sqlite").to_str().unwrap()).unwrap();
    let mut next = 0i64;
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("append 10k events per transaction", |b| {
        b.iter_batched(
            || {
                let v: Vec<NewEvent> = (next..next + 10_000).map(event).collect();
                next += 10_000;
                v
            },
            |v| black_box(batched.append(&v).unwrap()),
            BatchSize::LargeInput,
        )
    });

    let mut lookups = cg_ledger::open(dir.path().join("lookup.sqlite").to_str().unwrap()).unwrap();
    let events: Vec<NewEvent> = (0..200_000).map(event).collect();
    lookups.append(&events).unwrap();
    let purpose = Purpose::genai_training();
    let at = Timestamp::from_micros(1_700_000_000_000_000 + 150_000 * 1_000_000);
    let mut m = 0;
    g.throughput(Throughput::Elements(1));
    g.bench_function("as-of lookup", |b| {
        b.iter(|| {
            m = (m + 7919) % 100_000;
            black_box(lookups.state_at(MemberId(m), &purpose, at).unwrap())
        })
    });
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("snapshot of 100k members", |b| {
        b.iter(|| {
            let mut n = 0u64;
            lookups
                .snapshot(&purpose, at, &mut |_| {
                    n += 1;
                    Ok(())
                })
                .unwrap();
            black_box(n)
        })
    });
    // The transparency log over the 200k events above.
    let signer = cg_proof::note::NoteSigner::from_seed("bench.example/log", &[3u8; 32]).unwrap();
    let vkey = signer.verifier_key();
    g.throughput(Throughput::Elements(200_000));
    g.bench_function(
        "log: leaf hashes + root of 200k entries (checkpoint)",
        |b| b.iter(|| black_box(cg_proof::root(&lookups.log_leaf_hashes().unwrap()))),
    );
    cg_ledger::log::checkpoint(lookups.as_mut(), &signer).unwrap();
    g.bench_function("log: verify 200k entries against their events", |b| {
        b.iter(|| black_box(cg_ledger::log::verify(lookups.as_mut(), &vkey).unwrap()))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("log: inclusion proof against the latest checkpoint", |b| {
        b.iter(|| black_box(cg_ledger::log::prove(lookups.as_mut(), 123_456).unwrap()))
    });
    g.finish();
    let _: &dyn Store = single.as_ref();
}

criterion_group!(benches, bench);
criterion_main!(benches);
