//! Progress bars on stderr (indicatif), behind the library's `Progress` trait. Hidden when
//! stderr is not a terminal or with `--quiet`; with `--timings`, each stage's wall time is
//! printed when it ends, and the figures the library reports as they come.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cg_model::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::printer::Printer;

/// Draws one bar per stage.
#[derive(Debug)]
pub struct Bars {
    hidden: bool,
    timings: bool,
    current: Mutex<Option<Stage>>,
}

/// The stage being drawn.
#[derive(Debug)]
struct Stage {
    name: String,
    started: Instant,
    bar: ProgressBar,
}

impl Stage {
    /// Clears the bar; prints the stage's wall time when asked to.
    fn end(self, timings: bool) {
        self.bar.finish_and_clear();
        if timings {
            eprintln!("{}", timing_line(&self.name, self.started.elapsed()));
        }
    }
}

/// `--timings`' line for a stage that took `took`.
fn timing_line(name: &str, took: Duration) -> String {
    format!("timing: {name}: {:.3} s", took.as_secs_f64())
}

/// `--timings`' line for a figure.
fn figure_line(name: &str, value: u64) -> String {
    format!("figure: {name}: {value}")
}

impl Bars {
    /// Bars on stderr unless the printer is quiet; stage times if it asks for them.
    pub fn new(printer: Printer) -> Bars {
        Bars {
            hidden: printer.quiet,
            timings: printer.timings,
            current: Mutex::new(None),
        }
    }

    fn with_stage(&self, f: impl FnOnce(&mut Option<Stage>)) {
        if let Ok(mut guard) = self.current.lock() {
            f(&mut guard);
        }
    }
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: Option<u64>) {
        let target = if self.hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), target).with_style(
                ProgressStyle::with_template(
                    "{prefix:>12.cyan.bold} [{bar:30}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, target).with_style(
                ProgressStyle::with_template("{prefix:>12.cyan.bold} {spinner} {human_pos} ({per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_prefix(name.to_owned());
        let stage = Stage {
            name: name.to_owned(),
            started: Instant::now(),
            bar,
        };
        self.with_stage(|slot| {
            if let Some(old) = slot.replace(stage) {
                old.end(self.timings);
            }
        });
    }

    fn advance(&self, n: u64) {
        self.with_stage(|slot| {
            if let Some(stage) = slot {
                stage.bar.inc(n);
            }
        });
    }

    fn finish_stage(&self) {
        self.with_stage(|slot| {
            if let Some(stage) = slot.take() {
                stage.end(self.timings);
            }
        });
    }

    fn figure(&self, name: &str, value: u64) {
        if self.timings {
            eprintln!("{}", figure_line(name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timing_line_names_the_stage_and_its_seconds() {
        assert_eq!(
            timing_line("member facts", Duration::from_millis(1_234)),
            "timing: member facts: 1.234 s"
        );
    }

    #[test]
    fn a_figure_line_names_the_figure_and_its_value() {
        assert_eq!(
            figure_line("attribute tuples decided by Cedar", 412),
            "figure: attribute tuples decided by Cedar: 412"
        );
    }

    #[test]
    fn stages_replace_and_finish_without_a_terminal() {
        let bars = Bars::new(Printer {
            json: false,
            quiet: true,
            timings: false,
        });
        bars.stage("one", Some(3));
        bars.advance(2);
        bars.stage("two", None);
        bars.finish_stage();
        bars.finish_stage();
        let current = bars.current.lock().map(|c| c.is_none());
        assert_eq!(current.ok(), Some(true));
    }
}
