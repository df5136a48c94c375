//! Errors at the edge: `error:` then `Caused by:` then `hint:`, and the exit code
//! (1 for failures, 2 for usage errors).

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

/// Prints `err` cargo-style on stderr and returns the exit code.
pub fn report(err: &anyhow::Error) -> u8 {
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
