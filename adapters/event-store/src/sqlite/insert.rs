//! One append inside the writer's transaction: check the stream's expected
//! version, insert its rows, and tell the log's unique violations apart.
//! The event texts are encoded by the caller (see [`Append::new`]), so the
//! one writer spends its time writing, not serialising.

use super::{format_time, now_micros, to_i64};
use crate::{AppendError, ExpectedVersion, NewEvent, RecordedEvent};
use sqlx::SqliteConnection;

/// One caller's append, ready to be written.
pub(super) struct Append {
    stream_id: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    /// Each event's `data` and `metadata` as stored.
    texts: Vec<(String, String)>,
}

impl Append {
    /// Copies what the writer task needs (it outlives the caller's borrow).
    pub(super) fn new(stream_id: &str, expected: ExpectedVersion, events: &[NewEvent]) -> Self {
        Self {
            stream_id: stream_id.to_owned(),
            expected,
            texts: events
                .iter()
                .map(|e| (e.data.to_string(), e.metadata.to_string()))
                .collect(),
            events: events.to_vec(),
        }
    }

    /// About how many bytes the append writes: what bounds a group.
    pub(super) fn bytes(&self) -> usize {
        self.texts.iter().map(|(d, m)| d.len() + m.len()).sum()
    }
}

/// Writes `append` at positions from `first` on (the next free one: the
/// writer holds the write lock and knows it) inside the open transaction.
pub(super) async fn append_in(
    conn: &mut SqliteConnection,
    append: &Append,
    first: i64,
) -> Result<Vec<RecordedEvent>, AppendError> {
    let Append {
        stream_id,
        expected,
        events,
        texts,
    } = append;
    let expected = *expected;
    if events.is_empty() {
        return Ok(vec![]);
    }
    let head: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = ?",
    )
    .bind(stream_id)
    .fetch_one(&mut *conn)
    .await?;
    let head = head as u64;
    let fits = match expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => head == 0,
        ExpectedVersion::Exact(v) => head == v,
    };
    if !fits {
        return Err(AppendError::Conflict {
            stream_id: stream_id.clone(),
            expected: expected.to_string(),
        });
    }
    let recorded_at = now_micros();
    let stamp = format_time(recorded_at);
    let mut recorded = Vec::with_capacity(events.len());
    for (offset, (event, (data, metadata))) in events.iter().zip(texts).enumerate() {
        let position = first + offset as i64;
        let version = head + 1 + offset as u64;
        sqlx::query(
            "INSERT INTO events (global_position, transaction_id, stream_id, stream_version, \
             event_id, event_type, schema_version, data, metadata, recorded_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(position)
        .bind(first)
        .bind(stream_id)
        .bind(to_i64(version))
        .bind(event.event_id.hyphenated().to_string())
        .bind(&event.event_type)
        .bind(i64::from(event.schema_version))
        .bind(data)
        .bind(metadata)
        .bind(&stamp)
        .execute(&mut *conn)
        .await
        .map_err(|e| classify_insert(e, stream_id, expected, event))?;
        recorded.push(RecordedEvent {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            stream_id: stream_id.clone(),
            stream_version: version,
            global_position: position,
            transaction_id: first as u64,
            recorded_at,
            data: event.data.clone(),
            metadata: event.metadata.clone(),
        });
    }
    Ok(recorded)
}

/// A unique violation of one insert, told apart by the constraint SQLite names.
fn classify_insert(
    err: sqlx::Error,
    stream_id: &str,
    expected: ExpectedVersion,
    event: &NewEvent,
) -> AppendError {
    let unique = err
        .as_database_error()
        .filter(|e| e.is_unique_violation())
        .map(|e| e.message().to_owned());
    match unique.as_deref() {
        Some(m) if m.contains("events.stream_id, events.stream_version") => AppendError::Conflict {
            stream_id: stream_id.to_owned(),
            expected: expected.to_string(),
        },
        Some(m) if m.contains("events.event_id") => AppendError::DuplicateEventId,
        Some(m) if m.contains("events_idempotency_key") => AppendError::DuplicateIdempotencyKey(
            event.idempotency_key().unwrap_or_default().to_owned(),
        ),
        _ => AppendError::Database(err),
    }
}
