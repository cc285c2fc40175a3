//! Collecting the status: SQL on the log and read databases, a passive
//! declare of the dead-letter queue, a scan of the gateways' Redis keys.

use super::{
    DeadLetters, GatewaySockets, HoldBack, Lag, LogHead, ProjectionStatus, RelayStatus,
    StatusReport, Thresholds,
};
use crate::rebuild::PROJECTIONS;
use broker::lapin::options::QueueDeclareOptions;
use broker::lapin::types::FieldTable;
use event_store::Cursor;
use read_model::quote_ident;
use sqlx::PgPool;
use std::time::Duration;

/// Where to look.
#[derive(Debug, Clone)]
pub struct Services {
    pub log: PgPool,
    pub read: PgPool,
    pub amqp_url: String,
    pub redis_url: String,
    /// Prefix of the gateways' Redis keys (empty in production).
    pub redis_prefix: String,
}

/// Why the status could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("event log (PostgreSQL): {0}")]
    Log(sqlx::Error),
    #[error("read database (PostgreSQL): {0}")]
    Read(sqlx::Error),
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error(
        "cannot reach Redis at {url} ({reason}); start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no"
    )]
    Redis { url: String, reason: String },
}

/// Collects the whole report and judges it against `thresholds`.
pub async fn gather(s: &Services, thresholds: Thresholds) -> Result<StatusReport, StatusError> {
    let log = log_head(&s.log).await.map_err(StatusError::Log)?;
    let relay = relay(&s.log).await.map_err(StatusError::Log)?;
    let mut projections = Vec::new();
    for p in PROJECTIONS {
        let row: Option<(
            i64,
            chrono::DateTime<chrono::Utc>,
            chrono::DateTime<chrono::Utc>,
            i64,
        )> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT global_position, recorded_at, applied_at, transaction_id FROM {}.checkpoints WHERE projection = $1",
            quote_ident(p.schema)
        )))
        .bind(p.checkpoint)
        .fetch_optional(&s.read)
        .await
        .map_err(StatusError::Read)?;
        // The projection's commit-order cursor; a row written before the
        // cursor was kept (transaction id 0) has only its position.
        let cursor = match row {
            None => Cursor::START,
            Some((position, _, _, 0)) => position_cursor(&s.log, position)
                .await
                .map_err(StatusError::Log)?,
            Some((position, _, _, tx)) => Cursor {
                transaction_id: tx.max(0) as u64,
                global_position: position,
            },
        };
        projections.push(ProjectionStatus {
            name: p.name.to_owned(),
            checkpoint: row.map(|r| r.0),
            checkpoint_recorded_at: row.map(|r| r.1),
            applied_at: row.map(|r| r.2),
            lag: lag_after(&s.log, cursor).await.map_err(StatusError::Log)?,
        });
    }
    let dead_letters = dead_letters(&s.amqp_url).await?;
    let gateways = gateways(&s.redis_url, &s.redis_prefix).await?;
    let mut problems = thresholds.check("relay", relay.lag);
    for p in &projections {
        problems.extend(thresholds.check(&format!("projection {}", p.name), p.lag));
    }
    Ok(StatusReport {
        log,
        relay: Some(relay),
        projections,
        dead_letters,
        gateways: Some(gateways),
        healthy: problems.is_empty(),
        problems,
    })
}

async fn log_head(log: &PgPool) -> Result<LogHead, sqlx::Error> {
    let head: Option<(i64, i64)> = sqlx::query_as(
        "SELECT transaction_id::text::bigint, global_position FROM events \
         WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1",
    )
    .fetch_optional(log)
    .await?;
    let (max, estimate): (Option<i64>, Option<f32>) = sqlx::query_as(
        "SELECT (SELECT max(global_position) FROM events), \
                (SELECT reltuples FROM pg_class WHERE oid = to_regclass('events'))",
    )
    .fetch_one(log)
    .await?;
    let max = max.unwrap_or(0);
    let estimate = estimate.filter(|e| *e > 0.0).map_or(max, |e| e as i64);
    Ok(LogHead {
        head_cursor: head.map(|(tx, pos)| format!("{tx}-{pos}")),
        global_position: max,
        events_estimate: estimate,
    })
}

async fn relay(log: &PgPool) -> Result<RelayStatus, sqlx::Error> {
    let row: Option<(i64, i64, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT transaction_id, global_position, updated_at FROM relay_checkpoints WHERE name = 'relay'",
    )
    .fetch_optional(log)
    .await?;
    let cursor = row.map_or(Cursor::START, |(tx, pos, _)| Cursor {
        transaction_id: tx.max(0) as u64,
        global_position: pos,
    });
    let hold_back: Option<(i32, Option<String>, f64, Option<String>)> = sqlx::query_as(
        "SELECT pid, datname::text, extract(epoch FROM now() - xact_start)::float8, state \
         FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
         ORDER BY age(backend_xid) DESC LIMIT 1",
    )
    .fetch_optional(log)
    .await?;
    let hold_back = match hold_back {
        None => None,
        Some((pid, database, age, state)) => {
            let held_back_events: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())",
            )
            .fetch_one(log)
            .await?;
            Some(HoldBack {
                pid,
                database,
                transaction_age_seconds: age.max(0.0),
                state,
                held_back_events,
            })
        }
    };
    Ok(RelayStatus {
        checkpoint: row.map(|(tx, pos, _)| format!("{tx}-{pos}")),
        updated_at: row.map(|r| r.2),
        lag: lag_after(log, cursor).await?,
        hold_back,
    })
}

/// The commit-order cursor of the event at `position` (the start if absent):
/// only for checkpoints written before the cursor was kept.
async fn position_cursor(log: &PgPool, position: i64) -> Result<Cursor, sqlx::Error> {
    let tx: Option<i64> = sqlx::query_scalar(
        "SELECT transaction_id::text::bigint FROM events WHERE global_position = $1",
    )
    .bind(position)
    .fetch_optional(log)
    .await?;
    Ok(tx.map_or(Cursor::START, |tx| Cursor {
        transaction_id: tx.max(0) as u64,
        global_position: position,
    }))
}

/// Committed events after `cursor` in commit order, and the oldest one's age.
async fn lag_after(log: &PgPool, cursor: Cursor) -> Result<Lag, sqlx::Error> {
    let (events, age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(recorded_at))::float8 FROM events \
         WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
    )
    .bind(cursor.transaction_id.to_string())
    .bind(cursor.global_position)
    .fetch_one(log)
    .await?;
    Ok(Lag {
        lag_events: events,
        lag_seconds: age.unwrap_or(0.0).max(0.0),
    })
}

/// The depth of `projector.dlq` by a passive declare (None: not declared yet).
async fn dead_letters(amqp_url: &str) -> Result<DeadLetters, StatusError> {
    let connection = broker::connect(amqp_url, "chat-status").await?;
    let channel = connection
        .create_channel()
        .await
        .map_err(broker::BrokerError::from)?;
    let declared = channel
        .queue_declare(
            broker::DEAD_LETTER_QUEUE.into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await;
    let depth = match declared {
        Ok(queue) => Some(queue.message_count()),
        Err(e) if e.to_string().contains("NOT_FOUND") => None,
        Err(e) => return Err(broker::BrokerError::from(e).into()),
    };
    let _ = connection.close(200, "status read".into()).await;
    Ok(DeadLetters {
        queue: broker::DEAD_LETTER_QUEUE.to_owned(),
        depth,
    })
}

/// Sockets per gateway from `gateway:{instance}:sockets` (absent: none known).
async fn gateways(url: &str, prefix: &str) -> Result<Vec<GatewaySockets>, StatusError> {
    let unreachable = |reason: String| StatusError::Redis {
        url: url.to_owned(),
        reason,
    };
    let client = redis::Client::open(url).map_err(|e| unreachable(e.to_string()))?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| unreachable("connect timed out".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    let pattern = format!("{prefix}gateway:*:sockets");
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let value: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        // Expired between SCAN and GET, or not a count: not a known gateway.
        let Some(sockets) = value.and_then(|v| v.trim().parse::<i64>().ok()) else {
            continue;
        };
        let instance = key
            .strip_prefix(&format!("{prefix}gateway:"))
            .and_then(|k| k.strip_suffix(":sockets"))
            .unwrap_or(&key)
            .to_owned();
        out.push(GatewaySockets { instance, sockets });
    }
    Ok(out)
}
