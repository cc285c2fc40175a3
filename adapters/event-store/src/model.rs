//! What goes into the log and what comes out of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Cursor;

/// The version a stream must be at for an append to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    /// `correlation_id`, `causation_id`, `actor_id`, `idempotency_key`.
    pub metadata: serde_json::Value,
}

impl NewEvent {
    pub(crate) fn idempotency_key(&self) -> Option<&str> {
        self.metadata
            .get("idempotency_key")
            .and_then(|k| k.as_str())
    }
}

/// An event as it stands in the log. Serialises to the envelope of DESIGN.md §4
/// (without `transaction_id`, which only whole-log readers need).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub stream_id: String,
    pub stream_version: u64,
    pub global_position: i64,
    #[serde(skip)]
    pub transaction_id: u64,
    pub recorded_at: DateTime<Utc>,
    pub data: serde_json::Value,
    pub metadata: serde_json::Value,
}

impl RecordedEvent {
    /// Where a whole-log reader stands after this event.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            transaction_id: self.transaction_id,
            global_position: self.global_position,
        }
    }
}

/// Cached state of a stream at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub stream_version: u64,
    /// The shape of `state`; a snapshot of another shape is ignored.
    pub snapshot_version: i32,
    pub state: serde_json::Value,
}
