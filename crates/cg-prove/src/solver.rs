//! Finding and starting the cvc5 solver, with bounded waits.

use std::path::PathBuf;
use std::time::Duration;

use cedar_policy_symcc::solver::LocalSolver;
use serde::Serialize;

use crate::error::ProveError;

/// Which solver to run and how long each query may take.
#[derive(Clone, Debug)]
pub struct SolverConfig {
    /// The cvc5 binary; `None`: `$CVC5`, else `cvc5` on `PATH`.
    pub path: Option<PathBuf>,
    /// The limit per query (cvc5's own `--tlimit-per`, and a wall-clock limit around it).
    pub timeout: Duration,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            path: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The solver that answered.
#[derive(Clone, Debug, Serialize)]
pub struct SolverInfo {
    /// The binary run.
    pub path: String,
    /// Its `--version` line.
    pub version: String,
}

impl SolverConfig {
    fn binary(&self) -> PathBuf {
        self.path
            .clone()
            .or_else(|| std::env::var_os("CVC5").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("cvc5"))
    }

    /// Runs `cvc5 --version` (bounded) to check the solver can run at all.
    pub(crate) async fn probe(&self) -> Result<SolverInfo, ProveError> {
        let path = self.binary();
        let unavailable = |message: String| ProveError::SolverUnavailable {
            path: path.display().to_string(),
            message,
        };
        let run = tokio::process::Command::new(&path)
            .arg("--version")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .map_err(|_| unavailable("`--version` did not answer within 10 s".to_owned()))?
            .map_err(|e| unavailable(e.to_string()))?;
        if !output.status.success() {
            return Err(unavailable(format!(
                "`--version` exited with {}",
                output.status
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.lines().next().unwrap_or("").trim().to_owned();
        if !version.to_ascii_lowercase().contains("cvc5") {
            return Err(unavailable(format!(
                "`--version` printed `{version}`, not cvc5 (the encoding uses cvc5's finite sets)"
            )));
        }
        Ok(SolverInfo {
            path: path.display().to_string(),
            version,
        })
    }

    /// Starts a solver process (killed when dropped).
    pub(crate) fn spawn(&self) -> Result<LocalSolver, ProveError> {
        let path = self.binary();
        let per_query = format!("--tlimit-per={}", self.timeout.as_millis().max(1));
        let mut command = tokio::process::Command::new(&path);
        command
            .args(["--lang", "smt", &per_query])
            .kill_on_drop(true);
        LocalSolver::from_command(&mut command).map_err(|e| ProveError::SolverUnavailable {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }
}
