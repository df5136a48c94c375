//! Errors at the edge: `error:` then `Caused by:` then `hint:`, and the exit code
//! (1 for failures, 2 for usage errors, 3 for a question left unanswered).

use std::fmt;

/// An error the user can fix, with a hint saying how.
#[derive(Debug)]
pub struct Hinted {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// A usage error found after argument parsing (bad flag value): exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A command that printed its result and ends with this exit code, printing nothing more
/// (`policy prove`'s counterexample: 1).
#[derive(Debug)]
pub struct Finished(pub u8);

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit code {}", self.0)
    }
}

impl std::error::Error for Finished {}

/// A question the tool could not answer (`policy prove` without the solver's answer): exit
/// code 3, never a result.
#[derive(Debug)]
pub struct NoAnswer {
    /// Why.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NoAnswer {}

/// Prints `err` cargo-style on stderr and returns the exit code.
pub fn report(err: &anyhow::Error) -> u8 {
    if let Some(Finished(code)) = err.downcast_ref::<Finished>() {
        return *code;
    }
    if let Some(no) = err.downcast_ref::<NoAnswer>() {
        eprintln!("error: {}", no.message);
        if let Some(h) = &no.hint {
            eprintln!();
            eprintln!("hint: {h}");
        }
        return 3;
    }
    eprintln!("error: {err}");
    let mut causes = err.chain().skip(1).peekable();
    if causes.peek().is_some() {
        eprintln!();
        eprintln!("Caused by:");
        for cause in causes {
            eprintln!("  {cause}");
        }
    }
    // A context value is found by `anyhow::Error::downcast_ref`, a source by walking the chain.
    let hint = err
        .downcast_ref::<Hinted>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<Hinted>()));
    if let Some(h) = hint {
        eprintln!();
        eprintln!("hint: {}", h.hint);
    }
    let usage = err.downcast_ref::<UsageError>().is_some()
        || err
            .chain()
            .any(|e| e.downcast_ref::<UsageError>().is_some());
    if usage { 2 } else { 1 }
}
