//! Progress reporting for long jobs: libraries call a [`Progress`]; only the binary draws bars.

/// Receives progress from a long-running library call.
pub trait Progress: Sync {
    /// A new stage begins, with `total` units of work if known.
    fn stage(&self, name: &str, total: Option<u64>);
    /// `n` more units are done in the current stage.
    fn advance(&self, n: u64);
    /// The current stage is done.
    fn finish_stage(&self) {}
    /// A figure about the job worth knowing when measuring it (e.g. how many attribute tuples
    /// Cedar decided); ignored unless the receiver reports them.
    fn figure(&self, _name: &str, _value: u64) {}
}

/// Discards all progress (tests, libraries used quietly).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _name: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
}
