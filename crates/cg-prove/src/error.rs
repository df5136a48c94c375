//! Why a comparison gave no answer. Every variant means "not proved": the caller must never
//! report a proof (the CLI exits 3).

/// A comparison that could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The solver binary cannot be run.
    #[error("the SMT solver `{path}` cannot be run: {message}")]
    SolverUnavailable {
        /// The path tried.
        path: String,
        /// What failed.
        message: String,
    },
    /// The solver did not answer in time.
    #[error("the SMT solver did not answer within {timeout_ms} ms")]
    SolverTimeout {
        /// The limit.
        timeout_ms: u64,
    },
    /// The solver answered `unknown` (its per-query time limit, or a problem it does not decide).
    #[error("the SMT solver answered `unknown` (per-query limit {timeout_ms} ms)")]
    SolverUnknown {
        /// The per-query limit.
        timeout_ms: u64,
    },
    /// The solver failed, or its model could not be read.
    #[error("the SMT solver gave no answer")]
    Solver {
        /// The symbolic compiler's error.
        #[source]
        source: Box<cedar_policy_symcc::err::Error>,
    },
    /// A policy uses something the proof cannot model soundly.
    #[error("policy `{policy}` cannot be compared: {message}")]
    Unsupported {
        /// The policy id.
        policy: String,
        /// What it uses.
        message: String,
    },
    /// The proof's own encoding failed (a bug, reported rather than trusted).
    #[error("the proof's encoding is invalid: {message}")]
    Encoding {
        /// What failed.
        message: String,
    },
}

impl ProveError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ProveError::SolverUnavailable { .. } => Some(
                "install cvc5 (`scripts/install-solver.sh` installs Debian's) or pass `--solver PATH`",
            ),
            ProveError::SolverTimeout { .. } | ProveError::SolverUnknown { .. } => {
                Some("raise `--timeout-ms`; nothing is reported as proved until the solver answers")
            }
            ProveError::Solver { .. } => {
                Some("the solver may have hit a resource limit; no result is reported as proved")
            }
            ProveError::Unsupported { .. } | ProveError::Encoding { .. } => None,
        }
    }

    pub(crate) fn encoding(message: impl std::fmt::Display) -> ProveError {
        ProveError::Encoding {
            message: message.to_string(),
        }
    }

    pub(crate) fn solver(e: cedar_policy_symcc::err::Error) -> ProveError {
        ProveError::Solver {
            source: Box::new(e),
        }
    }
}
