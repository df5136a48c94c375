//! A reference evaluator, row by row in plain Rust (no DataFusion, no memoisation): it must
//! agree with the build's `decisions.parquet` on every decision and every reason, over random
//! corpora, cut-offs and policies; and the build's invariants hold (no excluded row in a shard,
//! every input row decided once, every kept text redacted). Plus golden files for the manifest
//! and the summary.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Int32Type, Int64Type, TimestampMicrosecondType};
use cg_model::consent::{ConsentEvent, ConsentSource};
use cg_model::{ConsentState, MemberId, Purpose, ReasonCode, Timestamp, Verdict};
use cg_policy::{EvalContext, ItemFacts, MemberView, Policy, PolicyConfig};
use proptest::prelude::*;

use crate::util::{consentgate, read_parquet, stderr, stdout};

#[derive(Default, Clone)]
struct M {
    country: Option<String>,
    birth: Option<time::Date>,
    erased: Option<Timestamp>,
    notice: Option<Timestamp>,
    residences: Vec<(Timestamp, Option<String>)>,
    events: Vec<ConsentEvent>,
}

fn ts(a: &dyn Array, i: usize) -> Option<Timestamp> {
    let a = a.as_primitive::<TimestampMicrosecondType>();
    a.is_valid(i).then(|| Timestamp::from_micros(a.value(i)))
}

fn load(files: &BTreeMap<String, PathBuf>) -> HashMap<i64, M> {
    let mut ms: HashMap<i64, M> = HashMap::new();
    for b in read_parquet(&files["members"]) {
        let (id, c, bd) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_string::<i32>(),
            b.column(2).as_primitive::<Date32Type>(),
        );
        for i in 0..b.num_rows() {
            ms.insert(
                id.value(i),
                M {
                    country: c.is_valid(i).then(|| c.value(i).to_owned()),
                    birth: bd
                        .is_valid(i)
                        .then(|| cg_model::instant::days_to_date(bd.value(i)).unwrap()),
                    erased: ts(b.column(4), i),
                    ..M::default()
                },
            );
        }
    }
    for b in read_parquet(&files["residences"]) {
        let (id, c) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if let Some(m) = ms.get_mut(&id.value(i)) {
                m.residences.push((
                    ts(b.column(2), i).unwrap(),
                    c.is_valid(i).then(|| c.value(i).to_owned()),
                ));
            }
        }
    }
    for b in read_parquet(&files["notices"]) {
        let id = b.column(0).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if let Some(m) = ms.get_mut(&id.value(i)) {
                let t = ts(b.column(2), i).unwrap();
                m.notice = Some(m.notice.map_or(t, |x| x.min(t)));
            }
        }
    }
    for b in read_parquet(&files["erasures"]) {
        let id = b.column(0).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if let Some(m) = ms.get_mut(&id.value(i)) {
                let t = ts(b.column(1), i).unwrap();
                m.erased = Some(m.erased.map_or(t, |x| x.min(t)));
            }
        }
    }
    for b in read_parquet(&files["consent"]) {
        let (id, p, g, s, n) = (
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_boolean(),
            b.column(5).as_string::<i32>(),
            b.column(6).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if let Some(m) = ms.get_mut(&id.value(i)) {
                m.events.push(ConsentEvent {
                    event_id: None,
                    member_id: MemberId(id.value(i)),
                    purpose: Purpose::new(p.value(i)).unwrap(),
                    granted: g.value(i),
                    ts: ts(b.column(4), i).unwrap(),
                    source: ConsentSource::from(s.value(i)),
                    notice_version: n.is_valid(i).then(|| n.value(i).to_owned()),
                });
            }
        }
    }
    ms
}

fn country_at(m: &M, t: Timestamp) -> Option<&str> {
    match m
        .residences
        .iter()
        .filter(|(f, _)| *f <= t)
        .max_by_key(|(f, _)| *f)
    {
        Some((_, c)) => c.as_deref(),
        None => m.country.as_deref(),
    }
}

fn facts(m: &M, created: Timestamp, as_of: Timestamp) -> MemberView<'_> {
    let g = Purpose::genai_training();
    let (this, other): (Vec<&ConsentEvent>, Vec<&ConsentEvent>) = m
        .events
        .iter()
        .filter(|e| e.ts <= as_of)
        .partition(|e| e.purpose == g);
    let consent = ConsentState::fold(this, as_of);
    let other_purpose_grant = consent.explicit.is_none()
        && other
            .iter()
            .any(|e| e.granted && e.source != ConsentSource::Gpc);
    MemberView {
        country_at_creation: country_at(m, created),
        country_at_cutoff: country_at(m, as_of),
        birth_date: m.birth,
        consent,
        other_purpose_grant,
        erased_at: m.erased,
        notice_delivered_at: m.notice,
    }
}

/// Each content row's text, author and the members it names, by content id.
type Rows = HashMap<i64, (String, i64, Vec<i64>)>;

/// The reference decision of every content row, the rows themselves, and whether a mentioned
/// member's names must be scrubbed (excluded at the cut-off, or unknown).
fn reference(
    files: &BTreeMap<String, PathBuf>,
    policy: &Policy,
    as_of: Timestamp,
) -> (BTreeMap<i64, Verdict>, Rows, impl Fn(i64) -> bool) {
    let ms = load(files);
    let ctx = EvalContext {
        purpose: Purpose::genai_training(),
        as_of,
    };
    let member_excluded = |id: i64| match ms.get(&id) {
        None => true,
        Some(m) => {
            policy
                .evaluate_direct(
                    &ItemFacts {
                        kind: "post",
                        created_at: as_of,
                        member: Some(facts(m, as_of, as_of)),
                    },
                    &ctx,
                )
                .verdict
                .decision()
                == cg_model::Decision::Exclude
        }
    };
    let (mut out, mut rows) = (BTreeMap::new(), Rows::new());
    for b in read_parquet(&files["content"]) {
        let (id, mem, kind, text, mentions) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
            b.column(4).as_string::<i32>(),
            b.column(5).as_list::<i32>(),
        );
        for i in 0..b.num_rows() {
            let created = ts(b.column(3), i).unwrap();
            let author = mem.value(i);
            let item = ItemFacts {
                kind: kind.value(i),
                created_at: created,
                member: ms.get(&author).map(|m| facts(m, created, as_of)),
            };
            let mut v = policy.evaluate_direct(&item, &ctx).verdict;
            let named = mentioned(mentions, i);
            if v.decision().is_kept() && named.iter().any(|m| *m != author && member_excluded(*m)) {
                let mut r = v.reasons().to_vec();
                r.push(ReasonCode::MentionRedacted);
                v = Verdict::from_reasons(r);
            }
            out.insert(id.value(i), v);
            // A missing text redacts as empty.
            let text = if text.is_valid(i) { text.value(i) } else { "" };
            rows.insert(id.value(i), (text.to_owned(), author, named));
        }
    }
    // Whose names a kept row's text may keep when it mentions them: anyone else's (an
    // unknown id too) must be scrubbed.
    let included: std::collections::HashSet<i64> = ms
        .keys()
        .copied()
        .filter(|m| !member_excluded(*m))
        .collect();
    (out, rows, move |id| !included.contains(&id))
}

fn run_build(
    files: &BTreeMap<String, PathBuf>,
    out: &Path,
    as_of: &str,
    policy: &str,
    sets: &[String],
    json: bool,
) -> (serde_json::Value, String) {
    let p = |t: &str| files[t].to_str().unwrap().to_owned();
    let mut args: Vec<String> = [
        "build",
        "--members",
        &p("members"),
        "--content",
        &p("content"),
        "--consent",
        &p("consent"),
        "--residences",
        &p("residences"),
        "--notices",
        &p("notices"),
        "--erasures",
        &p("erasures"),
        "--as-of",
        as_of,
        "--out",
        out.to_str().unwrap(),
        "--shards",
        "4",
        "--policy",
        policy,
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in sets {
        args.extend(["--set".to_owned(), s.clone()]);
    }
    if json {
        args.push("--json".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = consentgate(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let v = if json {
        serde_json::from_str(&text).unwrap()
    } else {
        serde_json::Value::Null
    };
    (v, text)
}

fn check(seed: u64, members: u64, content: u64, as_of: &str, policy: &str, sets: Vec<String>) {
    let dir = cg_test_support::tempdir();
    let cfg = cg_synth::CorpusConfig {
        members,
        content,
        seed,
        format: cg_io::Format::Parquet,
    };
    let summary =
        cg_synth::generate(&cfg, &dir.path().join("c"), &cg_model::progress::NoProgress).unwrap();
    let files: BTreeMap<String, PathBuf> = summary
        .tables
        .iter()
        .map(|t| (t.table.to_owned(), t.path.clone()))
        .collect();
    let (m, _) = run_build(&files, &dir.path().join("o"), as_of, policy, &sets, true);
    let ds = dir.path().join("o").join(m["dataset_id"].as_str().unwrap());
    let mut config = PolicyConfig::default();
    for s in &sets {
        config.set(s).unwrap();
    }
    let policy = Policy::resolve(policy, config).unwrap();
    let (expected, originals, mention_excluded) =
        reference(&files, &policy, Timestamp::parse(as_of).unwrap());
    // Every input row decided exactly once, and exactly as the reference decides it.
    let mut seen = 0;
    let mut seen_ids = std::collections::HashSet::new();
    // Rows of members who asked for erasure are recorded without content or member id.
    let mut anonymous: Vec<Vec<String>> = Vec::new();
    let mut kept_shard: HashMap<i64, i32> = HashMap::new();
    for b in read_parquet(&ds.join("decisions.parquet")) {
        let (id, d, r, s) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_list::<i32>(),
            b.column(4).as_primitive::<Int32Type>(),
        );
        for i in 0..b.num_rows() {
            if !id.is_valid(i) {
                let reasons: Vec<String> = r
                    .value(i)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect();
                assert_eq!(d.value(i), "exclude");
                assert!(!b.column(1).is_valid(i) && !s.is_valid(i));
                anonymous.push(reasons);
                seen += 1;
                continue;
            }
            seen_ids.insert(id.value(i));
            let want = &expected[&id.value(i)];
            let reasons: Vec<String> = r
                .value(i)
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect();
            let want_reasons: Vec<String> = want.reasons().iter().map(|x| x.to_string()).collect();
            assert_eq!(
                (d.value(i), &reasons),
                (want.decision().as_str(), &want_reasons),
                "content {} (seed {seed}, {as_of}, {})",
                id.value(i),
                policy.name()
            );
            assert_eq!(s.is_valid(i), want.decision().is_kept());
            if s.is_valid(i) {
                kept_shard.insert(id.value(i), s.value(i));
            }
            seen += 1;
        }
    }
    assert_eq!(seen, expected.len());
    let mut erased_expected: Vec<Vec<String>> = expected
        .iter()
        .filter(|(id, _)| !seen_ids.contains(*id))
        .map(|(_, v)| v.reasons().iter().map(|x| x.to_string()).collect())
        .collect();
    erased_expected.sort();
    anonymous.sort();
    assert_eq!(
        anonymous, erased_expected,
        "the anonymous rows are the erased members' rows"
    );
    // No shard row belongs to an excluded decision; every kept text is redacted, and a row
    // that scrubs no mention holds exactly the redaction engine's text of its input (a
    // missing text redacts as empty).
    let redactor = cg_redact::Redactor::new().unwrap();
    // Members' display names and handles (what a mention of an excluded member must lose).
    let mut names: HashMap<i64, Vec<String>> = HashMap::new();
    for b in read_parquet(&files["members"]) {
        let id = b.column(0).as_primitive::<Int64Type>();
        let (display, handle) = (
            b.column_by_name("display_name").unwrap().as_string::<i32>(),
            b.column_by_name("handle").unwrap().as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            let both = [display, handle];
            let known = both.iter().filter(|c| c.is_valid(i)).map(|c| c.value(i));
            names.insert(id.value(i), known.map(str::to_owned).collect());
        }
    }
    let (mut in_shards, mut exact) = (0, 0);
    for (n, s) in m["shards"].as_array().unwrap().iter().enumerate() {
        for b in read_parquet(&ds.join(s["file"].as_str().unwrap())) {
            let (id, text) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(3).as_string::<i32>(),
            );
            for i in 0..b.num_rows() {
                assert_eq!(
                    kept_shard.get(&id.value(i)),
                    Some(&(n as i32)),
                    "content {} in the wrong shard or excluded",
                    id.value(i)
                );
                let left: Vec<_> = redactor
                    .find(text.value(i), None)
                    .into_iter()
                    .filter(|s| s.kind.as_str() != "PERSON")
                    .collect();
                assert!(
                    left.is_empty(),
                    "unredacted {:?} in `{}`",
                    left,
                    text.value(i)
                );
                let (original, author, named) = &originals[&id.value(i)];
                if !expected[&id.value(i)]
                    .reasons()
                    .contains(&ReasonCode::MentionRedacted)
                {
                    assert_eq!(
                        text.value(i),
                        redactor.redact(original, None, cg_redact::Replacement::Placeholder),
                        "content {}: `{original}`",
                        id.value(i)
                    );
                    exact += 1;
                } else {
                    // No name or handle of an excluded member it mentions survives.
                    for m in named
                        .iter()
                        .filter(|m| *m != author && mention_excluded(**m))
                    {
                        for name in names.get(m).into_iter().flatten() {
                            assert!(
                                !has_word(text.value(i), name.trim()),
                                "content {}: `{name}` of excluded member {m} kept in `{}`",
                                id.value(i),
                                text.value(i)
                            );
                        }
                    }
                }
                in_shards += 1;
            }
        }
    }
    assert_eq!(in_shards, kept_shard.len());
    // About one row in eight mentions anybody: twenty kept rows that all scrub one would
    // mean the exact check above never ran.
    assert!(
        exact > 0 || in_shards < 20,
        "no kept row without a scrubbed mention among {in_shards}"
    );
}

/// The members row `i` of a content file's `mentions` column names (none when null).
fn mentioned(mentions: &arrow::array::ListArray, i: usize) -> Vec<i64> {
    if mentions.is_null(i) {
        return Vec::new();
    }
    let named = mentions.value(i);
    named.as_primitive::<Int64Type>().iter().flatten().collect()
}

/// Whether `word` (two characters or more) stands in `text` as a whole word at any character
/// position (overlapping matches included), ignoring ASCII case: what the build's mention
/// scrub must replace.
fn has_word(text: &str, word: &str) -> bool {
    if word.chars().count() < 2 {
        return false;
    }
    let (text_lower, word_lower) = (text.to_ascii_lowercase(), word.to_ascii_lowercase());
    text.char_indices().any(|(at, _)| {
        let end = at + word_lower.len();
        text_lower[at..].starts_with(&word_lower)
            && text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric())
            && text[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn the_build_agrees_with_the_reference_on_random_corpora_and_policies(
        seed in 1u64..10_000,
        members in 30u64..300,
        content in 100u64..1_500,
        as_of in prop::sample::select(vec!["2024-06-01", "2025-03-01", "2025-11-10", "2026-03-01"]),
        policy in prop::sample::select(vec!["timeline", "li-2024-pre", "li-2024-09", "li-2025-11", "strict-optin"]),
        min_age in prop::sample::select(vec![0u8, 16, 18]),
        gpc in any::<bool>(),
        window in prop::sample::select(vec![0u32, 30]),
    ) {
        check(seed, members, content, as_of, policy, vec![
            format!("minimum_age={min_age}"),
            format!("gpc_as_objection={gpc}"),
            format!("notice_window_days={window}"),
        ]);
    }
}

#[test]
fn golden_manifest_and_summary() {
    // A fixed log key: the member commitment's root depends on it.
    let key = cg_proof::note::NoteSigner::from_seed("consentgate.test/log", &[7u8; 32]).unwrap();
    std::fs::create_dir_all(crate::util::data_dir()).unwrap();
    std::fs::write(crate::util::data_dir().join("log.key"), key.private_key()).unwrap();
    let dir = cg_test_support::tempdir();
    let cfg = cg_synth::CorpusConfig {
        members: 300,
        content: 2_000,
        seed: 7,
        format: cg_io::Format::Parquet,
    };
    let summary =
        cg_synth::generate(&cfg, &dir.path().join("c"), &cg_model::progress::NoProgress).unwrap();
    let files: BTreeMap<String, PathBuf> = summary
        .tables
        .iter()
        .map(|t| (t.table.to_owned(), t.path.clone()))
        .collect();
    let (mut m, _) = run_build(
        &files,
        &dir.path().join("a"),
        "2025-03-01",
        "timeline",
        &[],
        true,
    );
    m.as_object_mut().unwrap().remove("created_at");
    crate::util::golden(
        "manifest.json",
        &(serde_json::to_string_pretty(&m).unwrap() + "\n"),
    );
    let (_, text) = run_build(
        &files,
        &dir.path().join("b"),
        "2025-03-01",
        "timeline",
        &[],
        false,
    );
    let filtered: String = text
        .lines()
        .map(|l| {
            if l.starts_with("path ") {
                "path      <dir>"
            } else if l.starts_with("rows ") {
                l.split(" in ").next().unwrap_or(l)
            } else {
                l
            }
        })
        .map(|l| format!("{l}\n"))
        .collect();
    crate::util::golden("summary.txt", &filtered);
}
