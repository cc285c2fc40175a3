//! Typed identifiers, so a user id can never be passed where a channel id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7 keeps index inserts local).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// Identifies a registered user.
    UserId
);
id_type!(
    /// Identifies a channel.
    ChannelId
);
id_type!(
    /// Identifies a message within its channel.
    MessageId
);

/// The event stream that holds a channel's history (membership and messages).
pub fn channel_stream(id: ChannelId) -> String {
    format!("channel-{id}")
}

/// The event stream that holds a user's history.
pub fn user_stream(id: UserId) -> String {
    format!("user-{id}")
}
