//! Reading the system back once it is quiet: the log, the read model and its
//! fold, the broker's queues, and an audit queue that saw every publish.

use anyhow::{Context, bail};
use broker::lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use broker::lapin::types::FieldTable;
use loadgen::torture::check::{LoggedEvent, client_key};
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use uuid::Uuid;

/// A durable queue bound to every routing key of `chat.exchange`, declared
/// before the first event: it receives every publish of the run.
pub const AUDIT_QUEUE: &str = "torture.audit";

pub async fn declare_audit(amqp_url: &str) -> anyhow::Result<()> {
    let connection = broker::connect(amqp_url, "torture-audit").await?;
    let channel = connection.create_channel().await?;
    broker::declare_events(&channel).await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(AUDIT_QUEUE.into(), durable, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            AUDIT_QUEUE.into(),
            broker::EVENTS_EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let _ = connection.close(0, "declared".into()).await;
    Ok(())
}

/// Takes every message of the audit queue; the AMQP `message_id`s (event
/// ids) of the relay's publishes, repeats included. The projector's offline
/// notifications share the exchange (`chat.user.{id}.notification`, id
/// `{event_id}:{user_id}`) and are not the log's: they are left out.
pub async fn drain_audit(amqp_url: &str) -> anyhow::Result<Vec<Uuid>> {
    let connection = broker::connect(amqp_url, "torture-audit").await?;
    let channel = connection.create_channel().await?;
    let mut ids = Vec::new();
    let no_ack = BasicGetOptions { no_ack: true };
    while let Some(message) = channel.basic_get(AUDIT_QUEUE.into(), no_ack).await? {
        if message
            .delivery
            .routing_key
            .as_str()
            .ends_with(".notification")
        {
            continue;
        }
        let id = message
            .delivery
            .properties
            .message_id()
            .as_ref()
            .and_then(|m| m.as_str().parse().ok())
            .context("a publish without an event id as its message_id")?;
        ids.push(id);
    }
    let _ = connection.close(0, "drained".into()).await;
    Ok(ids)
}

/// Messages ready in `queue`.
pub async fn queue_depth(amqp_url: &str, queue: &str) -> anyhow::Result<u64> {
    let connection = broker::connect(amqp_url, "torture-depth").await?;
    let channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?;
    let _ = connection.close(0, "counted".into()).await;
    Ok(u64::from(declared.message_count()))
}

/// The whole log in commit order.
pub async fn log_events(log: &PgPool) -> anyhow::Result<Vec<LoggedEvent>> {
    let rows = sqlx::query(
        "SELECT global_position, stream_id, stream_version, event_id, event_type, \
         metadata->>'idempotency_key' AS key, data->>'channel_id' AS channel_id, \
         data->>'message_id' AS message_id, data->>'seq' AS seq \
         FROM events ORDER BY transaction_id, global_position",
    )
    .fetch_all(log)
    .await
    .context("reading the event log")?;
    rows.iter()
        .map(|r| {
            let text = |c: &str| r.try_get::<Option<String>, _>(c);
            Ok(LoggedEvent {
                global_position: r.try_get("global_position")?,
                stream_id: r.try_get("stream_id")?,
                stream_version: r.try_get("stream_version")?,
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                key: text("key")?.map(|k| client_key(&k).to_owned()),
                channel_id: text("channel_id")?.and_then(|c| c.parse().ok()),
                message_id: text("message_id")?.and_then(|m| m.parse().ok()),
                seq: text("seq")?.and_then(|s| s.parse().ok()),
            })
        })
        .collect()
}

/// Each channel's message ids by seq (index 0 = seq 1), from the log.
pub fn channel_messages(log: &[LoggedEvent]) -> HashMap<Uuid, Vec<Uuid>> {
    let mut by_seq: HashMap<Uuid, BTreeMap<u64, Uuid>> = HashMap::new();
    for e in log.iter().filter(|e| e.event_type == "MessageSent") {
        if let (Some(c), Some(s), Some(m)) = (e.channel_id, e.seq, e.message_id) {
            by_seq.entry(c).or_default().insert(s, m);
        }
    }
    by_seq
        .into_iter()
        .map(|(c, m)| (c, m.into_values().collect()))
        .collect()
}

/// The read model's applied version per stream.
pub async fn read_positions(read: &PgPool) -> anyhow::Result<HashMap<String, i64>> {
    let rows = sqlx::query("SELECT stream_id, version FROM rm.stream_positions")
        .fetch_all(read)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("stream_id")?, r.try_get("version")?)))
        .collect()
}

/// Every read-model table with its primary key.
pub const TABLES: [(&str, &str); 6] = [
    ("users", "user_id"),
    ("channels", "channel_id"),
    ("members", "channel_id, user_id"),
    ("bans", "channel_id, user_id"),
    ("messages", "channel_id, seq"),
    ("stream_positions", "stream_id"),
];

/// The rows of `rm.{table}` as JSON text by primary key.
pub async fn table_rows(
    pool: &PgPool,
    table: &str,
    key: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let sql =
        format!("SELECT concat_ws('/', {key}) AS k, to_jsonb(t)::text AS row FROM rm.{table} t");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("k")?, r.try_get("row")?)))
        .collect()
}

/// Folds the log into `into` with `chat replay` (the projector's own apply,
/// from the log in commit order, never from the broker).
pub async fn fold_with_replay(
    chat: &Path,
    log_url: &str,
    read_url: &str,
    into: &str,
    until: i64,
) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(chat)
        .args([
            "replay",
            "--projection",
            "read-model",
            "--until",
            &until.to_string(),
            "--into",
            into,
            "--force",
        ])
        .env("CHAT_DATABASE_URL", log_url)
        .env("CHAT_READ_DATABASE_URL", read_url)
        .env("TORTURE_RUN", std::process::id().to_string())
        .output()
        .await
        .context("cannot run chat replay")?;
    if !output.status.success() {
        bail!(
            "chat replay: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
