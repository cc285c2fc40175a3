//! Domain events and their stored form.
//!
//! The domain enum is what `decide` emits and `evolve` folds. The stored form is a
//! stable `event_type` name, a `schema_version` and a JSON `data` object; old
//! versions are upcast (see `upcast`) before they are decoded, so the enum only
//! ever knows the current shape.

use crate::channel::{ChannelKind, Role};
use crate::ids::{ChannelId, MessageId, UserId};
use crate::upcast::{UpcastError, current_schema_version, upcast};
use serde::{Deserialize, Serialize};

/// A user registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
}

/// A channel was created; its creator is its owner and first member.
/// Schema v2: `kind` replaced v1's boolean `private`, and `max_members` was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCreated {
    pub channel_id: ChannelId,
    pub name: String,
    pub kind: ChannelKind,
    pub max_members: Option<u32>,
    pub owner_id: UserId,
}

/// A user joined a public channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberJoined {
    pub channel_id: ChannelId,
    pub user_id: UserId,
}

/// An owner or admin added a user to the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInvited {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub invited_by: UserId,
}

/// A member left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLeft {
    pub channel_id: ChannelId,
    pub user_id: UserId,
}

/// An owner or admin removed a member (who may rejoin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberKicked {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub kicked_by: UserId,
}

/// An owner or admin barred a user; a member is removed as well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberBanned {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub banned_by: UserId,
}

/// A ban was lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUnbanned {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub unbanned_by: UserId,
}

/// A member's role changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRoleChanged {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub role: Role,
    pub changed_by: UserId,
}

/// The channel was archived: it keeps its history but takes no more messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelArchived {
    pub channel_id: ChannelId,
    pub archived_by: UserId,
}

/// A member muted the channel's notifications for themself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMuted {
    pub channel_id: ChannelId,
    pub user_id: UserId,
}

/// A member unmuted the channel's notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelUnmuted {
    pub channel_id: ChannelId,
    pub user_id: UserId,
}

/// A message was accepted with the next `seq` of its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub seq: u64,
    pub sender_id: UserId,
    pub content: String,
    pub message_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
}

/// A message's content was replaced by its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdited {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub seq: u64,
    pub sender_id: UserId,
    pub content: String,
    pub edited_by: UserId,
}

/// A message was deleted; it keeps its `seq` and reads as a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub seq: u64,
    pub sender_id: UserId,
    pub deleted_by: UserId,
}

/// A member has read the channel up to and including `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadUpTo {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub seq: u64,
}

/// Every event of the domain. The variant name is the stored `event_type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event_type", content = "data")]
pub enum Event {
    UserRegistered(UserRegistered),
    ChannelCreated(ChannelCreated),
    MemberJoined(MemberJoined),
    MemberInvited(MemberInvited),
    MemberLeft(MemberLeft),
    MemberKicked(MemberKicked),
    MemberBanned(MemberBanned),
    MemberUnbanned(MemberUnbanned),
    MemberRoleChanged(MemberRoleChanged),
    ChannelArchived(ChannelArchived),
    ChannelMuted(ChannelMuted),
    ChannelUnmuted(ChannelUnmuted),
    MessageSent(MessageSent),
    MessageEdited(MessageEdited),
    MessageDeleted(MessageDeleted),
    ReadUpTo(ReadUpTo),
}

/// The names of every event type, as stored.
pub const EVENT_TYPES: [&str; 16] = [
    "UserRegistered",
    "ChannelCreated",
    "MemberJoined",
    "MemberInvited",
    "MemberLeft",
    "MemberKicked",
    "MemberBanned",
    "MemberUnbanned",
    "MemberRoleChanged",
    "ChannelArchived",
    "ChannelMuted",
    "ChannelUnmuted",
    "MessageSent",
    "MessageEdited",
    "MessageDeleted",
    "ReadUpTo",
];

/// An event as the log stores it: a name, a schema version and a JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
}

/// Why a stored event could not be turned back into a domain event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Upcast(#[from] UpcastError),
    #[error("{event_type} v{schema_version}: {source}")]
    Shape {
        event_type: String,
        schema_version: u32,
        source: serde_json::Error,
    },
}

impl Event {
    /// The stored `event_type` name.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::UserRegistered(_) => "UserRegistered",
            Event::ChannelCreated(_) => "ChannelCreated",
            Event::MemberJoined(_) => "MemberJoined",
            Event::MemberInvited(_) => "MemberInvited",
            Event::MemberLeft(_) => "MemberLeft",
            Event::MemberKicked(_) => "MemberKicked",
            Event::MemberBanned(_) => "MemberBanned",
            Event::MemberUnbanned(_) => "MemberUnbanned",
            Event::MemberRoleChanged(_) => "MemberRoleChanged",
            Event::ChannelArchived(_) => "ChannelArchived",
            Event::ChannelMuted(_) => "ChannelMuted",
            Event::ChannelUnmuted(_) => "ChannelUnmuted",
            Event::MessageSent(_) => "MessageSent",
            Event::MessageEdited(_) => "MessageEdited",
            Event::MessageDeleted(_) => "MessageDeleted",
            Event::ReadUpTo(_) => "ReadUpTo",
        }
    }

    /// The stored form at the current schema version.
    pub fn to_stored(&self) -> StoredEvent {
        let event_type = self.event_type();
        // unwrap: every variant is a plain struct of strings, numbers and ids,
        // which serde_json always serialises; a failure is a programming error.
        #[expect(clippy::unwrap_used)]
        let mut tagged = serde_json::to_value(self).unwrap();
        let data = tagged
            .get_mut("data")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        StoredEvent {
            event_type: event_type.to_owned(),
            schema_version: current_schema_version(event_type).unwrap_or(1),
            data,
        }
    }

    /// Decodes a stored event of any known schema version, upcasting it first.
    pub fn from_stored(stored: &StoredEvent) -> Result<Event, DecodeError> {
        let data = upcast(
            &stored.event_type,
            stored.schema_version,
            stored.data.clone(),
        )?;
        let tagged = serde_json::json!({ "event_type": stored.event_type, "data": data });
        serde_json::from_value(tagged).map_err(|source| DecodeError::Shape {
            event_type: stored.event_type.clone(),
            schema_version: stored.schema_version,
            source,
        })
    }
}
