//! Redaction throughput in MB/s on one core.
//!
//! `cargo bench -p cg-redact --bench redact`
//!
//! - `typical`: generated content of every kind (about a third carries PII);
//! - `clean`: posts with no PII (the candidate scan's fast path);
//! - `dense`: the hand-written hard cases, nearly every sentence with PII.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use cg_redact::{Redactor, Replacement};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn corpus() -> (Vec<String>, Vec<String>, Vec<String>) {
    let typical: Vec<String> = (1..=20_000)
        .map(|id| cg_synth::content::generate(7, id, 2_000).text)
        .collect();
    let clean: Vec<String> = typical
        .iter()
        .filter(|t| {
            !t.bytes().any(|b| b.is_ascii_digit() || b == b'@')
                && !t.contains("www.")
                && !t.contains("://")
        })
        .cloned()
        .collect();
    let dense: Vec<String> = include_str!("../eval/hard_cases.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| unmark(l.split_once('\t').unwrap().1))
        .collect();
    let dense: Vec<String> = dense.iter().cycle().take(20_000).cloned().collect();
    (typical, clean, dense)
}

/// `a [[EMAIL:x@y.z]] b` → `a x@y.z b`.
fn unmark(marked: &str) -> String {
    let mut out = String::new();
    let mut rest = marked;
    while let Some(i) = rest.find("[[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let close = after.find("]]").unwrap();
        out.push_str(after[..close].split_once(':').unwrap().1);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

fn bench(c: &mut Criterion) {
    let r = Redactor::new().unwrap();
    let (typical, clean, dense) = corpus();
    let mut g = c.benchmark_group("redact");
    for (name, texts) in [("typical", &typical), ("clean", &clean), ("dense", &dense)] {
        let bytes: usize = texts.iter().map(String::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0usize;
                for t in texts {
                    n += r.redact(t, Some("GB"), Replacement::Placeholder).len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
