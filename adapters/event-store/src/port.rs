//! The event log as the services see it: one trait, two adapters
//! ([`PgEventStore`](crate::PgEventStore) for the `services` backend,
//! [`SqliteEventStore`](crate::SqliteEventStore) for `embedded`). Both keep
//! DESIGN §3's rules: an append checks its expected version and exactly one of
//! two racing appends wins; whole-log reads come in commit order and never
//! skip an event that commits later; an idempotency key is used once.

use crate::{AppendError, Cursor, ExpectedVersion, LogFilter, NewEvent, RecordedEvent, Snapshot};
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use uuid::Uuid;

/// Reads and appends of the event log, whatever holds it.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + std::fmt::Debug {
    /// Appends `events` to `stream_id` if the stream is at `expected`;
    /// returns them as recorded. Readers are woken once it committed.
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Vec<RecordedEvent>, AppendError>;

    /// The version of the stream's last event (0: no such stream).
    async fn stream_version(&self, stream_id: &str) -> Result<u64, sqlx::Error>;

    /// The stream's events with a version above `after_version`, in version order.
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error>;

    /// At most `limit` events of the stream with `after_version < version <
    /// before_version`, in version order.
    async fn read_stream_range(
        &self,
        stream_id: &str,
        after_version: u64,
        before_version: u64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error>;

    /// The events of one message (sent, edited, deleted) in a stream, in version order.
    async fn read_message_events(
        &self,
        stream_id: &str,
        message_id: Uuid,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error>;

    /// The first event appended with this idempotency key, if any.
    async fn find_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<RecordedEvent>, sqlx::Error>;

    /// The stream version the append that wrote `first` left its stream at.
    async fn version_after_append(&self, first: &RecordedEvent) -> Result<u64, sqlx::Error>;

    /// Up to `limit` events after `after` in commit order (only those no
    /// running writer can still overtake).
    async fn read_all(
        &self,
        after: Cursor,
        limit: i64,
        filter: &LogFilter,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error>;

    /// Like `read_all`, streamed row by row (constant memory for any `limit`).
    fn read_all_stream<'a>(
        &'a self,
        after: Cursor,
        limit: i64,
        filter: &'a LogFilter,
    ) -> BoxStream<'a, Result<RecordedEvent, sqlx::Error>>;

    /// When the oldest event after `after` in commit order was recorded
    /// (looking at the next 1,000 only): a reader at `after` lags by `now -` this.
    async fn oldest_recorded_after(
        &self,
        after: Cursor,
    ) -> Result<Option<DateTime<Utc>>, sqlx::Error>;

    /// The commit-order cursor of the latest of the events at `positions`
    /// (None: none of them is in the log).
    async fn latest_cursor_of(&self, positions: &[i64]) -> Result<Option<Cursor>, sqlx::Error>;

    /// The commit-order cursor of the log's last visible event (`Cursor::START`
    /// when there is none): a reader starting there sees only what comes after.
    async fn head(&self) -> Result<Cursor, sqlx::Error>;

    /// The latest snapshot of a stream, if any.
    async fn load_snapshot(&self, stream_id: &str) -> Result<Option<Snapshot>, sqlx::Error>;

    /// Stores a snapshot unless a newer one (of the same shape) is already there.
    async fn save_snapshot(&self, stream_id: &str, snapshot: &Snapshot) -> Result<(), sqlx::Error>;
}
