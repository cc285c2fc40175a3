//! Progress of long work on stderr: an indicatif bar with rate and ETA when
//! stderr is a terminal, otherwise a plain line every two seconds (logs and
//! CI keep a readable record). Never on stdout, which carries data only.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts work done against an estimated total.
#[derive(Debug)]
pub struct Progress {
    label: String,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Hidden,
    Bar(ProgressBar),
    Lines(Mutex<Lines>),
}

#[derive(Debug)]
struct Lines {
    started: Instant,
    last_line: Instant,
    done: u64,
    total: u64,
    message: String,
}

/// How often the plain mode prints.
const LINE_EVERY: Duration = Duration::from_secs(2);

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn stderr(label: &str) -> Self {
        let mode = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events, {per_sec}, ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(label.to_owned());
            Mode::Bar(bar)
        } else {
            let now = Instant::now();
            Mode::Lines(Mutex::new(Lines {
                started: now,
                last_line: now,
                done: 0,
                total: 0,
                message: String::new(),
            }))
        };
        Self {
            label: label.to_owned(),
            mode,
        }
    }

    /// Reports nothing (tests, benchmarks).
    pub fn hidden() -> Self {
        Self {
            label: String::new(),
            mode: Mode::Hidden,
        }
    }

    /// Sets the estimated total.
    pub fn set_length(&self, total: u64) {
        match &self.mode {
            Mode::Hidden => {}
            Mode::Bar(bar) => bar.set_length(total),
            Mode::Lines(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.total = total;
                }
            }
        }
    }

    /// Adds work done.
    pub fn inc(&self, n: u64) {
        match &self.mode {
            Mode::Hidden => {}
            Mode::Bar(bar) => {
                bar.inc(n);
                if bar.length().is_some_and(|len| bar.position() > len) {
                    bar.set_length(bar.position());
                }
            }
            Mode::Lines(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.done += n;
                    if l.last_line.elapsed() >= LINE_EVERY {
                        l.last_line = Instant::now();
                        eprintln!("{}", l.line(&self.label));
                    }
                }
            }
        }
    }

    /// Says what is happening now (e.g. "switching").
    pub fn set_message(&self, message: &str) {
        match &self.mode {
            Mode::Hidden => {}
            Mode::Bar(bar) => bar.set_message(message.to_owned()),
            Mode::Lines(lines) => {
                if let Ok(mut l) = lines.lock() {
                    l.message = message.to_owned();
                    eprintln!("{}", l.line(&self.label));
                }
            }
        }
    }

    /// Removes the bar (the caller prints a summary).
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish_and_clear();
        }
    }
}

impl Lines {
    fn line(&self, label: &str) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let mut line = format!("{label}: {} events", self.done);
        if self.total > 0 {
            let pct = (self.done as f64 * 100.0 / self.total as f64).min(100.0);
            let eta = self.total.saturating_sub(self.done) as f64 / rate.max(1e-9);
            line.push_str(&format!(" of ~{} ({pct:.0}%), ETA {eta:.0} s", self.total));
        }
        line.push_str(&format!(", {rate:.0} events/s"));
        if !self.message.is_empty() {
            line.push_str(&format!(" — {}", self.message));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_shows_count_share_rate_and_eta() {
        let lines = Lines {
            started: Instant::now() - Duration::from_secs(10),
            last_line: Instant::now(),
            done: 500,
            total: 1000,
            message: "switching".into(),
        };
        let line = lines.line("rebuild read-model");
        assert!(
            line.starts_with("rebuild read-model: 500 events of ~1000 (50%)"),
            "{line}"
        );
        assert!(
            line.contains("ETA 10 s")
                && line.contains("50 events/s")
                && line.ends_with("switching"),
            "{line}"
        );
    }
}
