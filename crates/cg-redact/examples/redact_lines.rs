//! The line-stream redactor alone, as `consentgate redact` runs it (every core, output in input
//! order), for profiling without the whole CLI: `cargo run --release -p cg-redact --example
//! redact_lines -- FILE [THREADS] > OUT`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use cg_redact::stream::{Output, StreamOptions, redact_stream};
use cg_redact::{Redactor, Replacement};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let threads = args.get(2).map_or(2, |t| t.parse().unwrap());
    let redactor = Redactor::new().unwrap();
    let mut input = std::fs::File::open(path).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    let options = StreamOptions {
        output: Output::Redacted(Replacement::Placeholder),
        hint: None,
        threads,
        name: path,
    };
    let start = std::time::Instant::now();
    let stats = redact_stream(&redactor, &mut input, &mut out, &options).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} lines, {:.0} MB in {secs:.2} s: {:.0} MB/s",
        stats.lines,
        stats.bytes_in as f64 / 1e6,
        stats.bytes_in as f64 / 1e6 / secs
    );
}
