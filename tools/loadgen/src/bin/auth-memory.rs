//! The server's resident memory under password hashing (issue 15), of a
//! running `chat up`.
//!
//! ```text
//! auth-memory [BASE_URL] --server-pid PID [--users 1000] [--concurrency 16] [--settle 10]
//!             [--ws-load "--clients 200 --channels 20 --rates 500 --seconds 60 --idle 0"]
//!             [--soak-minutes 30]
//! ```
//!
//! BASE_URL defaults to `http://127.0.0.1:8080`. Start the server with the
//! login throttle raised (every request comes from one address), e.g.
//! `CHAT_AUTH_ATTEMPTS_PER_MIN=1000000 CHAT_SEND_RATE_PER_SEC=100000 CHAT_SEND_BURST=100000 chat up`.
//!
//! Phases, each printed as a row with the server's `VmRSS` (/proc/PID/status)
//! at its end and the highest value sampled every 100 ms during it:
//! `start`; `registrations` (`--users` new users, `--concurrency` clients at
//! once, each on its own keep-alive connection); `logins` (each of those users
//! once, same concurrency); `idle` (`--settle` seconds of nothing); with
//! `--ws-load`, `ws-load` (the `ws-load` binary beside this one, run against
//! the same server with those arguments; its own tables go to stderr) and
//! `idle after ws-load`. A 429 or 503 is retried after its `Retry-After` and
//! counted in the `refused` column.
//!
//! With `--soak-minutes N` (and `--ws-load` giving a run of N minutes, e.g.
//! `--rates 300 --seconds 1800`), the ws-load phase is a soak: one of the
//! registered users logs in every second beside it, and a row is printed for
//! every minute with its RSS; the end reports the RSS trend (least-squares
//! slope over the minutes after the first two, in MiB per minute).

use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use loadgen::http;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "auth-memory-password";

struct Args {
    base: String,
    server_pid: u32,
    users: usize,
    concurrency: usize,
    settle: u64,
    ws_load: Option<String>,
    soak_minutes: Option<u64>,
}

const USAGE: &str = "usage: auth-memory [BASE_URL] --server-pid PID [--users 1000] [--concurrency 16] \
[--settle 10] [--ws-load \"WS-LOAD ARGS\"] [--soak-minutes N]";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        server_pid: 0,
        users: 1000,
        concurrency: 16,
        settle: 10,
        ws_load: None,
        soak_minutes: None,
    };
    let mut pid = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--server-pid" => pid = Some(value()?.parse().context("--server-pid")?),
            "--users" => args.users = value()?.parse().context("--users")?,
            "--concurrency" => args.concurrency = value()?.parse().context("--concurrency")?,
            "--settle" => args.settle = value()?.parse().context("--settle")?,
            "--ws-load" => args.ws_load = Some(value()?),
            "--soak-minutes" => {
                args.soak_minutes = Some(value()?.parse().context("--soak-minutes")?)
            }
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                std::process::exit(0);
            }
            other if !other.starts_with("--") => args.base = other.to_owned(),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    args.server_pid = pid.with_context(|| format!("--server-pid is required\n{USAGE}"))?;
    if args.users == 0 || args.concurrency == 0 {
        bail!("--users and --concurrency must be positive");
    }
    if args.soak_minutes.is_some() && args.ws_load.is_none() {
        bail!("--soak-minutes needs --ws-load (a run as long as the soak)");
    }
    Ok(args)
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status: is --server-pid right?"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The highest RSS seen since the last `reset`, sampled every 100 ms.
struct Peak {
    kib: AtomicU64,
}

impl Peak {
    fn start(pid: u32) -> Arc<Peak> {
        let peak = Arc::new(Peak {
            kib: AtomicU64::new(0),
        });
        let sampler = peak.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if let Ok(now) = rss_kib(pid) {
                    sampler.kib.fetch_max(now, Ordering::Relaxed);
                }
            }
        });
        peak
    }

    /// The peak since the last call, and starts a new phase at `now`.
    fn take(&self, now: u64) -> u64 {
        self.kib.swap(now, Ordering::Relaxed).max(now)
    }
}

struct Row {
    phase: String,
    requests: usize,
    refused: u32,
    seconds: f64,
    peak_kib: u64,
    after_kib: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args = parse_args()?;
    let authority = http::authority(&args.base)?;
    let pid = args.server_pid;
    let mut client = http::Client::new(&authority);
    client
        .request("GET", "/health", None, None)
        .await
        .with_context(|| format!("is the server up at {}?", args.base))?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let users: Vec<String> = (0..args.users).map(|i| format!("am{run}{i}")).collect();

    let start = rss_kib(pid)?;
    let peak = Peak::start(pid);
    peak.take(start);
    let mut rows = vec![Row {
        phase: "start".into(),
        requests: 0,
        refused: 0,
        seconds: 0.0,
        peak_kib: start,
        after_kib: start,
    }];

    for (phase, path, want) in [
        ("registrations", "/api/users", 201),
        ("logins", "/api/auth/token", 200),
    ] {
        let began = Instant::now();
        let refused = hammer(&authority, &users, path, want, args.concurrency).await?;
        let seconds = began.elapsed().as_secs_f64();
        let after = rss_kib(pid)?;
        rows.push(Row {
            phase: phase.into(),
            requests: users.len(),
            refused,
            seconds,
            peak_kib: peak.take(after),
            after_kib: after,
        });
        eprintln!("  {phase}: {} in {seconds:.1} s", users.len());
    }
    rows.push(idle(&peak, pid, "idle", args.settle).await?);

    let mut trend = None;
    if let Some(ws_args) = &args.ws_load {
        let began = Instant::now();
        let load = tokio::spawn(ws_load(args.base.clone(), ws_args.clone()));
        if args.soak_minutes.is_some() {
            let minutes = soak(&authority, &users, &peak, pid, load).await?;
            trend = rss_trend(&minutes);
            rows.extend(minutes);
        } else {
            load.await??;
        }
        let after = rss_kib(pid)?;
        rows.push(Row {
            phase: "ws-load".into(),
            requests: 0,
            refused: 0,
            seconds: began.elapsed().as_secs_f64(),
            peak_kib: peak.take(after),
            after_kib: after,
        });
        rows.push(idle(&peak, pid, "idle after ws-load", args.settle).await?);
    }

    println!(
        "| phase | requests | refused (429/503, retried) | seconds | peak RSS MiB | RSS after MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {} | {} |",
            row.phase,
            row.requests,
            row.refused,
            row.seconds,
            mib(row.peak_kib),
            mib(row.after_kib)
        );
    }
    let highest = rows.iter().map(|r| r.peak_kib).max().unwrap_or(start);
    println!(
        "\nhighest RSS {} MiB; start {} MiB; last {} MiB",
        mib(highest),
        mib(start),
        mib(rows.last().map_or(start, |r| r.after_kib))
    );
    if let Some(slope) = trend {
        println!("soak RSS trend after its first two minutes: {slope:+.2} MiB per minute");
    }
    Ok(())
}

/// Beside the running `load`: one login a second (round robin over `users`)
/// and a row per minute with the RSS, until the load ends.
async fn soak(
    authority: &str,
    users: &[String],
    peak: &Peak,
    pid: u32,
    mut load: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<Vec<Row>> {
    let mut client = http::Client::new(authority);
    let mut rows = Vec::new();
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let (mut logins, mut refused, mut minute_began) = (0, 0, Instant::now());
    let mut next_user = users.iter().cycle();
    loop {
        tokio::select! {
            done = &mut load => {
                done??;
                return Ok(rows);
            }
            _ = second.tick() => {}
        }
        if let Some(user) = next_user.next() {
            let body = json!({ "username": user, "password": PASSWORD });
            let (response, retried) =
                http::patiently(&mut client, "POST", "/api/auth/token", Some(&body)).await?;
            response.expect(200, "/api/auth/token")?;
            logins += 1;
            refused += retried;
        }
        if minute_began.elapsed() >= Duration::from_secs(60) {
            let after = rss_kib(pid)?;
            rows.push(Row {
                phase: format!("soak minute {}", rows.len() + 1),
                requests: logins,
                refused,
                seconds: minute_began.elapsed().as_secs_f64(),
                peak_kib: peak.take(after),
                after_kib: after,
            });
            eprintln!("  soak minute {}: RSS {} MiB", rows.len(), mib(after));
            (logins, refused, minute_began) = (0, 0, Instant::now());
        }
    }
}

/// Least-squares slope of the per-minute RSS, in MiB per minute, leaving out
/// the first two minutes (connections and caches still filling).
fn rss_trend(minutes: &[Row]) -> Option<f64> {
    let points: Vec<(f64, f64)> = minutes
        .iter()
        .enumerate()
        .skip(2)
        .map(|(i, row)| (i as f64, row.after_kib as f64 / 1024.0))
        .collect();
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let (mean_x, mean_y) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    Some(covariance / variance)
}

/// `seconds` of nothing, then the server's RSS.
async fn idle(peak: &Peak, pid: u32, phase: &str, seconds: u64) -> anyhow::Result<Row> {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = rss_kib(pid)?;
    Ok(Row {
        phase: phase.into(),
        requests: 0,
        refused: 0,
        seconds: seconds as f64,
        peak_kib: peak.take(after),
        after_kib: after,
    })
}

/// Sends one request per user to `path` (`concurrency` at once) and expects
/// `want`; returns how many 429/503 answers were retried.
async fn hammer(
    authority: &str,
    users: &[String],
    path: &str,
    want: u16,
    concurrency: usize,
) -> anyhow::Result<u32> {
    let pool = http::Pool::new(authority);
    let results: Vec<anyhow::Result<u32>> = stream::iter(users)
        .map(|user| {
            let pool = &pool;
            async move {
                let mut client = pool.take();
                let body = json!({ "username": user, "password": PASSWORD });
                let (response, refused) =
                    http::patiently(&mut client, "POST", path, Some(&body)).await?;
                response.expect(want, path)?;
                pool.put(client);
                Ok(refused)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut refused = 0;
    for result in results {
        refused += result?;
    }
    Ok(refused)
}

/// Runs the `ws-load` binary that sits beside this one; its output goes to stderr.
async fn ws_load(base: String, args: String) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?
        .parent()
        .context("this binary's directory")?
        .join("ws-load");
    let mut command = std::process::Command::new(&exe);
    command
        .arg(&base)
        .args(args.split_whitespace())
        .stdout(std::io::stderr());
    let status = tokio::task::spawn_blocking(move || command.status())
        .await?
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !status.success() {
        bail!("ws-load failed: {status}");
    }
    Ok(())
}
