//! Reading the whole log in global commit order, with the analysts' filters.
//!
//! Like `PgEventStore::read_all`, a read orders by `(transaction_id,
//! global_position)` and only sees transactions below the xmin horizon — but
//! the horizon is fixed once, when the read starts (see [`settle`]): the read
//! is the log as it stood then, complete, and it ends however busy the log
//! is; `--after` its last cursor continues exactly after it. Only the clauses in use are sent, so every page is a range
//! scan of the `(transaction_id, global_position)` index.

use chrono::{DateTime, Utc};
use event_store::{Cursor, RecordedEvent};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use std::time::{Duration, Instant};

/// The columns every read selects, with the xid8 as text (sqlx has no xid8 type).
/// That text is named `transaction_id` too, so every `ORDER BY` names the table
/// column as `events.transaction_id`: a bare name would sort by the output
/// column, as text, where "1000000" < "999999".
const COLUMNS: &str = "event_id, event_type, schema_version, stream_id, stream_version, global_position, \
     transaction_id::text AS transaction_id, recorded_at, data, metadata";

/// Which events of the log to read, in commit order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only events after this cursor.
    pub after: Cursor,
    /// Only events up to and including this cursor.
    pub until: Option<Cursor>,
    /// Only transactions below this id: the xmin horizon when the read started.
    pub horizon: u64,
    /// Only this stream.
    pub stream_id: Option<String>,
    /// Only streams whose id starts with this (`channel-`, `user-`).
    pub stream_prefix: Option<String>,
    /// Only these event types (empty: all).
    pub event_types: Vec<String>,
    /// Only events recorded at or before this time (a filter, not a stop).
    pub recorded_until: Option<DateTime<Utc>>,
    /// Only events at or below this global position.
    pub position_until: Option<i64>,
}

/// Where a read of the log "as it stands now" ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    /// Read only transactions below this id; every one of them has ended.
    pub xid: u64,
    /// Whether every transaction running when the read started had ended in
    /// time (false: the read stops short, at the xmin horizon reached).
    pub settled: bool,
}

/// The horizon of a read that starts now: the first transaction id not yet
/// assigned, once every transaction running now has ended (transaction ids
/// are cluster-wide, so these may be in any database). Waits at most
/// `max_wait`, then settles for the xmin horizon reached.
pub async fn settle(pool: &PgPool, max_wait: Duration) -> Result<Horizon, sqlx::Error> {
    let started = Instant::now();
    let target = xid(pool, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text").await?;
    let mut pause = Duration::from_millis(5);
    loop {
        let xmin = xid(pool, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").await?;
        if xmin >= target {
            return Ok(Horizon {
                xid: target,
                settled: true,
            });
        }
        if started.elapsed() >= max_wait {
            return Ok(Horizon {
                xid: xmin,
                settled: false,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

async fn xid(pool: &PgPool, sql: &'static str) -> Result<u64, sqlx::Error> {
    let text: String = sqlx::query_scalar(sql).fetch_one(pool).await?;
    text.parse()
        .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e)))
}

/// The last cursor before the first event after `after` (below `horizon`)
/// recorded later than `time`: where `--until TIME` stops. `None`: no event
/// after `after` was recorded later, so nothing is cut.
pub async fn last_before_time(
    pool: &PgPool,
    after: Cursor,
    horizon: u64,
    time: DateTime<Utc>,
) -> Result<Option<Cursor>, sqlx::Error> {
    let bounds = LogQuery {
        after,
        horizon,
        ..LogQuery::default()
    };
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT transaction_id::text AS transaction_id, global_position FROM events",
    );
    bounds.push_where(&mut qb);
    qb.push(" AND recorded_at > ")
        .push_bind(time)
        .push(" ORDER BY events.transaction_id, events.global_position LIMIT 1");
    let Some(row) = qb.build().fetch_optional(pool).await? else {
        return Ok(None);
    };
    let first_late = cursor_of(&row)?;
    // The cursor just before it: positions are integers, so (tx, p) < (t, q)
    // exactly when (tx, p) <= (t, q - 1).
    Ok(Some(Cursor {
        transaction_id: first_late.transaction_id,
        global_position: first_late.global_position - 1,
    }))
}

impl LogQuery {
    /// How many events the query selects (for progress and ETA).
    pub async fn count(&self, pool: &PgPool) -> Result<u64, sqlx::Error> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM events");
        self.push_where(&mut qb);
        let n: i64 = qb.build_query_scalar().fetch_one(pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The query of the page of at most `limit` events after `after`.
    pub fn page(&self, after: Cursor, limit: i64) -> QueryBuilder<Postgres> {
        let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM events"));
        LogQuery {
            after,
            ..self.clone()
        }
        .push_where(&mut qb);
        qb.push(" ORDER BY events.transaction_id, events.global_position LIMIT ")
            .push_bind(limit.max(0));
        qb
    }

    /// ` WHERE …` with only the clauses in use.
    fn push_where(&self, qb: &mut QueryBuilder<Postgres>) {
        qb.push(" WHERE (transaction_id, global_position) > (")
            .push_bind(self.after.transaction_id.to_string())
            .push("::text::xid8, ")
            .push_bind(self.after.global_position)
            .push(") AND transaction_id < ")
            .push_bind(self.horizon.to_string())
            .push("::text::xid8");
        if let Some(until) = self.until {
            qb.push(" AND (transaction_id, global_position) <= (")
                .push_bind(until.transaction_id.to_string())
                .push("::text::xid8, ")
                .push_bind(until.global_position)
                .push(")");
        }
        if let Some(stream) = &self.stream_id {
            qb.push(" AND stream_id = ").push_bind(stream.clone());
        }
        if let Some(prefix) = &self.stream_prefix {
            qb.push(" AND starts_with(stream_id, ")
                .push_bind(prefix.clone())
                .push(")");
        }
        if !self.event_types.is_empty() {
            qb.push(" AND event_type = ANY(")
                .push_bind(self.event_types.clone())
                .push(")");
        }
        if let Some(time) = self.recorded_until {
            qb.push(" AND recorded_at <= ").push_bind(time);
        }
        if let Some(position) = self.position_until {
            qb.push(" AND global_position <= ").push_bind(position);
        }
    }
}

impl LogQuery {
    /// Whether no event at or after `event` in commit order can be selected:
    /// it is beyond the horizon or the `until` cursor. The embedded backend
    /// stops reading there.
    pub fn is_past(&self, event: &RecordedEvent) -> bool {
        let cursor = event.cursor();
        cursor.transaction_id >= self.horizon || self.until.is_some_and(|until| cursor > until)
    }

    /// Whether the query selects `event`, judged on the event itself: what
    /// the `WHERE` of [`LogQuery::page`] says, for events read through the
    /// `EventLog` port.
    pub fn admits(&self, event: &RecordedEvent) -> bool {
        event.cursor() > self.after
            && !self.is_past(event)
            && self
                .stream_id
                .as_ref()
                .is_none_or(|s| *s == event.stream_id)
            && self
                .stream_prefix
                .as_ref()
                .is_none_or(|p| event.stream_id.starts_with(p.as_str()))
            && (self.event_types.is_empty() || self.event_types.contains(&event.event_type))
            && self.recorded_until.is_none_or(|t| event.recorded_at <= t)
            && self
                .position_until
                .is_none_or(|p| event.global_position <= p)
    }
}

fn cursor_of(row: &PgRow) -> Result<Cursor, sqlx::Error> {
    let transaction_id: String = row.try_get("transaction_id")?;
    Ok(Cursor {
        transaction_id: transaction_id
            .parse()
            .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e)))?,
        global_position: row.try_get("global_position")?,
    })
}

/// A row of `COLUMNS` as a recorded event.
pub fn decode(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    let cursor = cursor_of(row)?;
    let non_negative = |v: i64| u64::try_from(v).map_err(|e| sqlx::Error::Decode(Box::new(e)));
    Ok(RecordedEvent {
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: u32::try_from(row.try_get::<i32, _>("schema_version")?)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        stream_id: row.try_get("stream_id")?,
        stream_version: non_negative(row.try_get("stream_version")?)?,
        global_position: cursor.global_position,
        transaction_id: cursor.transaction_id,
        recorded_at: row.try_get("recorded_at")?,
        data: row.try_get("data")?,
        metadata: row.try_get("metadata")?,
    })
}
