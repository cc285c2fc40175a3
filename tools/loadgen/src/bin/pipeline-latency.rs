//! Commit-to-visible latency and relay/projector throughput of a running
//! `chat up`, measured from outside over its HTTP API.
//!
//! ```text
//! pipeline-latency [BASE_URL] [--rates 200,1000] [--seconds 20] [--channels 2]
//!                  [--poll-ms 2] [--blast 20000] [--blast-senders 64]
//! ```
//!
//! BASE_URL defaults to `http://127.0.0.1:8080`. Start the server with the
//! send rate limit raised, or this gets 429s:
//! `CHAT_SEND_RATE_PER_SEC=100000 CHAT_SEND_BURST=100000 chat up`.
//!
//! **Latency** (first table). One user sends into `--channels` channels
//! (round robin; more than one so the single-stream append limit is not what
//! is measured). Open loop: send `k` is due at `start + k / rate`, whatever
//! happened to the sends before it; up to 64 sends are in flight at once, each
//! over a pooled keep-alive connection, so a slow send does not hold the rate
//! back. t0 = the instant the send's 201 (with its `seq`) arrived: the event is
//! committed to the log. t1 = the instant a read through the query API first
//! returned the row with that `seq`. Latency = t1 − t0: relay, broker,
//! projector and read-model commit.
//!
//! How t1 is found: instead of one poll loop per message, one poller per
//! channel asks every `--poll-ms` (default 2 ms), while some acknowledged seq
//! is still unseen, for the window `after=F&before=F+101&limit=100`, where F is
//! the highest seq below which every seq has been seen. Every returned seq not
//! seen before gets t1 = the arrival of that response; a seq seen before its
//! own 201 came back counts as 0 ms. Resolution: the poll interval plus one
//! query round trip (about a millisecond on loopback), the same as polling
//! each message on its own, for a fraction of the requests. A seq not visible
//! 10 s after its 201 counts as an error.
//!
//! **Throughput** (second table). `--blast` messages as fast as possible from
//! `--blast-senders` concurrent HTTP senders, each into its own channel. Then
//! `/metrics` is read every 100 ms: the relay is drained when
//! `relay_published_total` has grown by the number of messages accepted; the
//! projector is drained when the last seq of every blast channel is readable
//! through the query API. Rates are each counter's growth over the window from
//! the first send to that moment; "after last send" is how long each stage
//! needed beyond the last send's response.

use anyhow::{Context, bail};
use loadgen::http;
use loadgen::{Latencies, ms};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const PASSWORD: &str = "loadgen-password-1";
/// Sends in flight at once during the latency runs.
const MAX_IN_FLIGHT: u32 = 64;
/// How long a committed message may take to become visible before it counts as lost.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on waiting for the relay and projector to drain after the blast.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(180);

struct Args {
    base: String,
    rates: Vec<u64>,
    seconds: u64,
    channels: usize,
    poll: Duration,
    blast: u64,
    blast_senders: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        rates: vec![200, 1000],
        seconds: 20,
        channels: 2,
        poll: Duration::from_millis(2),
        blast: 20_000,
        blast_senders: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rates" => {
                args.rates = value()?
                    .split(',')
                    .map(|r| r.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--rates: comma-separated messages per second")?
            }
            "--seconds" => args.seconds = value()?.parse().context("--seconds")?,
            "--channels" => args.channels = value()?.parse().context("--channels")?,
            "--poll-ms" => {
                args.poll = Duration::from_millis(value()?.parse().context("--poll-ms")?)
            }
            "--blast" => args.blast = value()?.parse().context("--blast")?,
            "--blast-senders" => {
                args.blast_senders = value()?.parse().context("--blast-senders")?
            }
            "-h" | "--help" => {
                eprintln!(
                    "usage: pipeline-latency [BASE_URL] [--rates 200,1000] [--seconds 20] [--channels 2] \
                     [--poll-ms 2] [--blast 20000] [--blast-senders 64]"
                );
                std::process::exit(0);
            }
            other if !other.starts_with("--") => args.base = other.to_owned(),
            other => bail!("unknown option {other} (see --help)"),
        }
    }
    if args.rates.is_empty() || args.rates.contains(&0) || args.seconds == 0 {
        bail!("--rates and --seconds must be positive");
    }
    if args.channels == 0 || args.blast_senders == 0 || args.poll.is_zero() {
        bail!("--channels, --blast-senders and --poll-ms must be positive");
    }
    Ok(args)
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
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut client = http::Client::new(&authority);
    client
        .request("GET", "/health", None, None)
        .await
        .with_context(|| format!("is the server up at {}?", args.base))?;
    let token = http::register(&mut client, &format!("pl{run}"), PASSWORD).await?;
    eprintln!("run {run}: user registered");

    // Latency runs.
    let mut watches = Vec::new();
    for i in 0..args.channels {
        let id = create_channel(&mut client, &token, &format!("pl-{run}-{i}")).await?;
        wait_readable(&mut client, &token, &id).await?;
        // One more phase than rates: the last is the unreported warm-up.
        watches.push(Arc::new(Watch::new(id, args.rates.len() + 1)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for watch in &watches {
        pollers.push(tokio::spawn(poll_visible(
            authority.clone(),
            token.clone(),
            watch.clone(),
            args.poll,
            stop.clone(),
        )));
    }
    let pool = Arc::new(http::Pool::new(&authority));
    let warm_up = args.rates[0].min(100);
    eprintln!("warming up: {warm_up} msg/s for 2 s (not reported) ...");
    let phases = args.rates.len();
    latency_run(2, &run, phases, warm_up, &token, &watches, &pool).await;
    let mut rows = Vec::new();
    for (phase, &rate) in args.rates.iter().enumerate() {
        eprintln!("latency at {rate} msg/s for {} s ...", args.seconds);
        rows.push(latency_run(args.seconds, &run, phase, rate, &token, &watches, &pool).await);
    }
    stop.store(true, Ordering::Relaxed);
    for poller in pollers {
        let _ = poller.await;
    }
    let poll_errors: u64 = watches
        .iter()
        .map(|w| w.poll_errors.load(Ordering::Relaxed))
        .sum();
    if poll_errors > 0 {
        eprintln!("warning: {poll_errors} poll requests failed");
    }

    println!(
        "| target msg/s | achieved msg/s | samples | p50 ms | p95 ms | p99 ms | max ms | errors |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let l = Latencies::of(row.samples.clone());
        println!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            row.rate,
            row.achieved,
            row.samples.len(),
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max),
            row.errors
        );
    }
    println!();

    // Throughput.
    if args.blast > 0 {
        let blast = blast(&args, &run, &authority, &token).await?;
        println!(
            "| messages | senders × channels | sends/s | relay published events/s | relay drained after last send ms \
             | projector applied/s | projector drained after last send ms | send errors |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {} × {} | {:.0} | {} | {} | {} | {} | {} |",
            blast.sent,
            args.blast_senders,
            args.blast_senders,
            blast.send_rate,
            opt(blast.relay_rate.map(|r| format!("{r:.0}"))),
            opt(blast.relay_after.map(ms)),
            opt(blast.projector_rate.map(|r| format!("{r:.0}"))),
            opt(blast.projector_after.map(ms)),
            blast.errors
        );
    }
    Ok(())
}

fn opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "timeout".into())
}

async fn create_channel(
    client: &mut http::Client,
    token: &str,
    name: &str,
) -> anyhow::Result<String> {
    let created = client
        .request(
            "POST",
            "/api/channels",
            Some(token),
            Some(&json!({ "name": name, "kind": "public" })),
        )
        .await?
        .expect(201, "create channel")?;
    created["channel_id"]
        .as_str()
        .map(str::to_owned)
        .context("create channel: no channel_id")
}

/// Waits (up to 30 s) until the query API knows a new channel.
async fn wait_readable(
    client: &mut http::Client,
    token: &str,
    channel: &str,
) -> anyhow::Result<()> {
    let path = format!("/api/channels/{channel}/messages?limit=1");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client.request("GET", &path, Some(token), None).await?;
        if response.status == 200 {
            return Ok(());
        }
        if Instant::now() > deadline {
            response.expect(200, "the new channel never became readable")?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends one message; its `seq` on a 2xx.
async fn send(
    client: &mut http::Client,
    token: &str,
    channel: &str,
    content: &str,
    client_msg_id: &str,
) -> anyhow::Result<u64> {
    // The client_msg_id makes a retry on a stale keep-alive connection safe.
    let body = json!({ "content": content, "type": "text", "client_msg_id": client_msg_id });
    let sent = client
        .request(
            "POST",
            &format!("/api/channels/{channel}/messages"),
            Some(token),
            Some(&body),
        )
        .await?
        .expect(201, "send")?;
    sent["seq"].as_u64().context("send: no seq")
}

/// One channel's outstanding sends and what the poller has seen.
struct Watch {
    id: String,
    state: Mutex<WatchState>,
    poll_errors: AtomicU64,
}

#[derive(Default)]
struct WatchState {
    /// Every seq up to here has been seen.
    floor: u64,
    /// Seen seqs above `floor`.
    seen: HashSet<u64>,
    /// Acknowledged, not yet seen: phase and t0.
    pending: HashMap<u64, (usize, Instant)>,
    /// Seen before their own 201 arrived.
    early: HashSet<u64>,
    /// Latency samples per phase.
    samples: Vec<Vec<Duration>>,
}

impl Watch {
    fn new(id: String, phases: usize) -> Watch {
        Watch {
            id,
            state: Mutex::new(WatchState {
                samples: vec![Vec::new(); phases],
                ..WatchState::default()
            }),
            poll_errors: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A send's 201 arrived at `t0`.
    fn acknowledged(&self, seq: u64, phase: usize, t0: Instant) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.early.remove(&seq) {
            state.samples[phase].push(Duration::ZERO);
        } else if seq > state.floor && !state.seen.contains(&seq) {
            state.pending.insert(seq, (phase, t0));
        } else {
            state.samples[phase].push(Duration::ZERO);
        }
    }

    /// A poll response that arrived at `t1` held these seqs.
    fn visible(&self, seqs: &[u64], t1: Instant) {
        let mut guard = self.lock();
        let state = &mut *guard;
        for &seq in seqs {
            if seq <= state.floor || !state.seen.insert(seq) {
                continue;
            }
            match state.pending.remove(&seq) {
                Some((phase, t0)) => state.samples[phase].push(t1.saturating_duration_since(t0)),
                None => {
                    state.early.insert(seq);
                }
            }
        }
        while state.seen.remove(&(state.floor + 1)) {
            state.floor += 1;
        }
    }

    /// Drops pending sends of `phase` older than the timeout; how many.
    fn expire(&self, phase: usize) -> u64 {
        let mut state = self.lock();
        let before = state.pending.len();
        state
            .pending
            .retain(|_, (p, t0)| *p != phase || t0.elapsed() < VISIBLE_TIMEOUT);
        (before - state.pending.len()) as u64
    }

    fn pending_in(&self, phase: usize) -> usize {
        self.lock()
            .pending
            .values()
            .filter(|(p, _)| *p == phase)
            .count()
    }
}

/// Polls one channel's history window above the floor while sends are outstanding.
async fn poll_visible(
    authority: String,
    token: String,
    watch: Arc<Watch>,
    every: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut client = http::Client::new(&authority);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let floor = {
            let state = watch.lock();
            if state.pending.is_empty() {
                continue;
            }
            state.floor
        };
        let path = format!(
            "/api/channels/{}/messages?after={floor}&before={}&limit=100",
            watch.id,
            floor + 101
        );
        match client.request("GET", &path, Some(&token), None).await {
            Ok(response) if response.status == 200 => {
                let t1 = Instant::now();
                let seqs: Vec<u64> = response
                    .json()
                    .ok()
                    .and_then(|v| {
                        v["messages"]
                            .as_array()
                            .map(|m| m.iter().filter_map(|m| m["seq"].as_u64()).collect())
                    })
                    .unwrap_or_default();
                watch.visible(&seqs, t1);
            }
            failed => {
                let n = watch.poll_errors.fetch_add(1, Ordering::Relaxed);
                if n < 3 {
                    match failed {
                        Ok(response) => eprintln!(
                            "  poll answered HTTP {}: {}",
                            response.status,
                            String::from_utf8_lossy(&response.body)
                        ),
                        Err(e) => eprintln!("  poll failed: {e:#}"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct LatencyRow {
    rate: u64,
    achieved: f64,
    samples: Vec<Duration>,
    errors: u64,
}

async fn latency_run(
    seconds: u64,
    run: &str,
    phase: usize,
    rate: u64,
    token: &str,
    watches: &[Arc<Watch>],
    pool: &Arc<http::Pool>,
) -> LatencyRow {
    let total = rate * seconds;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let last_done = Arc::new(Mutex::new(None::<Instant>));
    let mut late = 0u64;
    let start = Instant::now();
    for k in 0..total {
        let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        if due.elapsed() > Duration::from_millis(50) {
            late += 1;
        }
        let watch = watches[k as usize % watches.len()].clone();
        let (pool, token, ok, failed, last_done) = (
            pool.clone(),
            token.to_owned(),
            ok.clone(),
            failed.clone(),
            last_done.clone(),
        );
        let content = format!("pipeline-latency {run} {phase} {k}");
        let client_msg_id = format!("{run}-{phase}-{k}");
        tokio::spawn(async move {
            let mut client = pool.take();
            let result = tokio::time::timeout(
                Duration::from_secs(30),
                send(&mut client, &token, &watch.id, &content, &client_msg_id),
            )
            .await;
            let t0 = Instant::now();
            match result {
                Ok(Ok(seq)) => {
                    watch.acknowledged(seq, phase, t0);
                    ok.fetch_add(1, Ordering::Relaxed);
                    pool.put(client);
                }
                Ok(Err(e)) => {
                    if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("  send failed: {e:#}");
                    }
                    pool.put(client);
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            let mut last = last_done.lock().unwrap_or_else(|e| e.into_inner());
            *last = Some(last.map_or(t0, |l| l.max(t0)));
            drop(permit);
        });
    }
    // Every send has finished once all permits are back (sends time out at 30 s).
    let _ = in_flight.acquire_many(MAX_IN_FLIGHT).await;
    let finished = last_done
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(Instant::now);
    let achieved = ok.load(Ordering::Relaxed) as f64 / (finished - start).as_secs_f64();
    // Wait for the stragglers to become visible (bounded by VISIBLE_TIMEOUT).
    let drain_until = Instant::now() + VISIBLE_TIMEOUT + Duration::from_millis(100);
    while Instant::now() < drain_until && watches.iter().any(|w| w.pending_in(phase) > 0) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lost: u64 = watches.iter().map(|w| w.expire(phase)).sum();
    let mut samples = Vec::new();
    for watch in watches {
        samples.append(&mut watch.lock().samples[phase]);
    }
    let failed = failed.load(Ordering::Relaxed);
    eprintln!(
        "  {} acknowledged, {failed} failed, {lost} never visible, {late} sends started > 50 ms late",
        ok.load(Ordering::Relaxed)
    );
    LatencyRow {
        rate,
        achieved,
        samples,
        errors: failed + lost,
    }
}

struct BlastResult {
    sent: u64,
    send_rate: f64,
    errors: u64,
    relay_rate: Option<f64>,
    relay_after: Option<Duration>,
    projector_rate: Option<f64>,
    projector_after: Option<Duration>,
}

async fn blast(
    args: &Args,
    run: &str,
    authority: &str,
    token: &str,
) -> anyhow::Result<BlastResult> {
    let mut client = http::Client::new(authority);
    eprintln!("creating {} channels for the blast ...", args.blast_senders);
    let mut channels = Vec::new();
    for i in 0..args.blast_senders {
        channels.push(create_channel(&mut client, token, &format!("pl-{run}-blast-{i}")).await?);
    }
    // Let the channel creations drain through the pipeline before the
    // baseline: every blast channel readable through the query API.
    for channel in &channels {
        wait_readable(&mut client, token, channel).await?;
    }
    let baseline = counters(&mut client).await?;
    let (base_published, base_applied) = baseline;
    eprintln!(
        "blasting {} messages with {} senders ...",
        args.blast, args.blast_senders
    );
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut senders = Vec::new();
    for channel in channels.clone() {
        let (authority, token, next, run, total) = (
            authority.to_owned(),
            token.to_owned(),
            next.clone(),
            run.to_owned(),
            args.blast,
        );
        senders.push(tokio::spawn(async move {
            let mut client = http::Client::new(&authority);
            let (mut ok, mut errors, mut last_seq) = (0u64, 0u64, 0u64);
            let mut last_return = None;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                let content = format!("pipeline-latency blast {run} {k}");
                let cmid = format!("{run}-blast-{k}");
                let result = tokio::time::timeout(
                    Duration::from_secs(30),
                    send(&mut client, &token, &channel, &content, &cmid),
                )
                .await;
                last_return = Some(Instant::now());
                match result {
                    Ok(Ok(seq)) => {
                        ok += 1;
                        last_seq = last_seq.max(seq);
                    }
                    Ok(Err(e)) => {
                        if errors == 0 {
                            eprintln!("  blast send failed: {e:#}");
                        }
                        errors += 1;
                    }
                    Err(_) => {
                        errors += 1;
                        client = http::Client::new(&authority);
                    }
                }
            }
            (channel, ok, errors, last_seq, last_return)
        }));
    }
    let (mut sent, mut errors, mut last_send) = (0u64, 0u64, start);
    let mut last_seqs = Vec::new();
    for sender in senders {
        let (channel, ok, failed, last_seq, last_return) = sender.await?;
        sent += ok;
        errors += failed;
        if let Some(t) = last_return {
            last_send = last_send.max(t);
        }
        if last_seq > 0 {
            last_seqs.push((channel, last_seq));
        }
    }
    let send_rate = sent as f64 / (last_send - start).as_secs_f64();
    eprintln!(
        "  {sent} sent ({send_rate:.0}/s), {errors} failed; waiting for the relay and projector ..."
    );

    let (mut relay_done, mut projector_done) = (None, None);
    let (mut relay_delta, mut applied_delta) = (0u64, 0u64);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < deadline && (relay_done.is_none() || projector_done.is_none()) {
        tick.tick().await;
        let (published, applied) = match counters(&mut client).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("  /metrics failed: {e:#}");
                continue;
            }
        };
        let now = Instant::now();
        if relay_done.is_none() && published >= base_published + sent {
            relay_done = Some(now);
            relay_delta = published - base_published;
        }
        if projector_done.is_none() {
            // Check the channels in turn; stop at the first one not caught up.
            while let Some((channel, seq)) = last_seqs.last() {
                let path = format!("/api/channels/{channel}/messages?limit=1");
                let newest = client
                    .request("GET", &path, Some(token), None)
                    .await
                    .ok()
                    .and_then(|r| r.json().ok())
                    .and_then(|v| v["messages"][0]["seq"].as_u64())
                    .unwrap_or(0);
                if newest < *seq {
                    break;
                }
                last_seqs.pop();
            }
            if last_seqs.is_empty() {
                projector_done = Some(Instant::now());
                applied_delta = applied - base_applied;
            }
        }
    }
    let rate =
        |done: Option<Instant>, delta: u64| done.map(|d| delta as f64 / (d - start).as_secs_f64());
    eprintln!("  relay published {relay_delta} events, projector applied {applied_delta} changes");
    Ok(BlastResult {
        sent,
        send_rate,
        errors,
        relay_rate: rate(relay_done, relay_delta),
        relay_after: relay_done.map(|d| d.saturating_duration_since(last_send)),
        projector_rate: rate(projector_done, applied_delta),
        projector_after: projector_done.map(|d| d.saturating_duration_since(last_send)),
    })
}

/// `relay_published_total` and `projector_applied_total` from `/metrics`.
async fn counters(client: &mut http::Client) -> anyhow::Result<(u64, u64)> {
    let response = client.request("GET", "/metrics", None, None).await?;
    if response.status != 200 {
        bail!("/metrics answered {}", response.status);
    }
    let text = String::from_utf8_lossy(&response.body);
    Ok((
        metric(&text, "relay_published_total"),
        metric(&text, "projector_applied_total"),
    ))
}

/// The sum of every series of counter `name` in Prometheus text format.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                return None;
            }
            let value = rest.rsplit(' ').next()?;
            value.parse::<f64>().ok()
        })
        .sum::<f64>() as u64
}
