//! Progress of long work, on stderr only: an indicatif bar with rate and ETA
//! when stderr is a terminal, a plain line every few seconds otherwise (logs,
//! CI), nothing at all when hidden (tests, benchmarks).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often a plain progress line is written.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Reports how far a piece of work has come.
pub struct Progress {
    mode: Mode,
}

enum Mode {
    Hidden,
    Bar(ProgressBar),
    Lines {
        label: &'static str,
        total: Option<u64>,
        done: u64,
        started: Instant,
        last: Instant,
    },
}

impl Progress {
    /// Progress of `label` on stderr, towards `total` items if known.
    pub fn stderr(label: &'static str, total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            let now = Instant::now();
            return Progress {
                mode: Mode::Lines {
                    label,
                    total,
                    done: 0,
                    started: now,
                    last: now,
                },
            };
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        set_style(&bar, total.is_some());
        bar.set_message(label);
        Progress {
            mode: Mode::Bar(bar),
        }
    }

    /// No progress output at all.
    pub fn hidden() -> Progress {
        Progress { mode: Mode::Hidden }
    }

    /// The work turned out to be `total` items.
    pub fn set_total(&mut self, new_total: u64) {
        match &mut self.mode {
            Mode::Hidden => {}
            Mode::Bar(bar) => {
                bar.set_length(new_total);
                set_style(bar, true);
            }
            Mode::Lines { total, .. } => *total = Some(new_total),
        }
    }

    /// `n` more items are done.
    pub fn inc(&mut self, n: u64) {
        match &mut self.mode {
            Mode::Hidden => {}
            Mode::Bar(bar) => bar.inc(n),
            Mode::Lines {
                label,
                total,
                done,
                started,
                last,
            } => {
                *done += n;
                // Looking at the clock every 1024 items keeps this off the profile.
                if *done % 1024 < n && last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", line(label, *done, *total, started.elapsed()));
                }
            }
        }
    }

    /// Writes one line on stderr (above the bar, if one is drawn).
    pub fn note(&self, message: &str) {
        match &self.mode {
            Mode::Hidden => {}
            Mode::Bar(bar) => bar.suspend(|| eprintln!("{message}")),
            Mode::Lines { .. } => eprintln!("{message}"),
        }
    }

    /// Removes the bar; the caller then writes its summary with `note`.
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

fn set_style(bar: &ProgressBar, total_known: bool) {
    let template = if total_known {
        "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {per_sec} ETA {eta}"
    } else {
        "{msg} [{elapsed_precise}] {spinner} {human_pos} {per_sec}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
}

/// `label: done/total (pct), rate/s, ETA`.
fn line(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    match total {
        Some(total) if total > 0 => {
            let left = total.saturating_sub(done) as f64 / rate.max(1e-3);
            format!(
                "{label}: {done}/{total} ({:.0}%), {rate:.0}/s, ETA {left:.0}s",
                done as f64 * 100.0 / total as f64
            )
        }
        _ => format!("{label}: {done}, {rate:.0}/s"),
    }
}

/// `n` items in `elapsed`, as a rate for summaries.
pub fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_show_rate_and_eta() {
        assert_eq!(
            line("events", 500, Some(1000), Duration::from_secs(5)),
            "events: 500/1000 (50%), 100/s, ETA 5s"
        );
        assert_eq!(
            line("events", 10, None, Duration::from_secs(1)),
            "events: 10, 10/s"
        );
    }
}
