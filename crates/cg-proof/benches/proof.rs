//! Transparency hot paths: building a dataset's member commitment (sort + one SHA-256 pass over
//! the interval leaves), deriving member keys (one VRF evaluation each), issuing and verifying a
//! receipt, and verifying a log inclusion proof.
//!
//! `cargo bench -p cg-proof --bench proof`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use base64::Engine;
use cg_proof::commitment::{Commitment, MemberKey};
use cg_proof::leaves::Entry;
use cg_proof::member_key::{KEY_SCHEME, MemberKeySecret};
use cg_proof::note::{Checkpoint, NoteSigner};
use cg_proof::receipt::{FORMAT, IntervalJson, Receipt, statement, verify};
use cg_proof::tlog_proof::LogProof;
use cg_proof::{Hash, hex, inclusion_proof, leaf_hash, root, verify_inclusion};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

/// Pseudo-random 32-byte keys (SHA-256 of the index: the distribution of VRF outputs).
fn keys(n: usize) -> Vec<MemberKey> {
    (0..n as u64)
        .map(|i| Sha256::digest(i.to_le_bytes()).into())
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("proof");
    g.sample_size(10);
    for n in [1_000_000usize, 10_000_000] {
        let k = keys(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(
            format!("member commitment of {n} keys (sort + tree)"),
            |b| {
                b.iter_batched(
                    || k.clone(),
                    |k| black_box(Commitment::from_keys(k).unwrap().root()),
                    BatchSize::LargeInput,
                )
            },
        );
    }

    let secret = MemberKeySecret::from_seed(&[1u8; 32]).unwrap();
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("member keys: 1000 VRF outputs (one core)", |b| {
        b.iter(|| {
            for m in 0..1_000 {
                black_box(secret.member_key("ds-0123456789abcdef", m));
            }
        })
    });
    let members: Vec<i64> = (0..1_000).collect();
    g.bench_function(
        "member keys: 1000 VRF outputs, batched encodings (one core)",
        |b| b.iter(|| black_box(secret.member_keys("ds-0123456789abcdef", &members))),
    );

    // A receipt against a log of 1M entries and a commitment of 1M members.
    let c1 = Commitment::from_keys(keys(1_000_000)).unwrap();
    let signer = NoteSigner::from_seed("bench.example/log", &[2u8; 32]).unwrap();
    let manifest = serde_json::json!({
        "dataset_id": "ds-bench",
        "member_commitment": {
            "root": hex(&c1.root()),
            "key_scheme": KEY_SCHEME,
            "vrf_public_key": hex(&secret.public_key()),
        }
    })
    .to_string();
    let entry = Entry::Manifest {
        dataset_id: "ds-bench".into(),
        sha256: Sha256::digest(manifest.as_bytes()).into(),
    };
    let mut log: Vec<Hash> = (0..1_000_000u32)
        .map(|i| leaf_hash(&i.to_le_bytes()))
        .collect();
    log.push(entry.leaf_hash());
    let log_root = root(&log);
    let cp = Checkpoint {
        origin: "bench.example/log".into(),
        size: log.len() as u64,
        root: log_root,
        extensions: vec![],
    };
    let proof = LogProof {
        extra: None,
        index: 1_000_000,
        path: inclusion_proof(1_000_000, &log).unwrap(),
        checkpoint: signer.sign(&cp.body()),
    };
    let issue = |member: i64| {
        let (key, key_proof) = secret.prove("ds-bench", member);
        let interval = c1.prove(&key);
        Receipt {
            format: FORMAT.into(),
            statement: statement(member, "ds-bench", false),
            member_id: member,
            dataset_id: "ds-bench".into(),
            included: false,
            member_key: hex(&key),
            member_key_proof: hex(&key_proof),
            interval: IntervalJson::from(&interval),
            manifest: base64::engine::general_purpose::STANDARD.encode(&manifest),
            log_proof: proof.to_text(),
        }
    };
    g.throughput(Throughput::Elements(1));
    g.bench_function("receipt: member key proof + interval proof (issue)", |b| {
        b.iter(|| black_box(issue(42)))
    });
    let receipt = issue(42);
    let vkey = signer.verifier_key();
    g.bench_function("receipt verify (signature, 2 Merkle paths, VRF)", |b| {
        b.iter(|| black_box(verify(&receipt, &vkey, Some(42)).unwrap()))
    });
    let path = inclusion_proof(123_456, &log).unwrap();
    g.bench_function("inclusion proof verify (1M-entry log)", |b| {
        b.iter(|| {
            black_box(
                verify_inclusion(123_456, log.len() as u64, &log[123_456], &path, &log_root)
                    .is_ok(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
