//! The SQLite adapter of the event log (the `embedded` backend).
//!
//! One write connection, so appends are serialised by the adapter itself and
//! positions are taken and committed in order: a whole-log reader by
//! `global_position` can never pass a row that commits later, which on
//! PostgreSQL needs the xid8 watermark. A row's `transaction_id` is the first
//! position of the append that wrote it, so cursors keep their shape
//! (`(transaction_id, global_position)`, ordered the same way). WAL lets the
//! readers' pool read while the writer writes; `synchronous = FULL` makes an
//! acknowledged append survive a power cut, not only a `kill -9`. Appends
//! and registrations are committed in groups by one writer task
//! ([`writer`]), so concurrent callers share an fsync.

mod insert;
mod writer;

use crate::accounts::{Accounts, Credentials, RegisterError};
use crate::{AppendError, Cursor, ExpectedVersion, LogFilter, NewEvent, RecordedEvent, Snapshot};
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use insert::Append;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;
use writer::{Job, Writer};

const COLUMNS: &str = "event_id, event_type, schema_version, stream_id, stream_version, \
     global_position, transaction_id, recorded_at, data, metadata";

/// Why the embedded event log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    #[error("cannot open the event log {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("migrating the event log {path} failed: {source}")]
    Migrate {
        path: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// The event log in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The last committed position, for whole-log readers in this process.
    appended: Arc<watch::Sender<i64>>,
    /// The queue to the task that commits appends in groups.
    queue: Writer,
}

impl SqliteEventStore {
    /// Opens (creating and migrating) the log at `path` with `readers`
    /// read connections beside the one writer, whose task runs on the
    /// current runtime.
    pub async fn open(path: &Path, readers: u32) -> Result<Self, SqliteOpenError> {
        let shown = path.display().to_string();
        let open_error = |source| SqliteOpenError::Open {
            path: shown.clone(),
            source,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Another process (an operator's tool) may hold the write lock
            // for a moment; wait for it rather than fail.
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        sqlx::migrate!("./migrations-sqlite")
            .run(&writer)
            .await
            .map_err(|source| SqliteOpenError::Migrate {
                path: shown.clone(),
                source,
            })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(readers.max(1))
            .connect_with(options.read_only(true))
            .await
            .map_err(open_error)?;
        let last: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
            .fetch_one(&reader)
            .await
            .map_err(open_error)?;
        let appended = Arc::new(watch::Sender::new(last));
        Ok(Self {
            queue: Writer::spawn(writer.clone(), appended.clone()),
            writer,
            reader,
            appended,
        })
    }

    /// The last committed position, changed after every append: whole-log
    /// readers in this process wait on it instead of polling.
    pub fn appended(&self) -> watch::Receiver<i64> {
        self.appended.subscribe()
    }

    /// Closes both pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn fetch_all(
        &self,
        sql: &str,
        bind: impl FnOnce(
            sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
        )
            -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let rows = bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(decode).collect()
    }
}

#[async_trait::async_trait]
impl crate::EventLog for SqliteEventStore {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let append = Append::new(stream_id, expected, events);
        self.queue
            .submit(|reply| Job::Append(append, reply), AppendError::Database)
            .await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<u64, sqlx::Error> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = ?")
                .bind(stream_id)
                .fetch_one(&self.reader)
                .await?;
        Ok(v.unwrap_or(0) as u64)
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = ? AND stream_version > ? ORDER BY stream_version"
        );
        self.fetch_all(&sql, |q| q.bind(stream_id).bind(to_i64(after_version)))
            .await
    }

    async fn read_stream_range(
        &self,
        stream_id: &str,
        after_version: u64,
        before_version: u64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        if before_version <= after_version.saturating_add(1) || limit <= 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = ? AND stream_version > ? AND stream_version < ? \
             ORDER BY stream_version LIMIT ?"
        );
        self.fetch_all(&sql, |q| {
            q.bind(stream_id)
                .bind(to_i64(after_version))
                .bind(to_i64(before_version))
                .bind(limit)
        })
        .await
    }

    async fn read_message_events(
        &self,
        stream_id: &str,
        message_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = ? \
             AND json_extract(data, '$.message_id') IS NOT NULL \
             AND json_extract(data, '$.message_id') = ? ORDER BY stream_version"
        );
        self.fetch_all(&sql, |q| q.bind(stream_id).bind(message_id.to_string()))
            .await
    }

    async fn find_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<RecordedEvent>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events \
             WHERE json_extract(metadata, '$.idempotency_key') IS NOT NULL \
             AND json_extract(metadata, '$.idempotency_key') = ? ORDER BY global_position LIMIT 1"
        );
        Ok(self
            .fetch_all(&sql, |q| q.bind(key))
            .await?
            .into_iter()
            .next())
    }

    async fn version_after_append(&self, first: &RecordedEvent) -> Result<u64, sqlx::Error> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT max(stream_version) FROM events WHERE stream_id = ? AND transaction_id = ?",
        )
        .bind(&first.stream_id)
        .bind(to_i64(first.transaction_id))
        .fetch_one(&self.reader)
        .await?;
        Ok(version.map_or(first.stream_version, |v| v as u64))
    }

    async fn read_all(
        &self,
        after: Cursor,
        limit: i64,
        filter: &LogFilter,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        self.read_all_stream(after, limit, filter)
            .try_collect()
            .await
    }

    fn read_all_stream<'a>(
        &'a self,
        after: Cursor,
        limit: i64,
        filter: &'a LogFilter,
    ) -> BoxStream<'a, Result<RecordedEvent, sqlx::Error>> {
        let mut types = filter.event_types.clone();
        types.sort();
        types.dedup();
        let mut conditions = vec!["global_position > ?"];
        if filter.stream_id.is_some() {
            conditions.push("stream_id = ?");
        }
        if !types.is_empty() {
            conditions.push("event_type IN (SELECT value FROM json_each(?))");
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE {} ORDER BY global_position LIMIT ?",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after.global_position);
        if let Some(stream) = &filter.stream_id {
            query = query.bind(stream.clone());
        }
        if !types.is_empty() {
            query = query.bind(serde_json::Value::from(types).to_string());
        }
        query
            .bind(limit.max(0))
            .fetch(&self.reader)
            .and_then(|row| std::future::ready(decode(&row)))
            .boxed()
    }

    async fn oldest_recorded_after(
        &self,
        after: Cursor,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
        let oldest: Option<String> = sqlx::query_scalar(
            "SELECT min(recorded_at) FROM (SELECT recorded_at FROM events \
             WHERE global_position > ? ORDER BY global_position LIMIT 1000)",
        )
        .bind(after.global_position)
        .fetch_one(&self.reader)
        .await?;
        oldest.as_deref().map(parse_time).transpose()
    }

    async fn latest_cursor_of(&self, positions: &[i64]) -> Result<Option<Cursor>, sqlx::Error> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, global_position FROM events \
             WHERE global_position IN (SELECT value FROM json_each(?)) \
             ORDER BY global_position DESC LIMIT 1",
        )
        .bind(serde_json::Value::from(positions.to_vec()).to_string())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(transaction_id, global_position)| Cursor {
            transaction_id: transaction_id as u64,
            global_position,
        }))
    }

    async fn head(&self) -> Result<Cursor, sqlx::Error> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, global_position FROM events ORDER BY global_position DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        Ok(
            row.map_or(Cursor::START, |(transaction_id, global_position)| Cursor {
                transaction_id: transaction_id as u64,
                global_position,
            }),
        )
    }

    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, sqlx::Error> {
        let row: Option<(i64, i32, String)> = sqlx::query_as(
            "SELECT stream_version, snapshot_version, state FROM snapshots WHERE stream_id = ?",
        )
        .bind(stream_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|(stream_version, snapshot_version, state)| {
            Ok(Snapshot {
                stream_version: stream_version as u64,
                snapshot_version,
                state: serde_json::from_str(&state).map_err(|e| sqlx::Error::Decode(e.into()))?,
            })
        })
        .transpose()
    }

    async fn save_snapshot(&self, stream_id: &str, snapshot: &Snapshot) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO snapshots (stream_id, stream_version, snapshot_version, state, taken_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version, \
             snapshot_version = excluded.snapshot_version, state = excluded.state, taken_at = excluded.taken_at \
             WHERE snapshots.stream_version < excluded.stream_version \
                OR snapshots.snapshot_version <> excluded.snapshot_version",
        )
        .bind(stream_id)
        .bind(to_i64(snapshot.stream_version))
        .bind(snapshot.snapshot_version)
        .bind(snapshot.state.to_string())
        .bind(format_time(Utc::now()))
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Accounts for SqliteEventStore {
    async fn register(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        credentials: &Credentials,
    ) -> Result<Vec<RecordedEvent>, RegisterError> {
        let append = Append::new(stream_id, expected, events);
        let credentials = credentials.clone();
        self.queue
            .submit(
                |reply| Job::Register(append, credentials, reply),
                RegisterError::Database,
            )
            .await
    }

    async fn credentials_of(&self, username: &str) -> Result<Option<Credentials>, sqlx::Error> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT user_id, username, password_hash FROM user_credentials \
             WHERE lower(username) = lower(?)",
        )
        .bind(username)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|(user_id, username, password_hash)| {
            Ok(Credentials {
                user_id: Uuid::parse_str(&user_id).map_err(|e| sqlx::Error::Decode(e.into()))?,
                username,
                password_hash,
            })
        })
        .transpose()
    }
}

/// Now, at PostgreSQL's precision (microseconds), so both backends record the same instants.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Fixed width, so the text sorts as the instants do.
fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn decode(row: &SqliteRow) -> Result<RecordedEvent, sqlx::Error> {
    let decode_error = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::Decode(e);
    let json = |column: &str| -> Result<serde_json::Value, sqlx::Error> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| decode_error(e.into()))
    };
    let event_id: String = row.try_get("event_id")?;
    let recorded_at: String = row.try_get("recorded_at")?;
    Ok(RecordedEvent {
        event_id: Uuid::parse_str(&event_id).map_err(|e| decode_error(e.into()))?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i64, _>("schema_version")? as u32,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get::<i64, _>("stream_version")? as u64,
        global_position: row.try_get("global_position")?,
        transaction_id: row.try_get::<i64, _>("transaction_id")? as u64,
        recorded_at: parse_time(&recorded_at)?,
        data: json("data")?,
        metadata: json("metadata")?,
    })
}
