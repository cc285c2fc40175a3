//! The chat domain: users and channels as event-sourced aggregates.
//!
//! Everything here is pure: `decide(state, command) -> Result<Vec<Event>, DomainError>`
//! says what happens, `evolve(state, event) -> state` folds it in. No IO, no clock,
//! no async runtime; adapters load state, call these, and persist the result.

mod channel;
mod error;
mod event;
mod ids;
mod message;
mod policy;
mod text;
mod upcast;
mod user;

pub use channel::{Channel, ChannelCommand, ChannelKind, Member, Role};
pub use error::{DomainError, ErrorKind};
pub use event::{
    ChannelArchived, ChannelCreated, ChannelMuted, ChannelUnmuted, DecodeError, EVENT_TYPES, Event,
    MemberBanned, MemberInvited, MemberJoined, MemberKicked, MemberLeft, MemberRoleChanged,
    MemberUnbanned, MessageDeleted, MessageEdited, MessageSent, ReadUpTo, StoredEvent,
    UserRegistered,
};
pub use ids::{ChannelId, MessageId, UserId, channel_stream, user_stream};
pub use message::MessageFacts;
pub use policy::MessagePolicy;
pub use text::{check_name, check_text};
pub use upcast::{UpcastError, current_schema_version, upcast};
pub use user::{RegisterUser, User};
