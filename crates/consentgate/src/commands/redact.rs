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
    /// Do not look for person names with the built-in name lists (names given with `--name`
    /// are still removed).
    #[arg(long)]
    pub no_names: bool,
    /// Worker threads (default: every core). Output stays in input order.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Runs `redact`.
pub fn run(args: RedactArgs, _printer: Printer) -> anyhow::Result<()> {
    let mut builder = Redactor::builder().common_names(!args.no_names);
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
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let job = Job {
        redactor: &redactor,
        hint: args.country.as_deref(),
        spans: args.spans,
        how,
        name: &name,
    };
    // Lines are read in chunks, each chunk split over the threads, and the outputs written in
    // input order.
    let mut chunk: Vec<(usize, String)> = Vec::with_capacity(CHUNK_LINES);
    let mut lines = input.lines().enumerate();
    loop {
        chunk.clear();
        for (n, line) in lines.by_ref().take(CHUNK_LINES) {
            let line = line.with_context(|| format!("{name}: line {}: not UTF-8 text", n + 1))?;
            chunk.push((n + 1, line));
        }
        if chunk.is_empty() {
            break;
        }
        let per = chunk.len().div_ceil(threads);
        let outputs: Vec<anyhow::Result<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .chunks(per)
                .map(|part| s.spawn(|| job.run(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a redaction worker panicked")))
                })
                .collect()
        });
        for o in outputs {
            out.write_all(&o?)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Lines per chunk handed to the workers.
const CHUNK_LINES: usize = 8192;

/// What every worker needs.
struct Job<'a> {
    redactor: &'a Redactor,
    hint: Option<&'a str>,
    spans: bool,
    how: Replacement,
    name: &'a str,
}

impl Job<'_> {
    /// Redacts numbered lines into one output buffer.
    fn run(&self, lines: &[(usize, String)]) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(lines.iter().map(|(_, l)| l.len() + 16).sum());
        let mut spans = Vec::new();
        for (n, line) in lines {
            let json: Option<serde_json::Map<String, serde_json::Value>> =
                if line.trim_start().starts_with('{') {
                    serde_json::from_str(line).ok()
                } else {
                    None
                };
            let text: &str = match &json {
                Some(obj) => obj.get("text").and_then(|t| t.as_str()).with_context(|| {
                    format!(
                        "{}: line {n}: a JSON line needs a string field `text`",
                        self.name
                    )
                })?,
                None => line,
            };
            self.redactor.find_into(text, self.hint, &mut spans);
            if self.spans {
                let v = serde_json::json!({ "text": text, "spans": char_spans(text, &spans) });
                serde_json::to_writer(&mut out, &v)?;
                out.push(b'\n');
            } else {
                let redacted = self.redactor.apply(text, &spans, self.how);
                match json {
                    Some(mut obj) => {
                        obj.insert("text".into(), serde_json::Value::String(redacted));
                        serde_json::to_writer(&mut out, &obj)?;
                        out.push(b'\n');
                    }
                    None => {
                        out.extend_from_slice(redacted.as_bytes());
                        out.push(b'\n');
                    }
                }
            }
        }
        Ok(out)
    }
}
