//! The read model as the services see it: one port, two adapters
//! (PostgreSQL for the services backend, SQLite for the embedded one).
//!
//! The projector decides what is a duplicate, what is a gap and what to heal
//! (its logic, the same on both backends); the adapters only hold the SQL of
//! each question and each write. Errors are `sqlx::Error`, which both
//! drivers share, so callers keep one error type whatever the backend.

use chrono::{DateTime, Utc};
use domain::Event;
use event_store::{Cursor, RecordedEvent};
use std::collections::HashMap;
use uuid::Uuid;

/// A channel as a reader may see it, with whether the reader is in it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChannelAccess {
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

/// A member of a channel, with the user's names when the user is projected.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// A message row; a deleted one is a tombstone (no content) with its seq.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageRow {
    pub message_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub content: Option<String>,
    pub message_type: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

/// One of a user's channels, with its unread count and last message.
#[derive(Debug, Clone, PartialEq)]
pub struct MyChannelRow {
    pub channel_id: Uuid,
    pub name: String,
    pub kind: String,
    pub archived: bool,
    pub role: String,
    pub muted: bool,
    pub read_seq: i64,
    pub last_seq: i64,
    /// Messages after `read_seq` from others, not deleted, counted up to the cap asked for.
    pub unread_count: i64,
    pub last_message: Option<MessageRow>,
}

/// The columns both adapters select for [`ReadModel::channels_of`]: the
/// channel, the membership, and the last message flattened (`lm_*`, all
/// NULL when the channel has none).
#[derive(sqlx::FromRow)]
pub(crate) struct MyChannelColumns {
    pub(crate) channel_id: Uuid,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) archived: bool,
    pub(crate) role: String,
    pub(crate) muted: bool,
    pub(crate) read_seq: i64,
    pub(crate) last_seq: i64,
    pub(crate) unread_count: i64,
    pub(crate) lm_message_id: Option<Uuid>,
    pub(crate) lm_seq: Option<i64>,
    pub(crate) lm_sender_id: Option<Uuid>,
    pub(crate) lm_content: Option<String>,
    pub(crate) lm_type: Option<String>,
    pub(crate) lm_created_at: Option<DateTime<Utc>>,
    pub(crate) lm_edited_at: Option<DateTime<Utc>>,
    pub(crate) lm_deleted: Option<bool>,
}

impl From<MyChannelColumns> for MyChannelRow {
    fn from(r: MyChannelColumns) -> Self {
        let last_message = match (
            r.lm_message_id,
            r.lm_seq,
            r.lm_sender_id,
            r.lm_type,
            r.lm_created_at,
        ) {
            (
                Some(message_id),
                Some(seq),
                Some(sender_id),
                Some(message_type),
                Some(created_at),
            ) => Some(MessageRow {
                message_id,
                seq,
                sender_id,
                content: r.lm_content,
                message_type,
                created_at,
                edited_at: r.lm_edited_at,
                deleted: r.lm_deleted.unwrap_or(false),
            }),
            _ => None,
        };
        MyChannelRow {
            channel_id: r.channel_id,
            name: r.name,
            kind: r.kind,
            archived: r.archived,
            role: r.role,
            muted: r.muted,
            read_seq: r.read_seq,
            last_seq: r.last_seq,
            unread_count: r.unread_count,
            last_message,
        }
    }
}

/// A public channel in the directory.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DirectoryRow {
    pub channel_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub member_count: i64,
    pub is_member: bool,
}

/// The read model's questions, and the way into its writes.
#[async_trait::async_trait]
pub trait ReadModel: Send + Sync + std::fmt::Debug {
    /// The live channel `channel_id` with whether `user` is a member of it
    /// and whether `user` is banned from it (None: no such channel).
    async fn channel_for(
        &self,
        channel_id: Uuid,
        user: Uuid,
    ) -> Result<Option<ChannelAccess>, sqlx::Error>;

    /// The first `limit` members by (joined_at, user_id).
    async fn members(&self, channel_id: Uuid, limit: i64) -> Result<Vec<MemberRow>, sqlx::Error>;

    /// How many members the channel has.
    async fn member_count(&self, channel_id: Uuid) -> Result<i64, sqlx::Error>;

    /// At most `limit` messages with `after < seq < before`, newest first;
    /// a tombstone's content is None.
    async fn messages_between(
        &self,
        channel_id: Uuid,
        after: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error>;

    /// At most `limit` messages with seq > `after`, oldest first.
    async fn messages_after(
        &self,
        channel_id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error>;

    /// The channel's last seq (0 before its first message is projected, or
    /// for an unknown channel).
    async fn last_seq(&self, channel_id: Uuid) -> Result<u64, sqlx::Error>;

    /// Every channel `user` is a member of, the most recently active first
    /// (last message, else creation), ties by channel id; unread counts stop
    /// at `unread_cap`.
    async fn channels_of(
        &self,
        user: Uuid,
        unread_cap: i64,
    ) -> Result<Vec<MyChannelRow>, sqlx::Error>;

    /// At most `limit` public, unarchived channels whose name matches the
    /// LIKE `pattern` (escape `\`, case-insensitive), newest first, ties by
    /// channel id descending, with whether `user` is a member.
    async fn directory(
        &self,
        pattern: &str,
        user: Uuid,
        limit: i64,
    ) -> Result<Vec<DirectoryRow>, sqlx::Error>;

    /// The members of the channel to tell of a new message while they are
    /// away: every member but `sender` who has not muted it.
    async fn unmuted_members_except(
        &self,
        channel_id: Uuid,
        sender: Uuid,
    ) -> Result<Vec<Uuid>, sqlx::Error>;

    /// Answers when the store is reachable (readiness).
    async fn ping(&self) -> Result<(), sqlx::Error>;

    /// The applied version of each of `streams` in `schema` (absent: never
    /// applied), read without a transaction.
    async fn stream_positions(
        &self,
        schema: &str,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error>;

    /// Where `projection` stands (None: it never applied anything). A
    /// cursor with transaction id 0 was written before cursors were kept:
    /// only its position is known.
    async fn checkpoint(&self, projection: &str) -> Result<Option<Cursor>, sqlx::Error>;

    /// Opens a transaction writing the tables in `schema`.
    async fn begin(&self, schema: &str) -> Result<Box<dyn ReadTransaction>, sqlx::Error>;
}

/// The writes of the projection, inside a transaction.
#[async_trait::async_trait]
pub trait ReadWrites: Send {
    /// The applied version of each of `streams` (0: never applied), locked
    /// until the transaction ends, so an overlapping transaction on the same
    /// streams waits instead of applying the same events beside this one.
    async fn lock_positions(
        &mut self,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error>;

    /// The rows of one event: the same rows as the domain's `evolve` holds.
    async fn write(&mut self, recorded: &RecordedEvent, event: &Event) -> Result<(), sqlx::Error>;

    /// Moves each stream's applied version up to the one given (never down).
    async fn save_positions(&mut self, moved: &[(String, i64)]) -> Result<(), sqlx::Error>;

    /// Moves `projection`'s checkpoint to `cursor` (never back; None leaves
    /// the cursor where it is), noting `recorded_at` of its latest event.
    async fn save_checkpoint(
        &mut self,
        projection: &str,
        cursor: Option<Cursor>,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;
}

/// A read-model transaction: its writes, then its commit. Dropped without
/// a commit, it rolls back.
#[async_trait::async_trait]
pub trait ReadTransaction: ReadWrites {
    async fn commit(self: Box<Self>) -> Result<(), sqlx::Error>;
}
