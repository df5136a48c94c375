//! `consentgate redact`: redacts plain text lines or JSONL (`{"text": ...}`) from stdin or a
//! file; `--spans` prints `{"text", "spans": [{"start", "end", "type"}]}` with character offsets.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{SyncSender, sync_channel};

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
    // A pipeline: this thread reads blocks of whole lines, workers redact blocks, a writer puts
    // the outputs back in input order. Channels are bounded, so memory stays a few blocks.
    let (to_work, work) = sync_channel::<Block>(threads * 2);
    let work = Mutex::new(work);
    let (to_write, done) = sync_channel::<(u64, anyhow::Result<Vec<u8>>)>(threads * 2);
    std::thread::scope(|s| -> anyhow::Result<()> {
        for _ in 0..threads {
            let (work, to_write, job) = (&work, to_write.clone(), &job);
            s.spawn(move || {
                loop {
                    let next = match work.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok(block) = next else { break };
                    let result = job.run(block.first_line, &block.bytes);
                    if to_write.send((block.seq, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(to_write);
        let writer = s.spawn(move || -> anyhow::Result<()> {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let mut next = 0u64;
            let mut pending = std::collections::BTreeMap::new();
            for (seq, result) in done {
                pending.insert(seq, result);
                while let Some(r) = pending.remove(&next) {
                    out.write_all(&r?)?;
                    next += 1;
                }
            }
            out.flush()?;
            Ok(())
        });
        let read = read_blocks(&mut input, &name, &to_work);
        drop(to_work);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the output writer panicked")));
        // A write error (or a worker's error) first: reading stopped because of it.
        written.and(read)
    })
}

/// Bytes per block handed to a worker (whole lines; a longer line makes a longer block).
const BLOCK_BYTES: usize = 1 << 20;

/// Whole lines of the input, numbered.
struct Block {
    seq: u64,
    first_line: u64,
    bytes: Vec<u8>,
}

/// Reads `input` into blocks of whole lines and sends them in order; stops early when the
/// workers are gone (an error downstream).
fn read_blocks(
    input: &mut dyn Read,
    name: &str,
    to_work: &SyncSender<Block>,
) -> anyhow::Result<()> {
    let mut seq = 0u64;
    let mut line = 1u64;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = std::mem::take(&mut carry);
        let start = buf.len();
        buf.resize(start + BLOCK_BYTES, 0);
        let n =
            read_full(input, &mut buf[start..]).with_context(|| format!("cannot read {name}"))?;
        buf.truncate(start + n);
        let eof = n == 0;
        if buf.is_empty() {
            return Ok(());
        }
        // Send up to the last newline; keep the rest for the next block (all of it at EOF). A
        // block without any newline yet keeps growing until one comes.
        let cut = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => {
                    carry = buf;
                    continue;
                }
            }
        };
        carry = buf.split_off(cut);
        let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
        let block = Block {
            seq,
            first_line: line,
            bytes: buf,
        };
        if to_work.send(block).is_err() {
            return Ok(());
        }
        seq += 1;
        line += lines;
        if eof {
            return Ok(());
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What every worker needs.
struct Job<'a> {
    redactor: &'a Redactor,
    hint: Option<&'a str>,
    spans: bool,
    how: Replacement,
    name: &'a str,
}

impl Job<'_> {
    /// Redacts a block of whole lines (the first is line `first_line`) into one output buffer.
    fn run(&self, first_line: u64, block: &[u8]) -> anyhow::Result<Vec<u8>> {
        // The block ends with a newline (or the input's last line): no empty line after it.
        let body = block.strip_suffix(b"\n").unwrap_or(block);
        let lines: Vec<(u64, &str)> = body
            .split(|b| *b == b'\n')
            .enumerate()
            .map(|(i, l)| {
                let n = first_line + i as u64;
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                std::str::from_utf8(l)
                    .map(|t| (n, t))
                    .with_context(|| format!("{}: line {n}: not UTF-8 text", self.name))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut out = Vec::with_capacity(block.len() + block.len() / 8);
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
