//! Latency of accepting one message in a channel with 100 and with 100,000
//! prior messages, through the command service's full path (load state,
//! decide, append). "warm": the process has the channel cached; "cold": a
//! fresh process that loads from the latest snapshot and the tail after it.
//!
//! `cargo run --release -p loadgen --bin send-latency [-- SAMPLES]`

use command_service::{CommandContext, CommandService, Intent};
use domain::{
    Channel, ChannelCommand, ChannelId, ChannelKind, Event, MessageId, MessagePolicy, UserId,
    channel_stream,
};
use event_store::{ExpectedVersion, NewEvent, PgEventStore};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let url = loadgen::fresh_database("chat_bench_send").await?;
    let pool = event_store::connect(&url, 8).await?;
    let store = PgEventStore::new(pool);
    let owner = UserId::new();

    println!("| prior messages | cache | samples | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for prior in [100u64, 100_000] {
        let channel = seed_channel(&store, owner, prior).await?;
        let warm =
            CommandService::new(std::sync::Arc::new(store.clone()), MessagePolicy::default());
        let mut warm_samples = Vec::with_capacity(samples);
        for _ in 0..samples {
            warm_samples.push(timed_send(&warm, channel, owner).await?);
        }
        let mut cold_samples = Vec::with_capacity(samples);
        for _ in 0..samples {
            let cold =
                CommandService::new(std::sync::Arc::new(store.clone()), MessagePolicy::default());
            cold_samples.push(timed_send(&cold, channel, owner).await?);
        }
        for (label, taken) in [("warm", warm_samples), ("cold", cold_samples)] {
            let l = loadgen::Latencies::of(taken);
            println!(
                "| {prior} | {label} | {samples} | {} | {} | {} | {} |",
                loadgen::ms(l.p50),
                loadgen::ms(l.p95),
                loadgen::ms(l.p99),
                loadgen::ms(l.max)
            );
        }
    }
    Ok(())
}

async fn timed_send(
    service: &CommandService,
    channel: ChannelId,
    owner: UserId,
) -> anyhow::Result<Duration> {
    let ctx = CommandContext {
        actor: owner,
        correlation_id: Uuid::now_v7(),
        expected_version: None,
        idempotency_key: None,
        request_fingerprint: None,
    };
    let command = ChannelCommand::SendMessage {
        message_id: MessageId::new(),
        content: "benchmark message".into(),
        message_type: "text".into(),
        client_msg_id: None,
    };
    let started = Instant::now();
    service
        .execute(channel, Intent::Command(command), &ctx, "MessageSent")
        .await?;
    Ok(started.elapsed())
}

/// Creates a channel with `prior` messages, appended in large batches through
/// the domain (so seqs and events are real), with a snapshot as the command
/// service would have left it.
async fn seed_channel(
    store: &PgEventStore,
    owner: UserId,
    prior: u64,
) -> anyhow::Result<ChannelId> {
    let channel_id = ChannelId::new();
    let stream = channel_stream(channel_id);
    let policy = MessagePolicy::default();
    let created = Channel::decide(
        None,
        owner,
        ChannelCommand::Create {
            channel_id,
            name: "bench".into(),
            kind: ChannelKind::Public,
            max_members: None,
        },
        &policy,
    )?;
    let mut state = created.iter().fold(None, Channel::evolve);
    store
        .append(&stream, ExpectedVersion::NoStream, &to_new(&created))
        .await?;
    let mut version = 1u64;
    let mut remaining = prior;
    while remaining > 0 {
        let batch = remaining.min(2_000);
        let mut events: Vec<Event> = Vec::with_capacity(batch as usize);
        for _ in 0..batch {
            let send = ChannelCommand::SendMessage {
                message_id: MessageId::new(),
                content: "seed".into(),
                message_type: "text".into(),
                client_msg_id: None,
            };
            let decided = Channel::decide(state.as_ref(), owner, send, &policy)?;
            state = decided.iter().fold(state, Channel::evolve);
            events.extend(decided);
        }
        store
            .append(&stream, ExpectedVersion::Exact(version), &to_new(&events))
            .await?;
        version += batch;
        remaining -= batch;
        if prior >= 10_000 && (prior - remaining).is_multiple_of(20_000) {
            eprintln!("  seeded {}/{prior}", prior - remaining);
        }
    }
    let snapshot = event_store::Snapshot {
        stream_version: version,
        snapshot_version: 1,
        state: serde_json::to_value(&state)?,
    };
    store.save_snapshot(&stream, &snapshot).await?;
    Ok(channel_id)
}

fn to_new(events: &[Event]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| {
            let stored = e.to_stored();
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: stored.event_type,
                schema_version: stored.schema_version,
                data: stored.data,
                metadata: json!({}),
            }
        })
        .collect()
}
