//! Reading the event log for a rebuild: straight from Postgres, in commit
//! order `(transaction_id, global_position)`, only below the oldest running
//! transaction (DESIGN.md §3), in large pages. Only the columns a read model
//! needs are fetched (no metadata), and events of the current schema version
//! are decoded from their JSON text without an intermediate `Value`.

use chrono::{DateTime, Utc};
use domain::{Event, StoredEvent};
use event_store::Cursor;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The same predicate and order as `PgEventStore::read_all`.
const PAGE: &str = "SELECT event_id, event_type, schema_version, stream_id, stream_version, global_position, \
     transaction_id::text::bigint AS xid, recorded_at, data::text AS data \
     FROM events \
     WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
     ORDER BY transaction_id, global_position \
     LIMIT $3";

/// One event of the log, decoded for folding.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub global_position: i64,
    pub transaction_id: u64,
    pub recorded_at: DateTime<Utc>,
    /// The domain event, or why it cannot be decoded (then it is never applied,
    /// as the live projector never applies it either).
    pub event: Result<Event, String>,
}

impl LogEvent {
    /// Where a whole-log reader stands after this event.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            transaction_id: self.transaction_id,
            global_position: self.global_position,
        }
    }
}

/// Up to `limit` events after `after` in commit order.
pub async fn read_page(
    log: &PgPool,
    after: Cursor,
    limit: usize,
) -> Result<Vec<LogEvent>, sqlx::Error> {
    decode_rows(fetch_page(log, after, limit).await?)
}

/// Up to `limit` rows after `after` in commit order, not yet decoded.
pub async fn fetch_page(
    log: &PgPool,
    after: Cursor,
    limit: usize,
) -> Result<Vec<PgRow>, sqlx::Error> {
    sqlx::query(PAGE)
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(log)
        .await
}

/// The cursor after a fetched row.
pub fn row_cursor(row: &PgRow) -> Result<Cursor, sqlx::Error> {
    Ok(Cursor {
        transaction_id: row.try_get::<i64, _>(XID)?.max(0) as u64,
        global_position: row.try_get(POSITION)?,
    })
}

// Column indexes of `PAGE`.
const EVENT_ID: usize = 0;
const EVENT_TYPE: usize = 1;
const SCHEMA_VERSION: usize = 2;
const STREAM_ID: usize = 3;
const STREAM_VERSION: usize = 4;
const POSITION: usize = 5;
const XID: usize = 6;
const RECORDED_AT: usize = 7;
const DATA: usize = 8;

/// Decodes fetched rows into events.
pub fn decode_rows(rows: Vec<PgRow>) -> Result<Vec<LogEvent>, sqlx::Error> {
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let event_type: &str = row.try_get(EVENT_TYPE)?;
        let schema_version = row.try_get::<i32, _>(SCHEMA_VERSION)?.max(0) as u32;
        let data: &str = row.try_get(DATA)?;
        let cursor = row_cursor(&row)?;
        events.push(LogEvent {
            event_id: row.try_get(EVENT_ID)?,
            stream_id: row.try_get(STREAM_ID)?,
            stream_version: row.try_get::<i64, _>(STREAM_VERSION)?.max(0) as u64,
            global_position: cursor.global_position,
            transaction_id: cursor.transaction_id,
            recorded_at: row.try_get(RECORDED_AT)?,
            event: decode(event_type, schema_version, data),
        });
    }
    Ok(events)
}

/// Decodes as `projector`'s healing path does (`Event::from_stored`, upcasting
/// old versions); the current version takes a shortcut with the same result.
pub fn decode(event_type: &str, schema_version: u32, data: &str) -> Result<Event, String> {
    if domain::current_schema_version(event_type) == Some(schema_version) {
        let name = serde_json::to_string(event_type).map_err(|e| e.to_string())?;
        let tagged = format!("{{\"event_type\":{name},\"data\":{data}}}");
        return serde_json::from_str(&tagged)
            .map_err(|e| format!("{event_type} v{schema_version}: {e}"));
    }
    let data = serde_json::from_str(data).map_err(|e| e.to_string())?;
    let stored = StoredEvent {
        event_type: event_type.to_owned(),
        schema_version,
        data,
    };
    Event::from_stored(&stored).map_err(|e| e.to_string())
}

/// A rough count of the log's events, for progress and ETA only: the highest
/// position (an upper bound: rolled-back appends leave holes).
pub async fn estimate_events(log: &PgPool) -> Result<u64, sqlx::Error> {
    let max: Option<i64> = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(log)
        .await?;
    Ok(max.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcut_decodes_like_from_stored() {
        let event = Event::MessageSent(domain::MessageSent {
            channel_id: domain::ChannelId::new(),
            message_id: domain::MessageId::new(),
            seq: 7,
            sender_id: domain::UserId::new(),
            content: "hi \"there\"\n".into(),
            message_type: "text".into(),
            client_msg_id: Some("c1".into()),
        });
        let stored = event.to_stored();
        let text = stored.data.to_string();
        let fast = decode(&stored.event_type, stored.schema_version, &text).expect("decodes");
        assert_eq!(fast, Event::from_stored(&stored).expect("decodes"));
        assert_eq!(fast, event);
    }

    #[test]
    fn old_versions_are_upcast_and_garbage_is_an_error() {
        let data = serde_json::json!({"channel_id": Uuid::nil(), "name": "n", "private": true, "owner_id": Uuid::nil()});
        let event = decode("ChannelCreated", 1, &data.to_string()).expect("v1 upcasts");
        assert!(
            matches!(event, Event::ChannelCreated(c) if c.kind == domain::ChannelKind::Private)
        );
        assert!(decode("MessageSent", 1, "{\"seq\": \"x\"}").is_err());
        assert!(decode("Teleported", 1, "{}").is_err());
    }
}
