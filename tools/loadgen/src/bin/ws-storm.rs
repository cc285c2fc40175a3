//! Reconnect storm against a running `chat up`: every client is `--behind`
//! messages behind and all of them resume at once.
//!
//! ```text
//! ulimit -n 65536
//! ws-storm [BASE_URL] [--clients 1000] [--channels 100] [--behind 100]
//!          [--read-db postgres://postgres@localhost:5432/chat_read]
//! ```
//!
//! Start the server with the owner's send limit raised
//! (`CHAT_SEND_RATE_PER_SEC=100000 CHAT_SEND_BURST=100000`). Setup: one owner
//! creates `--channels` public channels; `clients / 10` users register (ten
//! sockets each, under `CHAT_WS_MAX_SOCKETS_PER_USER`'s default 20). Client
//! `i` connects as user `i % users` and subscribes to channel `i % channels`,
//! then every socket closes. The owner sends `--behind` messages to every
//! channel over HTTP. Then all clients connect at once and subscribe with
//! `after_seq` = the seq they had; each counts `message` frames until it has
//! all it missed. Reported: time until the last client caught up, per-client
//! catch-up time percentiles, the gateway's history queries
//! (`ws_history_reads_total` from `/metrics`), the most read-model
//! connections seen in `pg_stat_activity` during the storm (sampled every
//! 20 ms), replays that were not exactly the missed seqs in order, and
//! sockets the server closed.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt, stream};
use loadgen::{Latencies, http, ms};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PASSWORD: &str = "loadgen-password-1";
const SOCKETS_PER_USER: usize = 10;
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

struct Args {
    base: String,
    clients: usize,
    channels: usize,
    behind: u64,
    read_db: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        base: "http://127.0.0.1:8080".into(),
        clients: 1000,
        channels: 100,
        behind: 100,
        read_db: "postgres://postgres@localhost:5432/chat_read".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--clients" => args.clients = value()?.parse().context("--clients")?,
            "--channels" => args.channels = value()?.parse().context("--channels")?,
            "--behind" => args.behind = value()?.parse().context("--behind")?,
            "--read-db" => args.read_db = value()?,
            other if !other.starts_with("--") => args.base = other.to_owned(),
            other => bail!("unknown option {other}"),
        }
    }
    if args.channels == 0 || args.clients < args.channels || args.behind == 0 {
        bail!("need channels > 0, clients >= channels, behind > 0");
    }
    Ok(args)
}

/// One counter of the server's `/metrics`, summed over its label sets.
async fn metric(authority: &str, name: &str) -> anyhow::Result<f64> {
    let mut client = http::Client::new(authority);
    let response = client.request("GET", "/metrics", None, None).await?;
    let text = String::from_utf8_lossy(&response.body).into_owned();
    Ok(text
        .lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn connect(authority: &str, token: &str) -> anyhow::Result<Socket> {
    let url = format!("ws://{authority}/ws?access_token={token}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    let welcome = next_json(&mut socket).await?;
    if welcome["type"] != "welcome" {
        bail!("expected welcome, got {welcome}");
    }
    Ok(socket)
}

async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match tokio::time::timeout(STEP_TIMEOUT, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(serde_json::from_str(&text)?),
            Ok(Some(Ok(Message::Close(frame)))) => bail!("closed by the server: {frame:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("socket ended"),
            Err(_) => bail!("no frame within {STEP_TIMEOUT:?}"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let authority = http::authority(&args.base)?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut client = http::Client::new(&authority);
    let owner = http::register(&mut client, &format!("ws{run}o"), PASSWORD).await?;
    let mut channels = Vec::new();
    for c in 0..args.channels {
        let created = client
            .request(
                "POST",
                "/api/channels",
                Some(&owner),
                Some(&json!({ "name": format!("ws-{run}-{c}"), "kind": "public" })),
            )
            .await?
            .expect(201, "create channel")?;
        channels.push(
            created["channel_id"]
                .as_str()
                .context("no channel_id")?
                .to_owned(),
        );
    }
    let users = args.clients.div_ceil(SOCKETS_PER_USER);
    let pool = Arc::new(http::Pool::new(&authority));
    let tokens: Vec<String> = stream::iter(0..users)
        .map(|u| {
            let (pool, run) = (pool.clone(), &run);
            async move {
                let mut client = pool.take();
                let token = http::register(&mut client, &format!("ws{run}{u}"), PASSWORD).await;
                pool.put(client);
                token
            }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!("run {run}: {} channels, {users} users", channels.len());

    // Everyone subscribes once (live, at seq 0), then goes away.
    let first: Vec<anyhow::Result<()>> = stream::iter(0..args.clients)
        .map(|i| {
            let (authority, token, channel) =
                (&authority, &tokens[i % users], &channels[i % args.channels]);
            async move {
                let mut socket = connect(authority, token).await?;
                socket
                    .send(Message::text(
                        json!({"type": "subscribe", "channel_id": channel}).to_string(),
                    ))
                    .await?;
                while next_json(&mut socket).await?["type"] != "subscribed" {}
                socket.close(None).await?;
                Ok(())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    first.into_iter().collect::<anyhow::Result<Vec<()>>>()?;

    // While they are away, every channel moves `behind` messages on.
    let sent_started = Instant::now();
    let sends: Vec<anyhow::Result<()>> = stream::iter(0..args.channels)
        .map(|c| {
            let (pool, owner, channel, behind) = (pool.clone(), &owner, &channels[c], args.behind);
            async move {
                let mut client = pool.take();
                for n in 0..behind {
                    client
                        .request(
                            "POST",
                            &format!("/api/channels/{channel}/messages"),
                            Some(owner),
                            Some(&json!({"content": format!("missed {n}"), "type": "text"})),
                        )
                        .await?
                        .expect(201, "send")?;
                }
                pool.put(client);
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    sends.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    eprintln!(
        "{} messages sent in {:.1} s; waiting for the read model ...",
        args.behind * args.channels as u64,
        sent_started.elapsed().as_secs_f64()
    );
    let read = sqlx::PgPool::connect(&args.read_db)
        .await
        .context("--read-db")?;
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rm.channels WHERE channel_id::text = ANY($1) AND last_seq < $2",
        )
        .bind(&channels)
        .bind(args.behind as i64)
        .fetch_one(&read)
        .await?;
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The storm: everyone at once.
    let reads_before = metric(&authority, "ws_history_reads_total").await?;
    let sampling = Arc::new(AtomicBool::new(true));
    let max_connections = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (read, sampling, max_connections) =
            (read.clone(), sampling.clone(), max_connections.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .fetch_one(&read)
                .await
                .unwrap_or(0);
                max_connections.fetch_max(n.max(0) as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.clients)
        .map(|i| {
            let (authority, token, channel, behind) = (
                authority.clone(),
                tokens[i % users].clone(),
                channels[i % args.channels].clone(),
                args.behind,
            );
            tokio::spawn(async move {
                let mut socket = connect(&authority, &token).await?;
                socket
                    .send(Message::text(
                        json!({"type": "subscribe", "channel_id": channel, "after_seq": 0})
                            .to_string(),
                    ))
                    .await?;
                let mut seqs = Vec::with_capacity(behind as usize);
                while (seqs.len() as u64) < behind {
                    let frame = next_json(&mut socket).await?;
                    if frame["type"] == "message" {
                        seqs.push(frame["seq"].as_u64().unwrap_or(0));
                    }
                }
                let took = started.elapsed();
                let exact = seqs == (1..=behind).collect::<Vec<_>>();
                let _ = socket.close(None).await;
                anyhow::Ok((took, exact))
            })
        })
        .collect();
    let mut took = Vec::new();
    let (mut inexact, mut failed) = (0, 0);
    for task in tasks {
        match task.await? {
            Ok((t, exact)) => {
                took.push(t);
                inexact += usize::from(!exact);
            }
            Err(e) => {
                failed += 1;
                eprintln!("client failed: {e:#}");
            }
        }
    }
    let all = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let reads = metric(&authority, "ws_history_reads_total").await? - reads_before;
    let l = Latencies::of(took);
    println!(
        "| clients | channels | behind each | all caught up s | p50 ms | p99 ms | max ms | history queries | read-DB connections (max) | not exact | failed |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {:.2} | {} | {} | {} | {reads} | {} | {inexact} | {failed} |",
        args.clients,
        args.channels,
        args.behind,
        all.as_secs_f64(),
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        max_connections.load(Ordering::Relaxed),
    );
    Ok(())
}
