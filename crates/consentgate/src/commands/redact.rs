//! `consentgate redact`: redacts plain text lines or JSONL (`{"text": ...}`) from stdin or a
//! file; `--spans` prints `{"text", "spans": [{"start", "end", "type"}]}` with character offsets.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::Context;
use cg_redact::{Redactor, Replacement, char_spans};
use clap::Args;

use crate::printer::Printer;

/// Arguments of `redact`.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// Input file (default: stdin). Each line is plain text, or a JSON object with a `text` field.
    pub file: Option<PathBuf>,
    /// Print the spans found (character offsets into the input text) as JSONL instead of
    /// redacted text.
    #[arg(long)]
    pub spans: bool,
    /// The author's country (ISO alpha-2), a hint for national phone formats.
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    /// Replace with keyed pseudonyms (`<EMAIL_1a2b3c4d>`) instead of placeholders; the key is
    /// read from the environment variable `CG_PSEUDONYM_KEY`.
    #[arg(long)]
    pub pseudonymize: bool,
    /// A custom pattern `NAME=REGEX` (repeatable).
    #[arg(long = "pattern", value_name = "NAME=REGEX")]
    pub patterns: Vec<String>,
    /// Names to remove as PERSON (repeatable), e.g. excluded members' display names.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
}

/// Runs `redact`.
pub fn run(args: RedactArgs, _printer: Printer) -> anyhow::Result<()> {
    let mut builder = Redactor::builder().common_names(true);
    for p in &args.patterns {
        let (name, regex) = p
            .split_once('=')
            .ok_or_else(|| crate::errors::UsageError(format!("`{p}` is not `NAME=REGEX`")))?;
        builder = builder.custom(name, regex);
    }
    builder = builder.gazetteer(
        args.names
            .iter()
            .map(|n| (n.clone(), cg_redact::EntityType::Person)),
    );
    let how = if args.pseudonymize {
        let key = std::env::var("CG_PSEUDONYM_KEY").map_err(|_| crate::errors::Hinted {
            message: "--pseudonymize needs a key".into(),
            hint: "set CG_PSEUDONYM_KEY to a secret (the same secret gives the same tokens)".into(),
        })?;
        builder = builder.pseudonym_key(key.as_bytes());
        Replacement::Pseudonym
    } else {
        Replacement::Placeholder
    };
    let redactor = builder
        .build()
        .map_err(|e| crate::errors::UsageError(e.to_string()))?;
    let (name, input): (String, Box<dyn BufRead>) = match &args.file {
        Some(path) => (
            path.display().to_string(),
            Box::new(BufReader::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open `{}`", path.display()))?,
            )),
        ),
        None => (
            "<stdin>".to_owned(),
            Box::new(BufReader::new(std::io::stdin().lock())),
        ),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let hint = args.country.as_deref();
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {}: not UTF-8 text", n + 1))?;
        let json: Option<serde_json::Map<String, serde_json::Value>> =
            if line.trim_start().starts_with('{') {
                serde_json::from_str(&line).ok()
            } else {
                None
            };
        let text = match &json {
            Some(obj) => obj
                .get("text")
                .and_then(|t| t.as_str())
                .with_context(|| {
                    format!(
                        "{name}: line {}: a JSON line needs a string field `text`",
                        n + 1
                    )
                })?
                .to_owned(),
            None => line.clone(),
        };
        let spans = redactor.find(&text, hint);
        if args.spans {
            let v = serde_json::json!({ "text": text, "spans": char_spans(&text, &spans) });
            serde_json::to_writer(&mut out, &v)?;
            writeln!(out)?;
        } else {
            let redacted = redactor.apply(&text, &spans, how);
            match json {
                Some(mut obj) => {
                    obj.insert("text".into(), serde_json::Value::String(redacted));
                    serde_json::to_writer(&mut out, &obj)?;
                    writeln!(out)?;
                }
                None => writeln!(out, "{redacted}")?,
            }
        }
    }
    out.flush()?;
    Ok(())
}
