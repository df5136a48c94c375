//! The one place output is written: data to stdout (text or JSON), status, warnings and
//! progress to stderr.

use std::io::Write;

use serde::Serialize;

/// Where output goes and in what shape.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// Print data as JSON.
    pub json: bool,
    /// Suppress status lines and progress bars.
    pub quiet: bool,
    /// Print each stage's wall time on stderr when it ends (`--timings`).
    pub timings: bool,
}

impl Printer {
    /// Prints data: `value` as pretty JSON with `--json`, else `text()`.
    pub fn data<T: Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", text())?;
        }
        out.flush()?;
        Ok(())
    }

    /// A status line on stderr (`    Finished ...`, cargo style).
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{verb:>12} {message}");
        }
    }
}
