//! Precision and recall per entity type, on the hand-written hard cases and on the
//! generator's ground truth.
//!
//! `cargo run --release -p cg-redact --example eval [-- --content N]`
//!
//! The same sets as files, to score another tool (Presidio, say) with the same rules:
//!
//! - `-- --write-sets DIR [--content N]` writes `DIR/hard_cases.jsonl` and `DIR/generated.jsonl`,
//!   one `{"text", "spans": [{"start", "end", "type"}]}` per line (character offsets), the
//!   expected entities;
//! - `-- --score GOLD.jsonl FOUND.jsonl` scores FOUND (the same shape, one line per line of GOLD,
//!   in order: what `consentgate redact --spans` prints for GOLD's texts) against GOLD.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use cg_redact::{CharSpan, Redactor, char_spans};

#[derive(Default, Clone, Copy)]
struct Score {
    tp: usize,
    fp: usize,
    fn_: usize,
}

type Truth = Vec<(usize, usize, String)>;

/// Parses `[[TYPE:value]]` marks into plain text and character spans.
fn parse_marked(line: &str) -> (String, Truth) {
    let mut text = String::new();
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("[[") {
        text.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let close = after.find("]]").expect("closing ]]");
        let (ty, value) = after[..close].split_once(':').expect("TYPE:value");
        let start = text.chars().count();
        text.push_str(value);
        spans.push((start, text.chars().count(), ty.to_owned()));
        rest = &after[close + 2..];
    }
    text.push_str(rest);
    (text, spans)
}

fn score(
    found: &[CharSpan],
    truth: &Truth,
    scores: &mut BTreeMap<String, Score>,
    misses: &mut Vec<String>,
    text: &str,
) {
    let overlaps = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
    for f in found {
        let ty = f.kind.as_str().to_owned();
        let hit = truth
            .iter()
            .any(|(s, e, t)| *t == ty && overlaps((f.start, f.end), (*s, *e)));
        let entry = scores.entry(ty.clone()).or_default();
        if hit {
            entry.tp += 1;
        } else {
            entry.fp += 1;
            let v: String = text.chars().skip(f.start).take(f.end - f.start).collect();
            misses.push(format!("FP {ty}: `{v}` in `{text}`"));
        }
    }
    for (s, e, t) in truth {
        let hit = found
            .iter()
            .any(|f| f.kind.as_str() == t && overlaps((f.start, f.end), (*s, *e)));
        if !hit {
            scores.entry(t.clone()).or_default().fn_ += 1;
            let v: String = text.chars().skip(*s).take(e - s).collect();
            misses.push(format!("FN {t}: `{v}` in `{text}`"));
        }
    }
}

fn print(title: &str, scores: &BTreeMap<String, Score>) {
    println!("\n{title}");
    println!(
        "{:<12} {:>7} {:>6} {:>6} {:>10} {:>8}",
        "type", "tp", "fp", "fn", "precision", "recall"
    );
    for (ty, s) in scores {
        let p = if s.tp + s.fp == 0 {
            1.0
        } else {
            s.tp as f64 / (s.tp + s.fp) as f64
        };
        let r = if s.tp + s.fn_ == 0 {
            1.0
        } else {
            s.tp as f64 / (s.tp + s.fn_) as f64
        };
        println!(
            "{ty:<12} {:>7} {:>6} {:>6} {:>9.1}% {:>7.1}%",
            s.tp,
            s.fp,
            s.fn_,
            p * 100.0,
            r * 100.0
        );
    }
}

/// The hard cases: (author's country, text, expected spans).
fn hard_cases() -> Vec<(Option<&'static str>, String, Truth)> {
    include_str!("../eval/hard_cases.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (hint, marked) = line.split_once('\t').expect("HINT<TAB>text");
            let (text, truth) = parse_marked(marked);
            ((hint != "-").then_some(hint), text, truth)
        })
        .collect()
}

/// The generator's items: (author's country, text, expected spans).
fn generated(n: i64) -> Vec<(Option<String>, String, Truth)> {
    let members = (n / 10).max(2);
    (1..=n)
        .map(|id| {
            let c = cg_synth::content::generate(7, id, members);
            let hint = (c.member_id <= members)
                .then(|| cg_synth::members::Member::generate(7, c.member_id))
                .and_then(|m| cg_model::Jurisdiction::normalize(m.country).ok())
                .map(|j| j.country().as_str().to_owned());
            let truth: Truth = c
                .spans
                .iter()
                .map(|s| (s.start, s.end, s.kind.as_str().to_owned()))
                .collect();
            (hint, c.text, truth)
        })
        .collect()
}

/// One JSONL line: `{"text", "spans": [{"start", "end", "type"}]}`.
fn jsonl_line(text: &str, spans: &Truth) -> String {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|(s, e, t)| serde_json::json!({"start": s, "end": e, "type": t}))
        .collect();
    serde_json::json!({"text": text, "spans": spans}).to_string()
}

fn read_jsonl(path: &str) -> Vec<(String, Truth)> {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    body.lines()
        .enumerate()
        .map(|(i, line)| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1));
            let text = v["text"].as_str().expect("a `text` string").to_owned();
            let spans = v["spans"]
                .as_array()
                .expect("a `spans` array")
                .iter()
                .map(|s| {
                    (
                        s["start"].as_u64().expect("start") as usize,
                        s["end"].as_u64().expect("end") as usize,
                        s["type"].as_str().expect("type").to_owned(),
                    )
                })
                .collect();
            (text, spans)
        })
        .collect()
}

/// `--score GOLD FOUND`: per-type precision and recall of another tool's spans.
fn score_files(gold: &str, found: &str) {
    let gold_lines = read_jsonl(gold);
    let found_lines = read_jsonl(found);
    assert_eq!(
        gold_lines.len(),
        found_lines.len(),
        "{found} must have one line per line of {gold}"
    );
    let mut scores = BTreeMap::new();
    let mut misses = Vec::new();
    for ((text, truth), (found_text, spans)) in gold_lines.iter().zip(&found_lines) {
        assert_eq!(text, found_text, "{found} is not in {gold}'s order");
        let found: Vec<CharSpan> = spans
            .iter()
            .map(|(s, e, t)| CharSpan {
                start: *s,
                end: *e,
                kind: cg_redact::EntityType::from(t.clone()),
            })
            .collect();
        score(&found, truth, &mut scores, &mut misses, text);
    }
    print(&format!("{found} against {gold}"), &scores);
    summary(&scores);
}

/// Structured types together (everything but names and mentions), and precision over all.
fn summary(scores: &BTreeMap<String, Score>) {
    let mut structured = Score::default();
    let mut all = Score::default();
    for (ty, s) in scores {
        all.tp += s.tp;
        all.fp += s.fp;
        all.fn_ += s.fn_;
        if ty != "PERSON" && ty != "MENTION" {
            structured.tp += s.tp;
            structured.fp += s.fp;
            structured.fn_ += s.fn_;
        }
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            100.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    println!(
        "structured types: recall {:.1}% ({} of {}), precision {:.1}%; all types: precision {:.1}%",
        pct(structured.tp, structured.tp + structured.fn_),
        structured.tp,
        structured.tp + structured.fn_,
        pct(structured.tp, structured.tp + structured.fp),
        pct(all.tp, all.tp + all.fp),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).map(|i| &args[i + 1..]);
    let n: i64 = flag("--content").map_or(20_000, |rest| rest[0].parse().unwrap());
    if let Some(rest) = flag("--score") {
        score_files(&rest[0], &rest[1]);
        return;
    }
    if let Some(rest) = flag("--write-sets") {
        let dir = std::path::Path::new(&rest[0]);
        std::fs::create_dir_all(dir).unwrap();
        let hard: Vec<String> = hard_cases()
            .iter()
            .map(|(_, text, truth)| jsonl_line(text, truth))
            .collect();
        std::fs::write(dir.join("hard_cases.jsonl"), hard.join("\n") + "\n").unwrap();
        let generated: Vec<String> = generated(n)
            .iter()
            .map(|(_, text, truth)| jsonl_line(text, truth))
            .collect();
        std::fs::write(dir.join("generated.jsonl"), generated.join("\n") + "\n").unwrap();
        return;
    }
    let redactor = Redactor::new().unwrap();

    let mut scores = BTreeMap::new();
    let mut misses = Vec::new();
    for (hint, text, truth) in hard_cases() {
        let found = char_spans(&text, &redactor.find(&text, hint));
        score(&found, &truth, &mut scores, &mut misses, &text);
    }
    print("hand-written hard cases (eval/hard_cases.txt)", &scores);
    summary(&scores);
    for m in &misses {
        println!("  {m}");
    }

    let mut scores = BTreeMap::new();
    let mut misses = Vec::new();
    for (hint, text, truth) in generated(n) {
        let found = char_spans(&text, &redactor.find(&text, hint.as_deref()));
        score(&found, &truth, &mut scores, &mut misses, &text);
    }
    print(
        &format!("generated ground truth (cg-synth, seed 7, {n} items)"),
        &scores,
    );
    summary(&scores);
    // Every miss of a structured type, and a sample of the name misses.
    let (names, structured): (Vec<&String>, Vec<&String>) =
        misses.iter().partition(|m| m.contains(" PERSON: "));
    for m in structured.iter().chain(names.iter().take(5)) {
        println!("  {m}");
    }
    if names.len() > 5 {
        println!(
            "  ... and {} more PERSON misses (names outside the built-in lists; the build passes a gazetteer)",
            names.len() - 5
        );
    }
}
