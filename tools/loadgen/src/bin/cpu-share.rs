//! The core shares of a window of time, for the benchmarks whose load
//! generator is not ours (`wrk`, `pgbench`, `chat rebuild`): run it beside
//! them for the same window (issue #14).
//!
//! ```text
//! cpu-share --seconds 20 --label "hot, 64 connections" [--chat-pid PID]
//!           [--pg-db NAME,...] [--load-comm wrk,pgbench] [--load-pid PID,...]
//!           [--while PID] [--header]
//! ```
//!
//! The window is `--seconds` long, or with `--while` ends when that process
//! exits (`--seconds` then bounds it), for a run whose length is unknown.
//!
//! Prints one markdown row: the label, then the share of all cores each
//! process group took (see `loadgen::cpu`); `--header` prints the header
//! and alignment rows first.

use anyhow::{Context, bail};
use loadgen::cpu;
use std::time::Duration;

const USAGE: &str = "usage: cpu-share --seconds S --label TEXT [--chat-pid PID] [--pg-db NAME,...] \
[--load-comm NAME,...] [--load-pid PID,...] [--while PID] [--header]";

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut selector = cpu::Selector::default();
    let (mut seconds, mut label, mut header) = (None::<f64>, String::new(), false);
    let mut watched = None::<u32>;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--header" {
            header = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--seconds" => seconds = Some(value.parse().context("--seconds")?),
            "--label" => label = value,
            "--while" => watched = Some(value.parse().context("--while")?),
            "--chat-pid" => selector.chat = Some(value.parse().context("--chat-pid")?),
            "--pg-db" => selector.pg_databases = list(&value),
            "--load-comm" => selector.load_comms = list(&value),
            "--load-pid" => {
                selector.load_pids = list(&value)
                    .iter()
                    .map(|p| p.parse())
                    .collect::<Result<_, _>>()
                    .context("--load-pid")?
            }
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    let Some(seconds) = seconds.filter(|s| *s > 0.0 && *s <= 3600.0) else {
        bail!("--seconds must be given, 0 to 3600\n{USAGE}");
    };
    let before = selector.snapshot();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    // Sampled every 100 ms, so a process that exits inside the window (the
    // watched one included) keeps all but its last 100 ms.
    let mut last = selector.snapshot();
    while tokio::time::Instant::now() < deadline && watched.is_none_or(running) {
        let step = deadline.min(tokio::time::Instant::now() + Duration::from_millis(100));
        tokio::time::sleep_until(step).await;
        last = selector.snapshot().keeping_exited(last);
    }
    let shares = before.shares_until(&last);
    if header {
        println!("| window |{}", cpu::Shares::header());
        println!("|---|{}", cpu::Shares::alignment());
    }
    println!("| {label} |{}", shares.cells());
    Ok(())
}

/// Whether `pid` still runs: present and not a zombie (an exited child its
/// parent has not reaped yet, whose final ticks /proc still shows).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|close| stat.get(close + 2..close + 3))
            .is_some_and(|state| state != "Z")
    })
}
