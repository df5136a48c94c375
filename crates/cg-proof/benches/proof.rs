//! Transparency hot paths: building a dataset's member commitment — a roster (three SHA-256 a
//! member, sort, tree) or VRF intervals (sort + one SHA-256 pass over the interval leaves, after
//! one VRF evaluation per member key) — issuing and verifying a receipt of either scheme, and
//! verifying a log inclusion proof.
//!
//! `cargo bench -p cg-proof --bench proof`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use base64::Engine;
use cg_proof::commitment::{Commitment, MemberKey};
use cg_proof::leaves::Entry;
use cg_proof::member_key::{KEY_SCHEME, MemberKeySecret};
use cg_proof::note::{Checkpoint, NoteSigner};
use cg_proof::receipt::{FORMAT, IntervalJson, Receipt, RosterJson, statement, verify};
use cg_proof::roster::{ROSTER_SCHEME, Roster};
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
    let salts = secret.salt_key();
    for n in [1_000_000i64, 10_000_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(
            format!("roster of {n} members (salts, sort + tree; one core)"),
            |b| {
                b.iter(|| {
                    black_box(
                        Roster::from_members(
                            &salts,
                            "ds-0123456789abcdef",
                            (0..n).map(|m| (m, m % 3 == 0)),
                        )
                        .unwrap()
                        .root(),
                    )
                })
            },
        );
    }
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("roster entries: 1000 members (one core)", |b| {
        b.iter(|| {
            for m in 0..1_000 {
                black_box(salts.entry("ds-0123456789abcdef", m, true));
            }
        })
    });
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
            "file": "members.commitment",
            "members": 0,
            "sha256": "",
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
            interval: Some(IntervalJson::from(&interval)),
            roster: None,
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
    // The same with a roster of 1M members.
    let r1 =
        Roster::from_members(&salts, "ds-bench", (0..1_000_000).map(|m| (m, m % 3 == 0))).unwrap();
    let roster_manifest = serde_json::json!({
        "dataset_id": "ds-bench",
        "member_commitment": {
            "file": "members.commitment",
            "members": 0,
            "sha256": "",
            "root": hex(&r1.root()),
            "key_scheme": ROSTER_SCHEME,
            "vrf_public_key": hex(&secret.public_key()),
        }
    })
    .to_string();
    let roster_entry = Entry::Manifest {
        dataset_id: "ds-bench".into(),
        sha256: Sha256::digest(roster_manifest.as_bytes()).into(),
    };
    let last = log.len() - 1;
    log[last] = roster_entry.leaf_hash();
    let roster_log_root = root(&log);
    let roster_log_proof = LogProof {
        extra: None,
        index: 1_000_000,
        path: inclusion_proof(1_000_000, &log).unwrap(),
        checkpoint: signer.sign(
            &Checkpoint {
                root: roster_log_root,
                ..cp.clone()
            }
            .body(),
        ),
    };
    let issue_roster = |member: i64| Receipt {
        format: FORMAT.into(),
        statement: statement(member, "ds-bench", member % 3 == 0),
        member_id: member,
        dataset_id: "ds-bench".into(),
        included: member % 3 == 0,
        member_key: hex(&cg_proof::roster::position("ds-bench", member)),
        member_key_proof: String::new(),
        interval: None,
        roster: Some(RosterJson::from(&r1.prove(&salts, "ds-bench", member))),
        manifest: base64::engine::general_purpose::STANDARD.encode(&roster_manifest),
        log_proof: roster_log_proof.to_text(),
    };
    g.bench_function("receipt: roster proof (issue, 1M members)", |b| {
        b.iter(|| black_box(issue_roster(42)))
    });
    let roster_receipt = issue_roster(42);
    assert!(verify(&roster_receipt, &vkey, Some(42)).unwrap().included);
    g.bench_function("receipt verify (signature, 2 Merkle paths, roster)", |b| {
        b.iter(|| black_box(verify(&roster_receipt, &vkey, Some(42)).unwrap()))
    });
    let path = inclusion_proof(123_456, &log).unwrap();
    g.bench_function("inclusion proof verify (1M-entry log)", |b| {
        b.iter(|| {
            black_box(
                verify_inclusion(
                    123_456,
                    log.len() as u64,
                    &log[123_456],
                    &path,
                    &roster_log_root,
                )
                .is_ok(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
