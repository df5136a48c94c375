//! `consentgate redact`: redacts plain text lines or JSONL (`{"text": ...}`) from stdin or a
//! file; `--spans` prints `{"text", "spans": [{"start", "end", "type"}]}` with character offsets.
//! The work is [`cg_redact::stream`]: every core, output in input order.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use cg_redact::stream::{Output, StreamOptions, redact_stream};
use cg_redact::{Redactor, Replacement};
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
    let (name, mut input): (String, Box<dyn Read + Send>) = match &args.file {
        Some(path) => (
            path.display().to_string(),
            Box::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open `{}`", path.display()))?,
            ),
        ),
        None => ("<stdin>".to_owned(), Box::new(std::io::stdin())),
    };
    let options = StreamOptions {
        output: if args.spans {
            Output::Spans
        } else {
            Output::Redacted(how)
        },
        hint: args.country.as_deref(),
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1),
        name: &name,
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    redact_stream(&redactor, &mut input, &mut out, &options)?;
    Ok(())
}
