//! The dependency rules of `docs/architecture.md`, checked against `cargo metadata`.
//!
//! Heavy engines stay in the crate that needs them (DataFusion/Ballista in `cg-build`, axum in
//! `cg-server`), the CLI stack stays in the binary, pure crates stay pure, and workspace crates
//! depend on each other only along the arrows of the crate map.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

struct Graph {
    /// Workspace package name → its direct normal (non-dev, non-build) dependency names.
    direct: BTreeMap<String, BTreeSet<String>>,
    /// Package id → (name, normal dependency ids), for every resolved package.
    nodes: BTreeMap<String, (String, Vec<String>)>,
    /// Workspace package name → id.
    ids: BTreeMap<String, String>,
}

fn graph() -> Graph {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut direct = BTreeMap::new();
    let mut ids = BTreeMap::new();
    let mut names = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        names.insert(id.to_owned(), p["name"].as_str().unwrap().to_owned());
        if !members.contains(id) {
            continue;
        }
        let deps = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        direct.insert(p["name"].as_str().unwrap().to_owned(), deps);
        ids.insert(p["name"].as_str().unwrap().to_owned(), id.to_owned());
    }
    let mut nodes = BTreeMap::new();
    for n in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = n["id"].as_str().unwrap().to_owned();
        let deps = n["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_owned())
            .collect();
        nodes.insert(id.clone(), (names[&id].clone(), deps));
    }
    Graph { direct, nodes, ids }
}

impl Graph {
    /// Every package name reachable through normal dependencies.
    fn transitive(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![self.ids[package].clone()];
        let mut names = BTreeSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let (name, deps) = &self.nodes[&id];
            names.insert(name.clone());
            stack.extend(deps.iter().cloned());
        }
        names.remove(package);
        names
    }
}

/// Which workspace crates each crate may depend on (the arrows of the crate map).
const INTERNAL: &[(&str, &[&str])] = &[
    ("cg-model", &[]),
    ("cg-io", &["cg-model"]),
    ("cg-synth", &["cg-model", "cg-io"]),
    ("cg-policy", &["cg-model"]),
    ("cg-prove", &["cg-model", "cg-policy"]),
    ("cg-redact", &["cg-model"]),
    ("cg-proof", &["cg-model"]),
    ("cg-ledger", &["cg-model", "cg-proof", "cg-io"]),
    (
        "cg-build",
        &[
            "cg-model",
            "cg-policy",
            "cg-redact",
            "cg-proof",
            "cg-io",
            "cg-ledger",
            "cg-report",
        ],
    ),
    (
        "cg-report",
        &[
            "cg-model",
            "cg-ledger",
            "cg-policy",
            "cg-proof",
            "cg-redact",
        ],
    ),
    (
        "cg-server",
        &[
            "cg-model",
            "cg-ledger",
            "cg-policy",
            "cg-proof",
            "cg-prove",
            "cg-redact",
            "cg-report",
        ],
    ),
    (
        "cg-test-support",
        &["cg-model", "cg-io", "cg-synth", "cg-ledger"],
    ),
];

#[test]
fn workspace_crates_follow_the_crate_map() {
    let g = graph();
    for (name, deps) in &g.direct {
        let internal: BTreeSet<&str> = deps
            .iter()
            .map(String::as_str)
            .filter(|d| d.starts_with("cg-"))
            .collect();
        if name == "consentgate" {
            assert!(
                !internal.contains("cg-test-support"),
                "the binary must not ship test support"
            );
            continue;
        }
        let allowed = INTERNAL
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| {
                panic!(
                    "`{name}` is not in the crate map: add it to docs/architecture.md and this test"
                )
            })
            .1;
        for d in internal {
            assert!(allowed.contains(&d), "`{name}` may not depend on `{d}`");
        }
    }
}

#[test]
fn heavy_engines_stay_in_their_crates() {
    let g = graph();
    for name in g.direct.keys() {
        let all = g.transitive(name);
        let has = |prefix: &str| {
            all.iter()
                .any(|d| d == prefix || d.starts_with(&format!("{prefix}-")))
        };
        if !["cg-build", "consentgate"].contains(&name.as_str()) {
            assert!(
                !has("datafusion") && !has("ballista"),
                "`{name}` pulls DataFusion/Ballista"
            );
        }
        // cg-build reaches axum only through Ballista's scheduler, which serves its gRPC API
        // with it; no consentgate code outside cg-server uses it.
        if !["cg-server", "consentgate", "cg-build"].contains(&name.as_str()) {
            assert!(!has("axum"), "`{name}` pulls axum");
        }
    }
}

#[test]
fn cli_stack_only_in_the_binary_and_pure_crates_stay_pure() {
    let g = graph();
    for (name, deps) in &g.direct {
        if name != "consentgate" {
            for edge_only in ["clap", "indicatif", "anyhow"] {
                assert!(
                    !deps.contains(edge_only),
                    "`{name}` depends on `{edge_only}`: only the binary may"
                );
            }
        }
    }
    let model: BTreeSet<&str> = g.direct["cg-model"].iter().map(String::as_str).collect();
    assert!(
        model.is_subset(&BTreeSet::from(["serde", "time", "thiserror"])),
        "cg-model: {model:?}"
    );
    for pure in ["cg-model", "cg-policy", "cg-redact", "cg-proof"] {
        if g.direct.contains_key(pure) {
            let all = g.transitive(pure);
            for io in [
                "tokio",
                "async-std",
                "rusqlite",
                "tokio-postgres",
                "arrow-array",
            ] {
                assert!(
                    !all.contains(io),
                    "`{pure}` must stay pure but pulls `{io}`"
                );
            }
        }
    }
}

#[test]
fn every_crate_is_documented_in_the_architecture() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/architecture.md"
    ))
    .unwrap();
    for name in graph().direct.keys() {
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/architecture.md does not mention `{name}`"
        );
    }
}
