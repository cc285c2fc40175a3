//! Turns a delivery's body into a recorded event and its domain event, or
//! says why it is poison (never to be retried: it goes to the dead letters).

use crate::EventSchemas;
use domain::{Event, StoredEvent};
use event_store::RecordedEvent;

/// A message that can never be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Poison(pub String);

/// Parses, validates against the schema, and decodes (upcasting) a body.
pub fn decode_delivery(
    body: &[u8],
    schemas: &EventSchemas,
) -> Result<(RecordedEvent, Event), Poison> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Poison(format!("not JSON: {e}")))?;
    schemas.check(&value).map_err(Poison)?;
    let recorded: RecordedEvent =
        serde_json::from_value(value).map_err(|e| Poison(format!("not an envelope: {e}")))?;
    let event = decode_recorded(&recorded).map_err(Poison)?;
    Ok((recorded, event))
}

/// Checks an event read from the log itself (no broker in between) against
/// its schema and decodes it: [`decode_delivery`] without the bytes.
pub fn decode_logged(recorded: &RecordedEvent, schemas: &EventSchemas) -> Result<Event, Poison> {
    let value =
        serde_json::to_value(recorded).map_err(|e| Poison(format!("not encodable: {e}")))?;
    schemas.check(&value).map_err(Poison)?;
    decode_recorded(recorded).map_err(Poison)
}

/// Decodes a recorded event (from the broker or read back from the log).
pub(crate) fn decode_recorded(recorded: &RecordedEvent) -> Result<Event, String> {
    let stored = StoredEvent {
        event_type: recorded.event_type.clone(),
        schema_version: recorded.schema_version,
        data: recorded.data.clone(),
    };
    Event::from_stored(&stored).map_err(|e| e.to_string())
}
