//! Proof time for every ordered pair of shipped policies (`timeline`, `li-2024-09`,
//! `li-2025-11`, `strict-optin`): "does the new one admit anything the old one excluded?",
//! the median of 3 runs each, with the answer. `cargo bench -p cg-prove --bench pairs`.
//! Needs cvc5 (`scripts/install-solver.sh`). The goal: every pair decided in < 2 s.

#![allow(missing_docs, clippy::expect_used)]

use std::time::Instant;

use cg_policy::{Policy, PolicyConfig};
use cg_prove::{Check, Comparison, Outcome, SolverConfig};

const SHIPPED: [&str; 4] = ["timeline", "li-2024-09", "li-2025-11", "strict-optin"];
const RUNS: usize = 3;

fn main() {
    let solver = SolverConfig::default();
    println!(
        "{:<14} {:<14} {:<16} {:>10} {:>10}",
        "old", "new", "answer", "median ms", "solver ms"
    );
    let mut worst = 0u128;
    for old in SHIPPED {
        for new in SHIPPED {
            if old == new {
                continue;
            }
            let old_p = Policy::bundled(old, PolicyConfig::default()).expect("bundled policy");
            let new_p = Policy::bundled(new, PolicyConfig::default()).expect("bundled policy");
            let mut times = Vec::new();
            let mut answer = String::new();
            let mut solver_ms = 0;
            for _ in 0..RUNS {
                let started = Instant::now();
                let report = Comparison {
                    old: &old_p,
                    new: &new_p,
                    purpose: None,
                    checks: &[Check::NothingNewAdmitted],
                }
                .run(&solver)
                .expect("the solver answers (scripts/install-solver.sh)");
                times.push(started.elapsed().as_millis());
                let check = &report.checks[0];
                solver_ms = check.elapsed_ms;
                answer = match (&check.result, &check.counterexample) {
                    (Outcome::Proved, _) => "PROVED".to_owned(),
                    (Outcome::Counterexample, Some(cx)) if cx.replay.confirmed => {
                        "COUNTEREXAMPLE".to_owned()
                    }
                    _ => "UNCONFIRMED".to_owned(),
                };
            }
            times.sort_unstable();
            let median = times[RUNS / 2];
            worst = worst.max(median);
            println!("{old:<14} {new:<14} {answer:<16} {median:>10} {solver_ms:>10}");
        }
    }
    println!("slowest pair: {worst} ms (goal < 2000 ms)");
}
