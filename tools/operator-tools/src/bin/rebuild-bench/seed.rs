//! Seeding the scratch log fast: one `ChannelCreated` per channel, then
//! `MessageSent` events interleaved across channels as live traffic is, with
//! proper stream versions and the data shapes the domain emits, inserted
//! straight into `events` in large multi-row statements, one commit each.
//! Ids are derived from counters, so the raw baseline can rebuild the very
//! same rows without reading the log.

use chrono::Utc;
use domain::{ChannelCreated, ChannelId, ChannelKind, Event, MessageId, MessageSent, UserId};
use operator_tools::rebuild::copy::MessageRow;
use sqlx::PgPool;
use std::time::Instant;
use uuid::Uuid;

/// Rows per INSERT statement (and per commit).
const BATCH: usize = 50_000;

/// The shape of the seeded log.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub messages: u64,
    pub channels: u64,
}

impl Shape {
    fn per_channel(&self) -> u64 {
        self.messages / self.channels
    }
}

pub fn channel_id(c: u64) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + c as u128)
}

fn owner_id(c: u64) -> Uuid {
    Uuid::from_u128(0x0190_0000_0001_7000_8000_0000_0000_0000 + c as u128)
}

fn message_id(c: u64, seq: u64) -> Uuid {
    Uuid::from_u128(0x0190_0000_0002_7000_8000_0000_0000_0000 + ((seq as u128) << 32) + c as u128)
}

fn content(c: u64, seq: u64) -> String {
    format!("message {seq} in channel {c}: the quick brown fox jumps over the lazy dog")
}

/// The `messages` row the projector writes for message `seq` of channel `c`.
pub fn message_row(c: u64, seq: u64, at: chrono::DateTime<Utc>) -> MessageRow {
    MessageRow {
        channel_id: channel_id(c),
        seq: seq as i64,
        message_id: message_id(c, seq),
        sender_id: owner_id(c),
        content: Some(content(c, seq)),
        message_type: "text".into(),
        created_at: at,
        edited_at: None,
        deleted: false,
    }
}

/// Every message row of the shape, in the seeded order.
pub fn message_rows(shape: Shape) -> impl Iterator<Item = MessageRow> {
    let at = Utc::now();
    (1..=shape.per_channel())
        .flat_map(move |seq| (0..shape.channels).map(move |c| message_row(c, seq, at)))
}

/// Whether the log already holds exactly this shape (then seeding is skipped).
pub async fn is_seeded(log: &PgPool, shape: Shape) -> Result<bool, sqlx::Error> {
    let (messages, channels): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'MessageSent'), count(*) FILTER (WHERE event_type = 'ChannelCreated') FROM events",
    )
    .fetch_one(log)
    .await?;
    Ok(
        messages as u64 == shape.per_channel() * shape.channels
            && channels as u64 == shape.channels,
    )
}

/// Empties the log and seeds it; returns the seconds it took.
pub async fn seed(log: &PgPool, shape: Shape) -> Result<f64, sqlx::Error> {
    let started = Instant::now();
    sqlx::query("TRUNCATE events, snapshots, relay_checkpoints RESTART IDENTITY")
        .execute(log)
        .await?;
    let mut rows: Vec<Row> = (0..shape.channels)
        .map(|c| {
            let event = Event::ChannelCreated(ChannelCreated {
                channel_id: ChannelId(channel_id(c)),
                name: format!("channel {c}"),
                kind: ChannelKind::Public,
                max_members: None,
                owner_id: UserId(owner_id(c)),
            });
            Row::new(c, 1, &event)
        })
        .collect();
    let mut written = 0u64;
    for seq in 1..=shape.per_channel() {
        for c in 0..shape.channels {
            let event = Event::MessageSent(MessageSent {
                channel_id: ChannelId(channel_id(c)),
                message_id: MessageId(message_id(c, seq)),
                seq,
                sender_id: UserId(owner_id(c)),
                content: content(c, seq),
                message_type: "text".into(),
                client_msg_id: Some(format!("c{c}-{seq}")),
            });
            rows.push(Row::new(c, seq + 1, &event));
            if rows.len() >= BATCH {
                written += insert(log, &mut rows).await?;
                eprintln!("seeded {written} events");
            }
        }
    }
    insert(log, &mut rows).await?;
    sqlx::query("VACUUM ANALYZE events").execute(log).await?;
    Ok(started.elapsed().as_secs_f64())
}

struct Row {
    stream_id: String,
    version: i64,
    event_type: String,
    schema_version: i32,
    data: serde_json::Value,
    metadata: serde_json::Value,
}

impl Row {
    fn new(c: u64, version: u64, event: &Event) -> Self {
        let stored = event.to_stored();
        let correlation = Uuid::now_v7();
        Row {
            stream_id: format!("channel-{}", channel_id(c)),
            version: version as i64,
            event_type: stored.event_type,
            schema_version: stored.schema_version as i32,
            data: stored.data,
            metadata: serde_json::json!({
                "correlation_id": correlation,
                "causation_id": correlation,
                "actor_id": owner_id(c),
            }),
        }
    }
}

/// One multi-row INSERT (its own transaction), in order, so positions follow.
async fn insert(log: &PgPool, rows: &mut Vec<Row>) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let batch = std::mem::take(rows);
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, data, metadata) \
         SELECT s, v, e, t, sv, d, m FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], $6::jsonb[], $7::jsonb[]) \
         WITH ORDINALITY AS r(s, v, e, t, sv, d, m, ord) ORDER BY ord",
    )
    .bind(batch.iter().map(|r| r.stream_id.as_str()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.version).collect::<Vec<_>>())
    .bind(batch.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.event_type.as_str()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.schema_version).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| &r.data).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| &r.metadata).collect::<Vec<_>>())
    .execute(log)
    .await?;
    Ok(batch.len() as u64)
}
