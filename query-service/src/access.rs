//! Who may read a channel: anyone signed in and not banned from it for a
//! public channel, only its members for any other (the gateway's rule for
//! subscriptions). Shared by the channel and message-history routes.
//!
//! Decided from the read model, not the log: a kick or ban is applied in
//! stream order, no later than the channel's next message (same stream, one
//! transaction per batch), so a removed member never reads a message sent
//! after the removal; for as long as the projection lags, they can still read
//! the history they could read before it. Reading the log here would put the
//! write database on every read of history.

use crate::QueryError;
use read_model::{ChannelAccess, ReadModel};
use uuid::Uuid;

/// The channel named by the path segment `id`, if `user` may read it: 404 for
/// an unknown or malformed id, 403 for a channel `user` is banned from or a
/// private channel `user` is not in.
pub(crate) async fn readable_channel(
    read: &dyn ReadModel,
    id: &str,
    user: Uuid,
) -> Result<ChannelAccess, QueryError> {
    let channel_id = Uuid::parse_str(id).map_err(|_| QueryError::ChannelNotFound)?;
    let channel = read
        .channel_for(channel_id, user)
        .await
        .map_err(QueryError::ReadDb)?
        .ok_or(QueryError::ChannelNotFound)?;
    if channel.is_banned {
        return Err(QueryError::Banned);
    }
    // Only a channel known to be public is open to everyone.
    if channel.kind != "public" && !channel.is_member {
        return Err(QueryError::NotAMember);
    }
    Ok(channel)
}
