//! Precision and recall per entity type, on the hand-written hard cases and on the
//! generator's ground truth.
//!
//! `cargo run --release -p cg-redact --example eval [-- --content N]`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: i64 = args
        .iter()
        .position(|a| a == "--content")
        .map_or(20_000, |i| args[i + 1].parse().unwrap());
    let redactor = Redactor::new().unwrap();

    let hard = include_str!("../eval/hard_cases.txt");
    let mut scores = BTreeMap::new();
    let mut misses = Vec::new();
    for line in hard
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (hint, marked) = line.split_once('\t').expect("HINT<TAB>text");
        let hint = (hint != "-").then_some(hint);
        let (text, truth) = parse_marked(marked);
        let found = char_spans(&text, &redactor.find(&text, hint));
        score(&found, &truth, &mut scores, &mut misses, &text);
    }
    print("hand-written hard cases (eval/hard_cases.txt)", &scores);
    for m in &misses {
        println!("  {m}");
    }

    let mut scores = BTreeMap::new();
    let mut misses = Vec::new();
    let members = (n / 10).max(2);
    for id in 1..=n {
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
        let found = char_spans(&c.text, &redactor.find(&c.text, hint.as_deref()));
        score(&found, &truth, &mut scores, &mut misses, &c.text);
    }
    print(
        &format!("generated ground truth (cg-synth, seed 7, {n} items)"),
        &scores,
    );
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
