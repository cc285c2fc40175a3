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
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A channel row with whether the caller is a member of it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ChannelRow {
    pub channel_id: Uuid,
    pub name: String,
    pub kind: String,
    pub max_members: Option<i32>,
    pub owner_id: Uuid,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub last_seq: i64,
    pub is_member: bool,
    pub is_banned: bool,
}

const CHANNEL: &str = "
SELECT c.channel_id, c.name, c.kind, c.max_members, c.owner_id, c.archived, c.created_at,
       c.last_seq,
       EXISTS (SELECT 1 FROM rm.members m WHERE m.channel_id = c.channel_id AND m.user_id = $2)
           AS is_member,
       EXISTS (SELECT 1 FROM rm.bans b WHERE b.channel_id = c.channel_id AND b.user_id = $2)
           AS is_banned
FROM rm.channels c
WHERE c.channel_id = $1";

/// The channel named by the path segment `id`, if `user` may read it: 404 for
/// an unknown or malformed id, 403 for a channel `user` is banned from or a
/// private channel `user` is not in.
pub(crate) async fn readable_channel(
    pool: &PgPool,
    id: &str,
    user: Uuid,
) -> Result<ChannelRow, QueryError> {
    let channel_id = Uuid::parse_str(id).map_err(|_| QueryError::ChannelNotFound)?;
    let channel = sqlx::query_as::<_, ChannelRow>(CHANNEL)
        .bind(channel_id)
        .bind(user)
        .fetch_optional(pool)
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
