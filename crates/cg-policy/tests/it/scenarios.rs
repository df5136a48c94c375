//! Runs every block of `tests/scenarios/*.scen`; `UPDATE_SCENARIOS=1` rewrites expectations.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use cg_model::{Purpose, ReasonCode, Timestamp};
use cg_policy::{ConsentInput, EventInput, ExplainRequest, Explanation, Policy, PolicyConfig};

struct Block {
    title: String,
    inputs: Vec<(String, String)>,
    input_lines: Vec<String>,
    expected: Vec<(String, String)>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

fn strip(v: &str) -> &str {
    v.split(" #").next().unwrap_or(v).trim()
}

fn parse(text: &str) -> (String, Vec<Block>) {
    let mut header = String::new();
    let mut blocks: Vec<Block> = Vec::new();
    let mut in_expected = false;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("=== ") {
            blocks.push(Block {
                title: title.to_owned(),
                inputs: vec![],
                input_lines: vec![],
                expected: vec![],
            });
            in_expected = false;
            continue;
        }
        let Some(b) = blocks.last_mut() else {
            header.push_str(line);
            header.push('\n');
            continue;
        };
        if line.trim() == "---" {
            in_expected = true;
            continue;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: bad line `{line}`", b.title));
        if in_expected {
            b.expected.push((k.trim().to_owned(), strip(v).to_owned()));
        } else {
            b.inputs.push((k.trim().to_owned(), strip(v).to_owned()));
            b.input_lines.push(line.to_owned());
        }
    }
    (header, blocks)
}

fn ts(v: &str) -> Timestamp {
    Timestamp::parse(v).unwrap()
}

fn request(b: &Block) -> (String, Vec<String>, ExplainRequest) {
    let get = |k: &str| {
        b.inputs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let mut r = ExplainRequest::new(ts(
        get("as-of").unwrap_or_else(|| panic!("{}: no as-of", b.title))
    ));
    let mut policy = "timeline".to_owned();
    let mut sets = Vec::new();
    for (k, v) in &b.inputs {
        match k.as_str() {
            "as-of" => {}
            "policy" => policy = v.clone(),
            "set" => sets.push(v.clone()),
            "purpose" => r.purpose = Purpose::new(v).unwrap(),
            "member" => r.member_known = v != "unknown",
            "country" => r.country = Some(v.clone()),
            "residence" => {
                let (c, t) = v.split_once('@').unwrap();
                r.residences.push((c.to_owned(), ts(t)));
            }
            "birth-date" => r.birth_date = Some(cg_model::instant::parse_date(v).unwrap()),
            "kind" => r.kind = v.clone(),
            "created-at" => r.created_at = Some(ts(v)),
            "erased-at" => r.erased_at = Some(ts(v)),
            "notice-delivered-at" => r.notice_delivered_at = Some(ts(v)),
            "event" => {
                let mut parts = v.split_whitespace();
                let consent: ConsentInput = parts.next().unwrap().parse().unwrap();
                let mut e = EventInput::new(consent);
                for p in parts {
                    let (pk, pv) = p.split_once('=').unwrap();
                    match pk {
                        "at" => e.at = Some(ts(pv)),
                        "purpose" => e.purpose = Some(Purpose::new(pv).unwrap()),
                        "notice" => e.notice = Some(pv.to_owned()),
                        "source" => e.source = Some(pv.to_owned()),
                        other => panic!("{}: unknown event field `{other}`", b.title),
                    }
                }
                r.events.push(e);
            }
            other => panic!("{}: unknown input `{other}`", b.title),
        }
    }
    (policy, sets, r)
}

fn load(
    policy: &str,
    sets: &[String],
    cache: &mut HashMap<(String, Vec<String>), Policy>,
) -> Policy {
    let mut config = PolicyConfig::default();
    for s in sets {
        config.set(s).unwrap();
    }
    let key = (policy.to_owned(), sets.to_vec());
    if let Some(p) = cache.remove(&key) {
        return p;
    }
    let path = dir().join(policy);
    if path.extension().is_some_and(|e| e == "cedar") {
        Policy::resolve(path.to_str().unwrap(), config).unwrap()
    } else {
        Policy::bundled(policy, config).unwrap()
    }
}

fn expected_of(e: &Explanation) -> Vec<(String, String)> {
    let mut out = vec![
        ("decision".to_owned(), e.decision.to_string()),
        (
            "reasons".to_owned(),
            e.reasons
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    if let Some(r) = &e.regime {
        out.push(("regime".to_owned(), r.clone()));
    }
    if !e.notes.is_empty() {
        out.push(("notes".to_owned(), e.notes.join(", ")));
    }
    out
}

#[test]
fn scenarios() {
    let update = std::env::var_os("UPDATE_SCENARIOS").is_some();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scen"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut cache = HashMap::new();
    let mut failures = Vec::new();
    let mut seen_reasons = BTreeSet::new();
    let mut count = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let (header, blocks) = parse(&text);
        let mut rewritten = header;
        for b in &blocks {
            count += 1;
            let (policy, sets, req) = request(b);
            let p = load(&policy, &sets, &mut cache);
            let e = req.explain(&p);
            cache.insert((policy, sets), p);
            seen_reasons.extend(e.reasons.iter().copied());
            let actual = expected_of(&e);
            if update {
                rewritten.push_str(&format!("=== {}\n", b.title));
                for l in &b.input_lines {
                    rewritten.push_str(l);
                    rewritten.push('\n');
                }
                rewritten.push_str("---\n");
                for (k, v) in &actual {
                    rewritten.push_str(&format!("{k}: {v}\n"));
                }
                rewritten.push('\n');
                continue;
            }
            if b.expected.is_empty() {
                failures.push(format!(
                    "{}: `{}` has no expectation",
                    file.display(),
                    b.title
                ));
                continue;
            }
            for (k, v) in &b.expected {
                let got = actual
                    .iter()
                    .find(|(ak, _)| ak == k)
                    .map_or("", |(_, av)| av.as_str());
                if got != v {
                    failures.push(format!(
                        "{}: `{}`: {k} expected `{v}`, got `{got}` (policies: {:?})",
                        file.display(),
                        b.title,
                        e.policies
                    ));
                }
            }
        }
        if update {
            std::fs::write(file, rewritten.trim_end().to_owned() + "\n").unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 70, "only {count} scenarios");
    // Every reason code the policy decides is exercised (invalid_record and mention_redacted
    // are decided by the build, and tested there).
    for r in ReasonCode::ALL {
        if !matches!(r, ReasonCode::InvalidRecord | ReasonCode::MentionRedacted) {
            assert!(seen_reasons.contains(r), "no scenario exercises `{r}`");
        }
    }
}
