//! What the gateways are told of a committed change: the same body on
//! RabbitMQ's `chat.projections` and on the embedded backend's in-process bus.

use crate::apply::AppliedChange;
use serde_json::{Value, json};

/// `{"channel_id", "event"}` for a change that concerns a channel (None: a
/// user event, which no gateway pushes).
pub(crate) fn announcement(change: &AppliedChange) -> Option<Value> {
    let channel_id = change.channel_id?;
    Some(json!({ "channel_id": channel_id, "event": change.event }))
}
