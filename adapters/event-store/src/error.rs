//! Why an append did not happen.

/// An append refused by the log, or a failure of the database.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream was not at the expected version (someone else appended first).
    #[error("stream {stream_id} is no longer at the expected version {expected}")]
    Conflict { stream_id: String, expected: String },
    /// An event with this idempotency key is already in the log.
    #[error("idempotency key {0:?} was already used")]
    DuplicateIdempotencyKey(String),
    /// An event with this id is already in the log.
    #[error("event id already in the log")]
    DuplicateEventId,
    /// The database failed; the append may be retried.
    #[error("event log unavailable: {0}")]
    Database(#[from] sqlx::Error),
}

impl AppendError {
    /// Classifies a unique violation from an insert into `events`.
    pub(crate) fn from_insert(
        err: sqlx::Error,
        stream_id: &str,
        expected: String,
        idempotency_key: Option<&str>,
    ) -> Self {
        let constraint = err
            .as_database_error()
            .and_then(|e| e.constraint())
            .map(str::to_owned);
        match constraint.as_deref() {
            Some("events_stream_version_key") => AppendError::Conflict {
                stream_id: stream_id.to_owned(),
                expected,
            },
            Some("events_idempotency_key") => {
                AppendError::DuplicateIdempotencyKey(idempotency_key.unwrap_or_default().to_owned())
            }
            Some("events_event_id_key") => AppendError::DuplicateEventId,
            _ => AppendError::Database(err),
        }
    }

    /// Whether retrying after reloading the stream can succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, AppendError::Conflict { .. })
    }
}
