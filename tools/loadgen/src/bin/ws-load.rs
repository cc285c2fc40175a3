//! WebSocket fan-out under load, and the server's memory per idle socket, of
//! a running `chat up`.
//!
//! ```text
//! ulimit -n 65536   # needs max(clients, idle) + 100 open files (raised to the hard limit itself if it can)
//! ws-load [BASE_URL] [--clients 1000] [--channels 100] [--rates 200,1000] [--seconds 20]
//!         [--idle 10000] [--server-pid PID] [--chart OUT.svg] [--pg-db NAME,...]
//! ```
//!
//! BASE_URL defaults to `http://127.0.0.1:8080`. Start the server with the
//! send rate limit and the login throttle raised (every client registers from
//! one address) and enough open files for every socket, e.g.
//! `ulimit -n 65536; CHAT_SEND_RATE_PER_SEC=100000 CHAT_SEND_BURST=100000 CHAT_AUTH_ATTEMPTS_PER_MIN=1000000 chat up`.
//! A registration or login answered 429 or 503 is retried after its `Retry-After`.
//!
//! Setup: one owner registers and creates `--channels` public channels.
//!
//! **Idle sockets** (second table; only with `--server-pid`, and run first,
//! on a freshly started server for a clean number). `--idle` sockets, all
//! with the owner's token, connect, wait for `welcome`, and then only answer
//! pings. The server's `VmRSS` (/proc/PID/status) before they connect and 2 s
//! after the last is welcomed, divided by the sockets held, is its resident
//! memory per idle connection. It runs before the user registrations because
//! each argon2 hash allocates ~19 MiB that the server's allocator keeps after
//! freeing it; new sockets would then fill that retained memory without
//! raising RSS, and the per-socket figure would read too low. They are closed
//! before the fan-out test.
//!
//! **Fan-out** (first table). `--clients` users register and get a token (32
//! at a time: argon2 makes each ~50 ms of server CPU); client `i` joins
//! channel `i % channels`, connects to `/ws?access_token=` and subscribes to
//! it; one task per socket. Sends go over the clients' own sockets as `send`
//! frames (not HTTP), open loop: message `k` is due at `start + k / rate`, goes
//! to channel `k % channels` from that channel's members in turn, and carries
//! its due instant (nanoseconds since the process's start `Instant`) in its
//! content. Every subscriber, the sender included, takes receive instant −
//! due instant for each `message` frame: send-to-push latency, including any
//! queueing behind the schedule. Deliveries/s counts `message` frames received;
//! msg/s counts `ack`ed sends; "missing" is acked sends × subscribers of their
//! channel − deliveries, after a drain of up to 10 s; errors are `error`
//! frames and sends that could not be handed to a socket; disconnects are
//! sockets the server closed.
//!
//! **Core shares** (third table): while each rate's sends run, the CPU each
//! process group took (the server named by `--server-pid`, PostgreSQL
//! backends of the `--pg-db` databases and the other `postgres` processes,
//! RabbitMQ's `beam.smp`, `redis-server`, this load generator, the rest of
//! the machine), as a share of all cores. `--chart` writes p50, p99 and max
//! against the target rate as an SVG.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use loadgen::{Latencies, chart, cpu, http, ms};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "loadgen-password-1";
/// Registrations (and WebSocket handshakes) in flight at once.
const SETUP_CONCURRENCY: usize = 32;
const CONNECT_CONCURRENCY: usize = 64;
/// How long to wait for deliveries after the last send of a rate.
const DRAIN: Duration = Duration::from_secs(10);
/// Bound on any single handshake step.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

struct Args {
    base: String,
    clients: usize,
    channels: usize,
    rates: Vec<u64>,
    seconds: u64,
    idle: usize,
    server_pid: Option<u32>,
    chart: Option<std::path::PathBuf>,
    pg_databases: Vec<String>,
}

const USAGE: &str = "usage: ws-load [BASE_URL] [--clients 1000] [--channels 100] [--rates 200,1000] \
[--seconds 20] [--idle 10000] [--server-pid PID] [--chart OUT.svg] [--pg-db NAME,...]\n\
needs max(clients, idle) + 100 open files: run `ulimit -n 65536` first (the server too)";

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        clients: 1000,
        channels: 100,
        rates: vec![200, 1000],
        seconds: 20,
        idle: 10_000,
        server_pid: None,
        chart: None,
        pg_databases: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--clients" => args.clients = value()?.parse().context("--clients")?,
            "--channels" => args.channels = value()?.parse().context("--channels")?,
            "--rates" => {
                args.rates = value()?
                    .split(',')
                    .map(|r| r.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--rates: comma-separated messages per second")?
            }
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--idle" => args.idle = value()?.parse().context("--idle")?,
            "--server-pid" => args.server_pid = Some(value()?.parse().context("--server-pid")?),
            "--chart" => args.chart = Some(value()?.into()),
            "--pg-db" => args.pg_databases = value()?.split(',').map(str::to_owned).collect(),
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                std::process::exit(0);
            }
            other if !other.starts_with("--") => args.base = other.to_owned(),
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    if args.channels == 0 || args.clients < args.channels {
        bail!("need at least one channel and at least one client per channel");
    }
    if args.rates.contains(&0) || args.seconds == 0 {
        bail!("--rates and --seconds must be positive");
    }
    Ok(args)
}

/// Soft and hard `Max open files` of a process (`self` or a pid).
fn nofile_limits(pid: &str) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let parse = |s: &str| {
        if s == "unlimited" {
            Some(u64::MAX)
        } else {
            s.parse().ok()
        }
    };
    Some((parse(fields.get(3)?)?, parse(fields.get(4)?)?))
}

/// Raises this process's open-file limit to its hard limit (with `prlimit`)
/// when the soft one is below `needed`; fails when that is not enough.
fn ensure_open_files(needed: u64) -> anyhow::Result<()> {
    let (soft, hard) = nofile_limits("self").context("cannot read /proc/self/limits")?;
    if soft >= needed {
        return Ok(());
    }
    let hard_text = if hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let raised = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={hard_text}:{hard_text}"))
        .status();
    let (soft, hard) = nofile_limits("self").context("cannot read /proc/self/limits")?;
    if soft < needed {
        bail!(
            "the open-file limit is {soft} (hard {hard}) but this run needs {needed} \
             (max(clients, idle) + 100); raise it with `ulimit -n 65536` before running, or \
             lower --clients/--idle{}",
            if raised.is_err() {
                " (prlimit is not installed)"
            } else {
                ""
            }
        );
    }
    eprintln!("raised the open-file limit to {soft}");
    Ok(())
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

/// What the phase loop tells a client's socket task.
enum Command {
    /// A `send` frame to write.
    Send(String),
    /// Hand over the latency samples (ns) of a phase.
    Flush(usize, oneshot::Sender<Vec<u64>>),
    Close,
}

/// Counters every socket task updates.
struct Shared {
    start: Instant,
    run: String,
    /// Per phase: `message` frames received, sends acked, deliveries those acks promise.
    delivered: Vec<AtomicU64>,
    acked: Vec<AtomicU64>,
    expected: Vec<AtomicU64>,
    /// Subscribed sockets per channel.
    members: Vec<u64>,
    errors: AtomicU64,
    disconnects: AtomicU64,
    closing: AtomicBool,
}

fn counters(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run_all().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_all() -> anyhow::Result<()> {
    let args = parse_args()?;
    let authority = http::authority(&args.base)?;
    let idle = if args.server_pid.is_some() {
        args.idle
    } else {
        0
    };
    ensure_open_files((args.clients.max(idle) + 100) as u64)?;
    if args.server_pid.is_none() && args.idle > 0 {
        eprintln!("note: no --server-pid given, so the idle-connection test is skipped");
    }
    if let Some(pid) = args.server_pid {
        rss_kib(pid)?;
        if let Some((soft, _)) = nofile_limits(&pid.to_string())
            && soft < (args.clients.max(idle) + 200) as u64
        {
            eprintln!(
                "warning: the server's open-file limit is {soft}, below the {} sockets of this run; \
                 start it after `ulimit -n 65536`",
                args.clients.max(idle)
            );
        }
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    // Owner and channels.
    let mut client = http::Client::new(&authority);
    client
        .request("GET", "/health", None, None)
        .await
        .with_context(|| format!("is the server up at {}?", args.base))?;
    let owner = http::register(&mut client, &format!("wl{run}o"), PASSWORD).await?;

    let mut channels = Vec::new();
    for c in 0..args.channels {
        let created = client
            .request(
                "POST",
                "/api/channels",
                Some(&owner),
                Some(&json!({ "name": format!("wl-{run}-{c}"), "kind": "public" })),
            )
            .await?
            .expect(201, "create channel")?;
        channels.push(
            created["channel_id"]
                .as_str()
                .context("create channel: no channel_id")?
                .to_owned(),
        );
    }
    eprintln!("run {run}: {} channels created", channels.len());

    // Idle sockets first, before the registrations below: each argon2 hash
    // allocates ~19 MiB, which the server's allocator keeps after it is freed,
    // and new sockets would then fill that retained memory without raising RSS.
    let idle_row = match args.server_pid {
        Some(pid) if args.idle > 0 => Some(idle_test(&authority, &owner, args.idle, pid).await?),
        _ => None,
    };

    // Users: register, token, join; bounded concurrency over pooled connections.
    let pool = Arc::new(http::Pool::new(&authority));
    let setup_started = Instant::now();
    let done = AtomicU64::new(0);
    let mut tokens: Vec<Option<String>> = vec![None; args.clients];
    let results: Vec<(usize, anyhow::Result<String>)> = stream::iter(0..args.clients)
        .map(|i| {
            let (pool, run, channel, done) =
                (pool.clone(), &run, &channels[i % args.channels], &done);
            async move {
                let mut client = pool.take();
                let result = tokio::time::timeout(Duration::from_secs(60), async {
                    let token =
                        http::register(&mut client, &format!("wl{run}{i}"), PASSWORD).await?;
                    let joined = client
                        .request(
                            "POST",
                            &format!("/api/channels/{channel}/members"),
                            Some(&token),
                            Some(&json!({})),
                        )
                        .await?;
                    if !(200..300).contains(&joined.status) {
                        joined.expect(204, "join")?;
                    }
                    anyhow::Ok(token)
                })
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("registration timed out")));
                if result.is_ok() {
                    pool.put(client);
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 100 == 0 {
                    eprintln!("  {n}/{} users registered and joined", args.clients);
                }
                (i, result)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    for (i, result) in results {
        tokens[i] = Some(result.with_context(|| format!("user {i}"))?);
    }
    let tokens: Vec<String> = tokens.into_iter().flatten().collect();
    eprintln!(
        "{} users ready in {:.1} s; connecting sockets ...",
        tokens.len(),
        setup_started.elapsed().as_secs_f64()
    );

    // Sockets: connect, welcome, subscribe.
    let connected: Vec<(usize, anyhow::Result<Socket>)> = stream::iter(0..args.clients)
        .map(|i| {
            let (authority, token, channel) =
                (&authority, &tokens[i], &channels[i % args.channels]);
            async move {
                let result = async {
                    let mut socket = connect(authority, token).await?;
                    subscribe(&mut socket, channel).await?;
                    anyhow::Ok(socket)
                }
                .await;
                (i, result)
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let mut members = vec![0u64; args.channels];
    let mut sockets: Vec<Option<Socket>> = (0..args.clients).map(|_| None).collect();
    let mut connect_failures = 0;
    for (i, result) in connected {
        match result {
            Ok(socket) => {
                members[i % args.channels] += 1;
                sockets[i] = Some(socket);
            }
            Err(e) => {
                connect_failures += 1;
                if connect_failures <= 5 {
                    eprintln!("  socket {i} failed: {e:#}");
                }
            }
        }
    }
    eprintln!(
        "{} sockets subscribed, {connect_failures} failed",
        args.clients - connect_failures
    );
    let phases = args.rates.len();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        run: run.clone(),
        delivered: counters(phases),
        acked: counters(phases),
        expected: counters(phases),
        members,
        errors: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        closing: AtomicBool::new(false),
    });
    let mut handles = Vec::new();
    let senders: Vec<Option<mpsc::Sender<Command>>> = sockets
        .into_iter()
        .map(|socket| {
            let socket = socket?;
            let (tx, rx) = mpsc::channel(16);
            handles.push(tokio::spawn(socket_task(
                socket,
                rx,
                shared.clone(),
                phases,
            )));
            Some(tx)
        })
        .collect();

    // Rates.
    let mut rows = Vec::new();
    for (phase, &rate) in args.rates.iter().enumerate() {
        eprintln!("sending {rate} msg/s for {} s ...", args.seconds);
        rows.push(fan_out(&args, phase, rate, &channels, &senders, &shared).await);
    }

    shared.closing.store(true, Ordering::Relaxed);
    for tx in senders.iter().flatten() {
        let _ = tx.send(Command::Close).await;
    }
    for handle in handles {
        let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
    }

    println!(
        "| clients | channels | target msg/s | achieved msg/s | deliveries/s | samples | p50 ms | p95 ms \
         | p99 ms | max ms | missing | errors | disconnects |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let l = Latencies::of(row.samples.clone());
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
            args.clients - connect_failures,
            args.channels,
            row.rate,
            row.achieved,
            row.deliveries,
            row.samples.len(),
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max),
            row.missing,
            row.errors,
            row.disconnects
        );
    }
    println!();
    println!("| target msg/s |{}", cpu::Shares::header());
    println!("|---:|{}", cpu::Shares::alignment());
    for row in &rows {
        println!("| {} |{}", row.rate, row.cpu.cells());
    }
    if let Some(path) = &args.chart {
        write_chart(path, &args, &rows)?;
        eprintln!("chart written to {}", path.display());
    }
    if let Some(idle) = idle_row {
        println!();
        println!(
            "| idle connections held | failed | server RSS before MiB | server RSS after MiB | KiB per connection |"
        );
        println!("|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            idle.held,
            idle.failed,
            idle.before_kib as f64 / 1024.0,
            idle.after_kib as f64 / 1024.0,
            idle.per_connection_kib
        );
    }
    Ok(())
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: thousands of sockets in one process.
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Connects and reads the `welcome`.
async fn connect(authority: &str, token: &str) -> anyhow::Result<Socket> {
    let url = format!("ws://{authority}/ws?access_token={token}");
    let (mut socket, _) = tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true),
    )
    .await
    .context("handshake timed out")??;
    let welcome = next_frame(&mut socket).await?;
    if welcome["type"] != "welcome" {
        bail!("expected welcome, got {welcome}");
    }
    Ok(socket)
}

/// Subscribes and waits for `subscribed`.
async fn subscribe(socket: &mut Socket, channel: &str) -> anyhow::Result<()> {
    let frame = json!({ "type": "subscribe", "id": "s", "channel_id": channel });
    socket.send(Message::text(frame.to_string())).await?;
    loop {
        let frame = next_frame(socket).await?;
        match frame["type"].as_str() {
            Some("subscribed") => return Ok(()),
            Some("error") => bail!("subscribe refused: {frame}"),
            _ => {}
        }
    }
}

/// The next text frame as JSON, within STEP_TIMEOUT.
async fn next_frame(socket: &mut Socket) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .context("no frame within the timeout")?
            .context("socket closed")??;
        if let Message::Text(text) = message {
            return Ok(serde_json::from_str(&text)?);
        }
    }
}

/// One socket: writes the sends it is handed, records what it receives.
async fn socket_task(
    mut socket: Socket,
    mut rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
    phases: usize,
) {
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); phases];
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => on_frame(&text, &shared, &mut samples),
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            command = rx.recv() => match command {
                Some(Command::Send(frame)) => {
                    if socket.send(Message::text(frame)).await.is_err() {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Command::Flush(phase, reply)) => {
                    let _ = reply.send(std::mem::take(&mut samples[phase]));
                }
                Some(Command::Close) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                    return;
                }
            },
        }
    }
    // The server closed the socket: keep answering until told to stop.
    if !shared.closing.load(Ordering::Relaxed) {
        shared.disconnects.fetch_add(1, Ordering::Relaxed);
    }
    while let Some(command) = rx.recv().await {
        match command {
            Command::Send(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
            Command::Flush(phase, reply) => {
                let _ = reply.send(std::mem::take(&mut samples[phase]));
            }
            Command::Close => return,
        }
    }
}

fn on_frame(text: &str, shared: &Shared, samples: &mut [Vec<u64>]) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return;
    };
    match frame["type"].as_str() {
        Some("message") => {
            // Content: "wsl {run} {phase} {due ns since start}".
            let Some(content) = frame["content"].as_str() else {
                return;
            };
            let mut parts = content.split(' ');
            if parts.next() != Some("wsl") || parts.next() != Some(shared.run.as_str()) {
                return;
            }
            let (Some(phase), Some(due)) = (
                parts.next().and_then(|p| p.parse::<usize>().ok()),
                parts.next().and_then(|d| d.parse::<u64>().ok()),
            ) else {
                return;
            };
            if phase < samples.len() {
                let now = shared.start.elapsed().as_nanos() as u64;
                samples[phase].push(now.saturating_sub(due));
                shared.delivered[phase].fetch_add(1, Ordering::Relaxed);
            }
        }
        Some("ack") => {
            // client_msg_id: "{phase}.{channel index}.{k}".
            let Some(id) = frame["client_msg_id"].as_str() else {
                return;
            };
            let mut parts = id.split('.').map(|p| p.parse::<usize>().ok());
            if let (Some(Some(phase)), Some(Some(channel))) = (parts.next(), parts.next())
                && phase < shared.acked.len()
                && channel < shared.members.len()
            {
                shared.acked[phase].fetch_add(1, Ordering::Relaxed);
                shared.expected[phase].fetch_add(shared.members[channel], Ordering::Relaxed);
            }
        }
        Some("error") => {
            let seen = shared.errors.fetch_add(1, Ordering::Relaxed);
            if seen < 5 {
                eprintln!("  error frame: {text}");
            }
        }
        _ => {}
    }
}

struct Row {
    rate: u64,
    achieved: f64,
    deliveries: f64,
    samples: Vec<Duration>,
    missing: u64,
    errors: u64,
    disconnects: u64,
    /// Core shares while the sends ran.
    cpu: cpu::Shares,
}

/// p50, p99 and max of each rate against the target rate.
fn write_chart(path: &std::path::Path, args: &Args, rows: &[Row]) -> anyhow::Result<()> {
    let latencies: Vec<(f64, Latencies)> = rows
        .iter()
        .map(|r| (r.rate as f64, Latencies::of(r.samples.clone())))
        .collect();
    let line = |name: &str, pick: fn(&Latencies) -> Duration| chart::Series {
        name: name.to_owned(),
        points: latencies
            .iter()
            .map(|(rate, l)| (*rate, pick(l).as_secs_f64() * 1e3))
            .collect(),
    };
    chart::latency_chart(
        path,
        &format!(
            "send-to-push, {} clients over {} channels",
            args.clients, args.channels
        ),
        "target msg/s",
        &[
            line("p50", |l| l.p50),
            line("p99", |l| l.p99),
            line("max", |l| l.max),
        ],
    )
}

async fn fan_out(
    args: &Args,
    phase: usize,
    rate: u64,
    channels: &[String],
    senders: &[Option<mpsc::Sender<Command>>],
    shared: &Arc<Shared>,
) -> Row {
    let errors_before = shared.errors.load(Ordering::Relaxed);
    let disconnects_before = shared.disconnects.load(Ordering::Relaxed);
    let total = rate * args.seconds;
    let mut dropped = 0u64;
    let selector = cpu::Selector {
        chat: args.server_pid,
        pg_databases: args.pg_databases.clone(),
        load_pids: vec![std::process::id()],
        load_comms: Vec::new(),
    };
    let cpu_before = selector.snapshot();
    let started = Instant::now();
    for k in 0..total {
        let due = started + Duration::from_secs_f64(k as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        // Channel k % channels; its members (clients c, c + channels, ...) in turn.
        let c = (k % args.channels as u64) as usize;
        let per_channel = args.clients.div_ceil(args.channels);
        let in_channel = (args.clients - c).div_ceil(args.channels).min(per_channel);
        let member = ((k / args.channels as u64) % in_channel as u64) as usize;
        let client = c + member * args.channels;
        let nanos = due.duration_since(shared.start).as_nanos();
        let frame = json!({
            "type": "send",
            "channel_id": channels[c],
            "content": format!("wsl {} {phase} {nanos}", shared.run),
            "client_msg_id": format!("{phase}.{c}.{k}"),
        })
        .to_string();
        let handed = senders[client]
            .as_ref()
            .is_some_and(|tx| tx.try_send(Command::Send(frame)).is_ok());
        if !handed {
            dropped += 1;
        }
    }
    let cpu = cpu_before.shares_until(&selector.snapshot());
    // The schedule spans `seconds`; longer if dispatching fell behind.
    let window = started.elapsed().max(Duration::from_secs(args.seconds));
    // Drain: every send answered and every promised delivery in, or DRAIN passed.
    let deadline = Instant::now() + DRAIN;
    loop {
        let answered = shared.acked[phase].load(Ordering::Relaxed)
            + (shared.errors.load(Ordering::Relaxed) - errors_before)
            + dropped;
        let delivered = shared.delivered[phase].load(Ordering::Relaxed);
        let expected = shared.expected[phase].load(Ordering::Relaxed);
        if (answered >= total && delivered >= expected) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut samples = Vec::new();
    for tx in senders.iter().flatten() {
        let (reply, taken) = oneshot::channel();
        if tx.send(Command::Flush(phase, reply)).await.is_ok()
            && let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(5), taken).await
        {
            samples.append(&mut s);
        }
    }
    let acked = shared.acked[phase].load(Ordering::Relaxed);
    let delivered = shared.delivered[phase].load(Ordering::Relaxed);
    let expected = shared.expected[phase].load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed) - errors_before + dropped;
    eprintln!(
        "  {acked}/{total} acked, {delivered}/{expected} delivered, {errors} errors ({dropped} not handed to a socket)"
    );
    Row {
        rate,
        achieved: acked as f64 / window.as_secs_f64(),
        deliveries: delivered as f64 / window.as_secs_f64(),
        samples: samples.into_iter().map(Duration::from_nanos).collect(),
        missing: expected.saturating_sub(delivered),
        errors,
        disconnects: shared.disconnects.load(Ordering::Relaxed) - disconnects_before,
        cpu,
    }
}

struct IdleRow {
    held: u64,
    failed: u64,
    before_kib: u64,
    after_kib: u64,
    per_connection_kib: f64,
}

/// Opens `count` sockets that only answer pings; the server's RSS per socket.
async fn idle_test(
    authority: &str,
    token: &str,
    count: usize,
    pid: u32,
) -> anyhow::Result<IdleRow> {
    let before_kib = rss_kib(pid)?;
    eprintln!(
        "opening {count} idle sockets (server RSS {:.1} MiB) ...",
        before_kib as f64 / 1024.0
    );
    let (stop, stopped) = watch::channel(false);
    let dropped = Arc::new(AtomicU64::new(0));
    let holders = Mutex::new(Vec::new());
    let done = AtomicU64::new(0);
    let failed: u64 = stream::iter(0..count)
        .map(|i| {
            let (stopped, dropped, holders, done) =
                (stopped.clone(), dropped.clone(), &holders, &done);
            async move {
                let result = connect(authority, token).await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 1000 == 0 {
                    eprintln!("  {n}/{count} idle sockets welcomed");
                }
                match result {
                    Ok(socket) => {
                        let holder = tokio::spawn(hold(socket, stopped, dropped));
                        holders
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(holder);
                        0u64
                    }
                    Err(e) => {
                        eprintln!("  idle socket {i} failed: {e:#}");
                        1
                    }
                }
            }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .fold(0u64, |sum, f| async move { sum + f })
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_kib = rss_kib(pid)?;
    let held = (count as u64 - failed).saturating_sub(dropped.load(Ordering::Relaxed));
    eprintln!(
        "  {held} idle sockets held, server RSS {:.1} MiB; closing them",
        after_kib as f64 / 1024.0
    );
    let _ = stop.send(true);
    for holder in holders.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = tokio::time::timeout(Duration::from_secs(5), holder).await;
    }
    Ok(IdleRow {
        held,
        failed,
        before_kib,
        after_kib,
        per_connection_kib: after_kib.saturating_sub(before_kib) as f64 / held.max(1) as f64,
    })
}

/// Keeps an idle socket open (reading, so pings are answered) until stopped.
async fn hold(mut socket: Socket, mut stop: watch::Receiver<bool>, dropped: Arc<AtomicU64>) {
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                return;
            }
        }
    }
}
