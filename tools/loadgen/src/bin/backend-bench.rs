//! The two backends' event logs side by side (issue #12), through the one
//! port the services use (`event_store::EventLog`).
//!
//! ```text
//! backend-bench appends [--seconds 5]
//! backend-bench seed (--postgres URL | --sqlite PATH) [--messages 100000] [--channels 100]
//! ```
//!
//! `appends`: appends per second with 1, 8 and 64 concurrent writers, each to
//! a stream of its own, one event per append, on `PgEventStore` (a fresh
//! database `chat_bench_backends` on `CHAT_BENCH_DATABASE_URL`'s server, 70
//! connections) and on `SqliteEventStore::open(path, 4)` (a fresh file under
//! the temp directory), alternating per writer count so both see the machine
//! in the same state. Prints a markdown table on stdout.
//!
//! `seed`: appends the same log to either backend: per channel one
//! `ChannelCreated`, then `--messages` `MessageSent` spread evenly over the
//! channels, in rounds of 50 events per channel per append so channels
//! interleave as live traffic does. Ids are derived from counters, so both
//! backends get identical events. Meant for a log that `chat up` created
//! (so `chat rebuild read-model` can run on it) and that is stopped.

use anyhow::{Context, bail};
use domain::{ChannelCreated, ChannelId, ChannelKind, Event, MessageId, MessageSent, UserId};
use event_store::{EventLog, ExpectedVersion, NewEvent, PgEventStore, SqliteEventStore};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

const USAGE: &str = "usage: backend-bench appends [--seconds 5]\n       \
backend-bench seed (--postgres URL | --sqlite PATH) [--messages 100000] [--channels 100]";

/// Events per append while seeding.
const SEED_BATCH: u64 = 50;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next().context(USAGE)?;
    let mut options = std::collections::HashMap::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        options.insert(flag, value);
    }
    let number = |flag: &str, default: u64| -> anyhow::Result<u64> {
        options.get(flag).map_or(Ok(default), |v| {
            v.parse().with_context(|| format!("{flag} {v:?}"))
        })
    };
    match command.as_str() {
        "appends" => appends(Duration::from_secs(number("--seconds", 5)?.max(1))).await,
        "seed" => {
            let messages = number("--messages", 100_000)?;
            let channels = number("--channels", 100)?.max(1);
            let log: Arc<dyn EventLog> = match (options.get("--postgres"), options.get("--sqlite"))
            {
                (Some(url), None) => {
                    Arc::new(PgEventStore::new(event_store::connect(url, 4).await?))
                }
                (None, Some(path)) => Arc::new(SqliteEventStore::open(Path::new(path), 2).await?),
                _ => bail!("seed needs exactly one of --postgres and --sqlite\n{USAGE}"),
            };
            seed(log.as_ref(), messages, channels).await
        }
        _ => bail!("unknown command {command:?}\n{USAGE}"),
    }
}

async fn appends(window: Duration) -> anyhow::Result<()> {
    let url = loadgen::fresh_database("chat_bench_backends").await?;
    let pg: Arc<dyn EventLog> = Arc::new(PgEventStore::new(event_store::connect(&url, 70).await?));
    let dir = scratch_dir()?;
    let sqlite_store = SqliteEventStore::open(&dir.join("events.db"), 4).await?;
    let sqlite: Arc<dyn EventLog> = Arc::new(sqlite_store.clone());

    println!(
        "| writers | services: `PgEventStore` (appends/s) | embedded: `SqliteEventStore` (appends/s) | embedded vs services |"
    );
    println!("|---:|---:|---:|---:|");
    for writers in [1usize, 8, 64] {
        let on_pg = run(writers, window, pg.clone()).await;
        let on_sqlite = run(writers, window, sqlite.clone()).await;
        println!(
            "| {writers} | {on_pg:.0} | {on_sqlite:.0} | {:.0}% |",
            on_sqlite / on_pg * 100.0
        );
        eprintln!("  done: {writers} writers");
    }
    sqlite_store.close().await;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(())
}

/// A fresh directory of this run's own under the temp directory.
fn scratch_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("backend-bench-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Runs `writers` loops appending to streams of their own for `window`;
/// returns appends per second.
async fn run(writers: usize, window: Duration, log: Arc<dyn EventLog>) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let tasks: Vec<_> = (0..writers)
        .map(|w| tokio::spawn(append_own(log.clone(), w, done.clone(), deadline)))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / window.as_secs_f64()
}

async fn append_own(
    log: Arc<dyn EventLog>,
    writer: usize,
    done: Arc<AtomicU64>,
    deadline: Instant,
) {
    let stream = format!("own-{writer}-{}", Uuid::now_v7());
    let mut version = 0u64;
    while Instant::now() < deadline {
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        if log
            .append(&stream, expected, &[bench_event()])
            .await
            .is_ok()
        {
            version += 1;
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The event append-bench appends, so the two tables compare.
fn bench_event() -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MessageSent".into(),
        schema_version: 1,
        data: json!({"channel_id": Uuid::nil(), "message_id": Uuid::now_v7(), "seq": 1, "sender_id": Uuid::nil(), "content": "hello there", "message_type": "text"}),
        metadata: json!({"correlation_id": Uuid::now_v7(), "actor_id": Uuid::nil()}),
    }
}

fn channel_id(c: u64) -> ChannelId {
    ChannelId(Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(c),
    ))
}

fn owner_id(c: u64) -> UserId {
    UserId(Uuid::from_u128(
        0x0190_0000_0001_7000_8000_0000_0000_0000 + u128::from(c),
    ))
}

/// The stored form of `event` with the metadata the command service writes;
/// the event id is derived from `n` so every seeded log is the same.
fn stored(event: &Event, c: u64, n: u64) -> NewEvent {
    let stored = event.to_stored();
    let correlation = Uuid::from_u128(0x0190_0000_0003_7000_8000_0000_0000_0000 + u128::from(n));
    NewEvent {
        event_id: Uuid::from_u128(0x0190_0000_0004_7000_8000_0000_0000_0000 + u128::from(n)),
        event_type: stored.event_type,
        schema_version: stored.schema_version,
        data: stored.data,
        metadata: json!({"correlation_id": correlation, "causation_id": correlation, "actor_id": owner_id(c).0}),
    }
}

async fn seed(log: &dyn EventLog, messages: u64, channels: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let per_channel = messages / channels;
    let mut n = 0u64;
    for c in 0..channels {
        let created = Event::ChannelCreated(ChannelCreated {
            channel_id: channel_id(c),
            name: format!("channel {c}"),
            kind: ChannelKind::Public,
            max_members: None,
            owner_id: owner_id(c),
        });
        n += 1;
        log.append(
            &domain::channel_stream(channel_id(c)),
            ExpectedVersion::NoStream,
            &[stored(&created, c, n)],
        )
        .await?;
    }
    let mut appends = channels;
    let mut first = 1u64;
    while first <= per_channel {
        let last = (first + SEED_BATCH - 1).min(per_channel);
        for c in 0..channels {
            let batch: Vec<NewEvent> = (first..=last)
                .map(|seq| {
                    n += 1;
                    let sent = Event::MessageSent(MessageSent {
                        channel_id: channel_id(c),
                        message_id: MessageId(Uuid::from_u128(
                            0x0190_0000_0002_7000_8000_0000_0000_0000
                                + (u128::from(seq) << 32)
                                + u128::from(c),
                        )),
                        seq,
                        sender_id: owner_id(c),
                        content: format!(
                            "message {seq} in channel {c}: the quick brown fox jumps over the lazy dog"
                        ),
                        message_type: "text".into(),
                        client_msg_id: Some(format!("c{c}-{seq}")),
                    });
                    stored(&sent, c, n)
                })
                .collect();
            // The channel stream is at its ChannelCreated plus the messages so far.
            log.append(
                &domain::channel_stream(channel_id(c)),
                ExpectedVersion::Exact(first),
                &batch,
            )
            .await?;
            appends += 1;
        }
        first = last + 1;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {n} events ({} channels, {} messages) in {appends} appends, {secs:.1} s ({:.0} events/s)",
        channels,
        per_channel * channels,
        n as f64 / secs
    );
    Ok(())
}
