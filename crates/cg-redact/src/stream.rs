//! Line streams: redacts a stream of plain-text or JSONL lines on every core, output in input
//! order, memory bounded to a few blocks. `consentgate redact` is this module plus argument
//! parsing.
//!
//! A pipeline of three stages joined by bounded channels:
//!
//! 1. the caller's thread reads blocks of whole lines (about [`BLOCK_BYTES`]) straight into a
//!    fresh buffer (no zero-filling, no per-line work: a block is cut after its last newline);
//! 2. workers (one per core) split a block into lines, check each is UTF-8, find the entities
//!    and write the block's whole output into one buffer (no allocation per line for plain
//!    text);
//! 3. a writer puts the blocks back in input order and writes them. It also numbers lines:
//!    workers count a block's lines and report an error's line within the block, and the
//!    writer, which sees every block in order, turns that into the line number in the input.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use crate::engine::{Redactor, Replacement, Span, char_spans};

/// Bytes per block handed to a worker (whole lines; a longer line makes a longer block).
pub const BLOCK_BYTES: usize = 1 << 20;

/// What to write for each line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The line with every entity replaced (`<EMAIL>` or a pseudonym); a JSON line keeps its
    /// other fields and gets its `text` replaced.
    Redacted(Replacement),
    /// `{"text": ..., "spans": [{"start", "end", "type"}]}` with character offsets.
    Spans,
}

/// How to run a stream.
#[derive(Clone, Debug)]
pub struct StreamOptions<'a> {
    /// What to write per line.
    pub output: Output,
    /// The author's country (ISO alpha-2), passed to the engine.
    pub hint: Option<&'a str>,
    /// Worker threads (at least one).
    pub threads: usize,
    /// The input's name in error messages (a path, or `<stdin>`).
    pub name: &'a str,
}

/// What a finished stream did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// Why a stream stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The input could not be read.
    #[error("cannot read {name}: {source}")]
    Read {
        /// The input's name.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Write(#[source] std::io::Error),
    /// A line is not UTF-8.
    #[error("{name}: line {line}: not UTF-8 text")]
    NotUtf8 {
        /// The input's name.
        name: String,
        /// The line number (from 1).
        line: u64,
    },
    /// A JSON line without a string `text`.
    #[error("{name}: line {line}: a JSON line needs a string field `text`")]
    NoText {
        /// The input's name.
        name: String,
        /// The line number (from 1).
        line: u64,
    },
    /// A worker thread panicked (a bug); nothing after the last complete block was written.
    #[error("a redaction worker stopped unexpectedly")]
    Worker,
}

/// A line-level problem found by a worker, before the writer knows the absolute line number.
enum LineProblem {
    NotUtf8,
    NoText,
}

/// A worker's result for one block.
struct Done {
    seq: u64,
    /// Lines in the block.
    lines: u64,
    /// The output, or the problem and its line within the block (from 0).
    result: Result<Vec<u8>, (u64, LineProblem)>,
}

/// Redacts `input` line by line into `output` on `options.threads` workers. On an error the
/// output holds the complete output of the lines before the failing block, or less.
pub fn redact_stream(
    redactor: &Redactor,
    input: &mut dyn Read,
    output: &mut (dyn Write + Send),
    options: &StreamOptions<'_>,
) -> Result<StreamStats, StreamError> {
    let threads = options.threads.max(1);
    let (to_work, work) = sync_channel::<(u64, Vec<u8>)>(threads * 2);
    // Owned by the workers: when the last one stops (the writer is gone), the reader's next send
    // fails instead of waiting forever.
    let work = Arc::new(Mutex::new(work));
    let (to_write, done) = sync_channel::<Done>(threads * 2);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (work, to_write) = (Arc::clone(&work), to_write.clone());
            s.spawn(move || {
                let mut scratch = Scratch::default();
                loop {
                    let next = match work.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((seq, block)) = next else { break };
                    let (lines, result) = redact_block(redactor, options, &block, &mut scratch);
                    if to_write.send(Done { seq, lines, result }).is_err() {
                        break;
                    }
                }
            });
        }
        drop((to_write, work));
        let name = options.name;
        let writer = s.spawn(move || -> Result<StreamStats, StreamError> {
            let mut stats = StreamStats::default();
            let mut next = 0u64;
            let mut pending = BTreeMap::new();
            for d in done {
                pending.insert(d.seq, d);
                while let Some(d) = pending.remove(&next) {
                    match d.result {
                        Ok(bytes) => {
                            output.write_all(&bytes).map_err(StreamError::Write)?;
                            stats.bytes_out += bytes.len() as u64;
                        }
                        Err((at, problem)) => {
                            let (name, line) = (name.to_owned(), stats.lines + at + 1);
                            return Err(match problem {
                                LineProblem::NotUtf8 => StreamError::NotUtf8 { name, line },
                                LineProblem::NoText => StreamError::NoText { name, line },
                            });
                        }
                    }
                    stats.lines += d.lines;
                    next += 1;
                }
            }
            output.flush().map_err(StreamError::Write)?;
            Ok(stats)
        });
        let read = read_blocks(input, options.name, &to_work);
        drop(to_work);
        let written = writer.join().unwrap_or(Err(StreamError::Worker));
        // A write error (or a line's error) first: reading stopped because of it.
        let mut stats = written?;
        stats.bytes_in = read?;
        Ok(stats)
    })
}

/// Reads `input` into blocks of whole lines and sends them in order; stops early when the
/// workers are gone (an error downstream). Returns the bytes read.
fn read_blocks(
    input: &mut dyn Read,
    name: &str,
    to_work: &SyncSender<(u64, Vec<u8>)>,
) -> Result<u64, StreamError> {
    let mut seq = 0u64;
    let mut total = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut buf = Vec::with_capacity(carry.len() + BLOCK_BYTES);
        buf.append(&mut carry);
        let start = buf.len();
        // `read_to_end` fills the spare capacity without zeroing it first.
        let n = Read::take(&mut *input, BLOCK_BYTES as u64)
            .read_to_end(&mut buf)
            .map_err(|source| StreamError::Read {
                name: name.to_owned(),
                source,
            })?;
        total += n as u64;
        let eof = n == 0;
        if buf.is_empty() {
            return Ok(total);
        }
        debug_assert_eq!(buf.len(), start + n);
        // Send up to the last newline; keep the rest for the next block (all of it at EOF). A
        // block without any newline yet keeps growing until one comes.
        let cut = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    carry = buf;
                    continue;
                }
            }
        };
        carry = buf.split_off(cut);
        if to_work.send((seq, buf)).is_err() {
            return Ok(total);
        }
        seq += 1;
        if eof {
            return Ok(total);
        }
    }
}

/// A worker's buffers, reused from block to block.
#[derive(Default)]
struct Scratch {
    spans: Vec<Span>,
}

/// Redacts a block of whole lines into one output buffer; returns the block's line count.
fn redact_block(
    redactor: &Redactor,
    options: &StreamOptions<'_>,
    block: &[u8],
    scratch: &mut Scratch,
) -> (u64, Result<Vec<u8>, (u64, LineProblem)>) {
    // The block ends with a newline (or the input's last line): no empty line after it.
    let body = block.strip_suffix(b"\n").unwrap_or(block);
    let lines = if block.is_empty() {
        0
    } else {
        memchr::memchr_iter(b'\n', body).count() as u64 + 1
    };
    // One UTF-8 check for the whole block (a newline never sits inside a character, so the
    // block is valid exactly when every line is); the failing line is found only on failure.
    let body = match std::str::from_utf8(body) {
        Ok(body) => body,
        Err(e) => {
            let at = memchr::memchr_iter(b'\n', &body[..e.valid_up_to()]).count() as u64;
            return (lines, Err((at, LineProblem::NotUtf8)));
        }
    };
    let mut out = Vec::with_capacity(block.len() + block.len() / 8);
    let ends = memchr::memchr_iter(b'\n', body.as_bytes()).chain(std::iter::once(body.len()));
    let mut start = 0;
    for (at, end) in ends.enumerate() {
        // `start` and `end` sit next to newlines (or the ends): character boundaries.
        let line = body.get(start..end).unwrap_or_default();
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Err(problem) = redact_line(redactor, options, line, &mut scratch.spans, &mut out) {
            return (lines, Err((at as u64, problem)));
        }
    }
    (lines, Ok(out))
}

/// Writes one line's output (and its newline) to `out`.
fn redact_line(
    redactor: &Redactor,
    options: &StreamOptions<'_>,
    line: &str,
    spans: &mut Vec<Span>,
    out: &mut Vec<u8>,
) -> Result<(), LineProblem> {
    let json: Option<serde_json::Map<String, serde_json::Value>> =
        if line.trim_start().starts_with('{') {
            serde_json::from_str(line).ok()
        } else {
            None
        };
    let text: &str = match &json {
        Some(obj) => obj
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or(LineProblem::NoText)?,
        None => line,
    };
    redactor.find_into(text, options.hint, spans);
    match options.output {
        Output::Spans => {
            let v = serde_json::json!({ "text": text, "spans": char_spans(text, spans) });
            // Writing a `Value` into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, &v);
        }
        Output::Redacted(how) if json.is_none() => redactor.apply_into(text, spans, how, out),
        Output::Redacted(how) => {
            let redacted = redactor.apply(text, spans, how);
            if let Some(mut obj) = json {
                obj.insert("text".into(), serde_json::Value::String(redacted));
                let _ = serde_json::to_writer(&mut *out, &obj);
            }
        }
    }
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], output: Output, threads: usize) -> Result<(String, StreamStats), String> {
        let r = Redactor::new().unwrap();
        let mut out = Vec::new();
        let options = StreamOptions {
            output,
            hint: None,
            threads,
            name: "in.txt",
        };
        redact_stream(&r, &mut &input[..], &mut out, &options)
            .map(|stats| (String::from_utf8(out).unwrap(), stats))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn output_keeps_input_order_across_blocks_and_threads() {
        // Lines long enough that the input spans several blocks.
        let mut input = String::new();
        let mut expected = String::new();
        for i in 0..60_000 {
            input.push_str(&format!(
                "line {i}: write to user{i}@example.com {}\n",
                "x".repeat(i % 40)
            ));
            expected.push_str(&format!(
                "line {i}: write to <EMAIL> {}\n",
                "x".repeat(i % 40)
            ));
        }
        assert!(input.len() > 2 * BLOCK_BYTES);
        for threads in [1, 2, 5] {
            let (out, stats) = run(
                input.as_bytes(),
                Output::Redacted(Replacement::Placeholder),
                threads,
            )
            .unwrap();
            assert!(out == expected, "threads {threads}");
            assert_eq!(stats.lines, 60_000);
            assert_eq!(stats.bytes_in, input.len() as u64);
            assert_eq!(stats.bytes_out, expected.len() as u64);
        }
    }

    #[test]
    fn the_last_line_may_lack_a_newline_and_crlf_is_accepted() {
        let (out, stats) = run(
            b"a\r\ncall +44 20 7946 0958",
            Output::Redacted(Replacement::Placeholder),
            2,
        )
        .unwrap();
        assert_eq!(out, "a\ncall <PHONE>\n");
        assert_eq!(stats.lines, 2);
        let (out, _) = run(b"", Output::Spans, 2).unwrap();
        assert_eq!(out, "");
    }

    #[test]
    fn json_lines_keep_their_fields_and_spans_use_character_offsets() {
        let input = "{\"id\": 7, \"text\": \"é mail a@b.example\"}\nplain é a@b.example\n";
        let (out, _) = run(
            input.as_bytes(),
            Output::Redacted(Replacement::Placeholder),
            1,
        )
        .unwrap();
        assert_eq!(
            out,
            "{\"id\":7,\"text\":\"é mail <EMAIL>\"}\nplain é <EMAIL>\n"
        );
        let (out, _) = run(input.as_bytes(), Output::Spans, 1).unwrap();
        let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(first["spans"][0]["start"], 7);
        assert_eq!(first["spans"][0]["end"], 18);
        assert_eq!(first["spans"][0]["type"], "EMAIL");
    }

    #[test]
    fn errors_name_the_line_in_the_whole_input() {
        // The bad line is in a later block: its number counts the lines of every block before.
        let mut input = Vec::new();
        for _ in 0..100_000 {
            input.extend_from_slice(b"plain text line\n");
        }
        assert!(input.len() > BLOCK_BYTES);
        input.extend_from_slice(b"ok\nbad \xff byte\n");
        let err = run(&input, Output::Redacted(Replacement::Placeholder), 2).unwrap_err();
        assert_eq!(err, "in.txt: line 100002: not UTF-8 text");
        let err = run(b"ok\n{\"no_text\": 1}\n", Output::Spans, 2).unwrap_err();
        assert_eq!(
            err,
            "in.txt: line 2: a JSON line needs a string field `text`"
        );
    }

    #[test]
    fn a_failing_output_stops_the_stream_with_a_write_error() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let r = Redactor::new().unwrap();
        let input = "x\n".repeat(2_000_000);
        let options = StreamOptions {
            output: Output::Spans,
            hint: None,
            threads: 2,
            name: "in.txt",
        };
        let err = redact_stream(&r, &mut input.as_bytes(), &mut Full, &options).unwrap_err();
        assert_eq!(err.to_string(), "cannot write the output: disk full");
    }
}
