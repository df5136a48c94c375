//! `consentgate redact`: plain lines, JSONL, spans with character offsets, pseudonyms.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_consentgate"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The process may exit before reading (usage errors): a broken pipe is not a failure.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap(),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn plain_lines_are_redacted() {
    let (code, out, _) = run(
        &["redact"],
        "mail me at jane.doe@example.co.uk or +44 20 7946 0958\nnothing here\n",
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(out, "mail me at <EMAIL> or <PHONE>\nnothing here\n");
}

#[test]
fn spans_are_character_offsets_for_non_ascii_text() {
    let text = "Zoë 🎉: zoë@example.com, +44 20 7946 0958";
    let (code, out, _) = run(&["redact", "--spans"], &format!("{text}\n"), &[]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["text"], text);
    let chars: Vec<char> = text.chars().collect();
    let spans = v["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let value = |s: &serde_json::Value| -> String {
        chars[s["start"].as_u64().unwrap() as usize..s["end"].as_u64().unwrap() as usize]
            .iter()
            .collect()
    };
    assert_eq!(spans[0]["type"], "EMAIL");
    assert_eq!(value(&spans[0]), "zoë@example.com");
    assert_eq!(spans[1]["type"], "PHONE");
    assert_eq!(value(&spans[1]), "+44 20 7946 0958");
}

#[test]
fn jsonl_keeps_other_fields_and_country_hints_national_phones() {
    let (code, out, _) = run(
        &["redact", "--country", "GB"],
        "{\"id\": 7, \"text\": \"ring 020 7946 0958\"}\n",
        &[],
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["text"], "ring <PHONE>");
}

#[test]
fn pseudonyms_need_a_key() {
    let (code, _, err) = run(&["redact", "--pseudonymize"], "a@example.com\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("hint:"), "{err}");
    let (code, out, _) = run(
        &["redact", "--pseudonymize"],
        "a@example.com\n",
        &[("CG_PSEUDONYM_KEY", "k")],
    );
    assert_eq!(code, 0);
    assert!(
        out.starts_with("<EMAIL_") && out.trim().len() == "<EMAIL_12345678>".len(),
        "{out}"
    );
}

#[test]
fn bad_json_text_field_is_an_error_naming_the_line() {
    let (code, _, err) = run(&["redact"], "fine\n{\"text\": 5}\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("line 2"), "{err}");
}
