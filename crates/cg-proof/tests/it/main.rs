//! cg-proof: known-answer vectors (the RFC 6962 / Certificate Transparency reference tree),
//! corrupted-proof negatives, and a cross-check against a naive recursive reference on
//! thousands of sizes, and against an independent implementation (the `ct-merkle` crate).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cg_proof::*;
use proptest::prelude::*;

fn h(hex: &str) -> Hash {
    let v: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The reference tree's leaves (data, before hashing).
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Published roots for sizes 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn leaves() -> Vec<Hash> {
    LEAVES.iter().map(|d| leaf_hash(&unhex(d))).collect()
}

#[test]
fn roots_match_the_published_vectors() {
    let l = leaves();
    for size in 0..=8 {
        assert_eq!(root(&l[..size]), h(ROOTS[size]), "size {size}");
    }
}

#[test]
fn inclusion_proofs_match_the_published_vectors() {
    let l = leaves();
    let cases: [(u64, usize, &[&str]); 3] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    for (index, size, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        assert_eq!(
            inclusion_proof(index, &l[..size]).unwrap(),
            expected,
            "{index}/{size}"
        );
        verify_inclusion(
            index,
            size as u64,
            &l[index as usize],
            &expected,
            &h(ROOTS[size]),
        )
        .unwrap();
    }
}

#[test]
fn consistency_proofs_match_the_published_vectors() {
    let l = leaves();
    let cases: [(u64, usize, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (old, new, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        assert_eq!(
            consistency_proof(old, &l[..new]).unwrap(),
            expected,
            "{old}->{new}"
        );
        verify_consistency(
            old,
            new as u64,
            &h(ROOTS[old as usize]),
            &h(ROOTS[new]),
            &expected,
        )
        .unwrap();
    }
}

#[test]
fn corrupted_proofs_fail() {
    let l = leaves();
    let r8 = h(ROOTS[8]);
    let p = inclusion_proof(5, &l).unwrap();
    for i in 0..p.len() {
        let mut bad = p.clone();
        bad[i][7] ^= 1;
        assert_eq!(
            verify_inclusion(5, 8, &l[5], &bad, &r8),
            Err(ProofError::RootMismatch)
        );
    }
    assert!(
        verify_inclusion(4, 8, &l[5], &p, &r8).is_err(),
        "wrong index"
    );
    assert!(
        verify_inclusion(5, 8, &l[4], &p, &r8).is_err(),
        "wrong leaf"
    );
    assert!(
        verify_inclusion(5, 8, &l[5], &p[..2], &r8).is_err(),
        "truncated"
    );
    let mut long = p.clone();
    long.push(l[0]);
    assert!(
        verify_inclusion(5, 8, &l[5], &long, &r8).is_err(),
        "extended"
    );
    assert!(
        verify_inclusion(8, 8, &l[5], &p, &r8).is_err(),
        "out of range"
    );
    let c = consistency_proof(6, &l).unwrap();
    for i in 0..c.len() {
        let mut bad = c.clone();
        bad[i][0] ^= 0x80;
        assert!(verify_consistency(6, 8, &h(ROOTS[6]), &r8, &bad).is_err());
    }
    assert!(
        verify_consistency(6, 8, &h(ROOTS[5]), &r8, &c).is_err(),
        "wrong old root"
    );
    assert!(
        verify_consistency(6, 8, &h(ROOTS[6]), &h(ROOTS[7]), &c).is_err(),
        "wrong new root"
    );
    assert!(
        verify_consistency(6, 8, &h(ROOTS[6]), &r8, &c[..2]).is_err(),
        "truncated"
    );
    assert!(
        verify_consistency(0, 8, &h(ROOTS[0]), &r8, &[]).is_err(),
        "old size 0"
    );
    assert!(
        verify_consistency(9, 8, &h(ROOTS[0]), &r8, &[]).is_err(),
        "old > new"
    );
    assert!(
        verify_consistency(8, 8, &r8, &r8, &[l[0]]).is_err(),
        "same size, non-empty proof"
    );
}

/// A naive recursive tree, written straight from RFC 6962 §2.1, independent of the crate's
/// bottom-up root and its proof code.
fn naive_root(d: &[Hash]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let k = (0..)
                .map(|i| 1usize << i)
                .take_while(|p| *p < n)
                .last()
                .unwrap();
            node_hash(&naive_root(&d[..k]), &naive_root(&d[k..]))
        }
    }
}

#[test]
fn the_root_on_several_threads_is_the_root() {
    // Around the sizes where root_on splits (2^15 leaves and up) and at uneven splits; the
    // naive recursive root as the reference where it is cheap enough.
    let all: Vec<Hash> = (0..140_000u32)
        .map(|i| leaf_hash(&i.to_le_bytes()))
        .collect();
    for n in [
        0, 1, 2, 300, 32_767, 32_768, 32_769, 65_537, 100_003, 140_000,
    ] {
        let d = &all[..n];
        let expected = root(d);
        if n <= 32_769 {
            assert_eq!(expected, naive_root(d), "size {n}");
        }
        for threads in [1, 2, 3, 8] {
            assert_eq!(root_on(d, threads), expected, "size {n}, {threads} threads");
        }
    }
}

#[test]
fn every_proof_verifies_for_every_size_up_to_300() {
    let all: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let roots: Vec<Hash> = (0..=300).map(|n| naive_root(&all[..n])).collect();
    for n in 1..=300usize {
        let d = &all[..n];
        assert_eq!(root(d), roots[n], "size {n}");
        for i in [0, n / 3, n / 2, n - 1] {
            let p = inclusion_proof(i as u64, d).unwrap();
            verify_inclusion(i as u64, n as u64, &d[i], &p, &roots[n]).unwrap();
        }
        for m in [1, n / 2, n.saturating_sub(1), n] {
            if m == 0 {
                continue;
            }
            let c = consistency_proof(m as u64, d).unwrap();
            verify_consistency(m as u64, n as u64, &roots[m], &roots[n], &c).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_sizes_agree_with_the_naive_tree(n in 1usize..3_000, i in any::<prop::sample::Index>(), m in any::<prop::sample::Index>()) {
        let d: Vec<Hash> = (0..n as u32).map(|x| leaf_hash(&x.to_be_bytes())).collect();
        let r = root(&d);
        prop_assert_eq!(r, naive_root(&d));
        let i = i.index(n);
        let p = inclusion_proof(i as u64, &d).unwrap();
        prop_assert!(verify_inclusion(i as u64, n as u64, &d[i], &p, &r).is_ok());
        let m = m.index(n) + 1;
        let c = consistency_proof(m as u64, &d).unwrap();
        prop_assert!(verify_consistency(m as u64, n as u64, &naive_root(&d[..m]), &r, &c).is_ok());
    }
}

/// The same leaves in `ct-merkle`'s memory-backed tree.
fn ct_tree(n: usize) -> ct_merkle::mem_backed_tree::MemoryBackedTree<sha2_011::Sha256, Vec<u8>> {
    let mut t = ct_merkle::mem_backed_tree::MemoryBackedTree::new();
    for x in 0..n as u32 {
        t.push(x.to_be_bytes().to_vec());
    }
    t
}

fn flat(p: &[Hash]) -> Vec<u8> {
    p.iter().flatten().copied().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Roots, inclusion proofs and consistency proofs are byte-identical to ct-merkle's.
    #[test]
    fn agrees_with_ct_merkle(n in 1usize..2_500, i in any::<prop::sample::Index>(), m in any::<prop::sample::Index>()) {
        let d: Vec<Hash> = (0..n as u32).map(|x| leaf_hash(&x.to_be_bytes())).collect();
        let t = ct_tree(n);
        let theirs = t.root();
        prop_assert_eq!(theirs.as_bytes().to_vec(), root(&d).to_vec());
        let i = i.index(n);
        let theirs = t.prove_inclusion(i);
        prop_assert_eq!(theirs.as_bytes().to_vec(), flat(&inclusion_proof(i as u64, &d).unwrap()));
        let m = m.index(n) + 1;
        if m < n {
            let theirs = t.prove_consistency(n - m);
            prop_assert_eq!(theirs.as_bytes().to_vec(), flat(&consistency_proof(m as u64, &d).unwrap()));
        }
    }
}

#[test]
fn compact_range_matches_root_at_every_size() {
    let d: Vec<Hash> = (0..1_100u32).map(|x| leaf_hash(&x.to_be_bytes())).collect();
    let mut c = CompactRange::new();
    assert_eq!(c.root(), empty_root());
    for (n, leaf) in d.iter().enumerate() {
        c.push(*leaf);
        assert_eq!(c.root(), root(&d[..=n]), "size {}", n + 1);
        assert_eq!(c.size(), n as u64 + 1);
    }
}
