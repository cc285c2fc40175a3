//! The PostgreSQL adapter of the read model: the queries read the live
//! schema (`rm`); the writes go to the schema they were opened on, so a
//! rebuild writes its new tables beside the live ones.

use crate::port::{
    ChannelAccess, DirectoryRow, MemberRow, MessageRow, MyChannelRow, ReadModel, ReadTransaction,
    ReadWrites,
};
use crate::quote_ident;
use chrono::{DateTime, Utc};
use domain::Event;
use event_store::{Cursor, RecordedEvent};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use std::collections::HashMap;
use uuid::Uuid;

fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// A channel with whether the reader is a member of it and banned from it.
const CHANNEL: &str = "
SELECT c.channel_id, c.name, c.kind, c.max_members, c.owner_id, c.archived, c.created_at,
       c.last_seq,
       EXISTS (SELECT 1 FROM rm.members m WHERE m.channel_id = c.channel_id AND m.user_id = $2)
           AS is_member,
       EXISTS (SELECT 1 FROM rm.bans b WHERE b.channel_id = c.channel_id AND b.user_id = $2)
           AS is_banned
FROM rm.channels c
WHERE c.channel_id = $1";

/// The first members in joining order; the user row may not be projected yet (NULLs then).
const MEMBERS: &str = "
SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at
FROM rm.members m
LEFT JOIN rm.users u ON u.user_id = m.user_id
WHERE m.channel_id = $1
ORDER BY m.joined_at, m.user_id
LIMIT $2";

/// How many members (an index-only count on the members key).
const MEMBER_COUNT: &str = "SELECT count(*) FROM rm.members WHERE channel_id = $1";

/// Newest first within the exclusive seq interval: a range scan on the
/// (channel_id, seq) key.
const MESSAGES_BETWEEN: &str = "
SELECT message_id, seq, sender_id,
       CASE WHEN deleted THEN NULL ELSE content END AS content,
       message_type, created_at, edited_at, deleted
FROM rm.messages
WHERE channel_id = $1 AND seq > $2 AND seq < $3
ORDER BY seq DESC
LIMIT $4";

/// Oldest first after a seq (a deleted message has no content already).
const MESSAGES_AFTER: &str = "
SELECT message_id, seq, sender_id, content, message_type, created_at, edited_at, deleted
FROM rm.messages
WHERE channel_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3";

const LAST_SEQ: &str = "SELECT last_seq FROM rm.channels WHERE channel_id = $1";

/// One membership row with its channel, unread count and last message (the
/// `lm_` columns, all NULL when the channel has no message yet). The unread
/// count is a range count on the (channel_id, seq) key above the read pointer,
/// stopped at the cap (a member who never reads a busy channel would
/// otherwise pay for all of it on every list); activity is the last
/// message's time, or the channel's creation.
const CHANNELS_OF: &str = "
SELECT c.channel_id, c.name, c.kind, c.archived, m.role, m.muted, m.read_seq, c.last_seq,
       (SELECT count(*) FROM (SELECT 1 FROM rm.messages u
        WHERE u.channel_id = m.channel_id AND u.seq > m.read_seq
          AND NOT u.deleted AND u.sender_id <> m.user_id
        LIMIT $2) AS capped) AS unread_count,
       lm.message_id AS lm_message_id, lm.seq AS lm_seq, lm.sender_id AS lm_sender_id,
       lm.content AS lm_content, lm.message_type AS lm_type, lm.created_at AS lm_created_at,
       lm.edited_at AS lm_edited_at, lm.deleted AS lm_deleted
FROM rm.members m
JOIN rm.channels c ON c.channel_id = m.channel_id
LEFT JOIN LATERAL (
    SELECT message_id, seq, sender_id,
           CASE WHEN deleted THEN NULL ELSE content END AS content,
           message_type, created_at, edited_at, deleted
    FROM rm.messages x
    WHERE x.channel_id = m.channel_id
    ORDER BY x.seq DESC
    LIMIT 1
) lm ON true
WHERE m.user_id = $1
ORDER BY coalesce(lm.created_at, c.created_at) DESC, c.channel_id";

/// `$1` is a LIKE pattern whose wildcards the caller escaped with `\`. The
/// member count runs on the members key, once per listed channel.
const DIRECTORY: &str = r"
SELECT c.channel_id, c.name, c.created_at,
       (SELECT count(*) FROM rm.members m WHERE m.channel_id = c.channel_id) AS member_count,
       EXISTS (SELECT 1 FROM rm.members m WHERE m.channel_id = c.channel_id AND m.user_id = $2)
           AS is_member
FROM rm.channels c
WHERE c.kind = 'public' AND NOT c.archived AND c.name ILIKE $1 ESCAPE '\'
ORDER BY c.created_at DESC, c.channel_id DESC
LIMIT $3";

const UNMUTED_MEMBERS_EXCEPT: &str =
    "SELECT user_id FROM rm.members WHERE channel_id = $1 AND NOT muted AND user_id <> $2";

const CHECKPOINT: &str =
    "SELECT transaction_id, global_position FROM rm.checkpoints WHERE projection = $1";

/// The read model in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgReadModel {
    pool: PgPool,
}

impl PgReadModel {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for the operator tools that work on whole schemas.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait::async_trait]
impl ReadModel for PgReadModel {
    async fn channel_for(
        &self,
        channel_id: Uuid,
        user: Uuid,
    ) -> Result<Option<ChannelAccess>, sqlx::Error> {
        sqlx::query_as(CHANNEL)
            .bind(channel_id)
            .bind(user)
            .fetch_optional(&self.pool)
            .await
    }

    async fn members(&self, channel_id: Uuid, limit: i64) -> Result<Vec<MemberRow>, sqlx::Error> {
        sqlx::query_as(MEMBERS)
            .bind(channel_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    async fn member_count(&self, channel_id: Uuid) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(MEMBER_COUNT)
            .bind(channel_id)
            .fetch_one(&self.pool)
            .await
    }

    async fn messages_between(
        &self,
        channel_id: Uuid,
        after: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error> {
        sqlx::query_as(MESSAGES_BETWEEN)
            .bind(channel_id)
            .bind(after)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    async fn messages_after(
        &self,
        channel_id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>, sqlx::Error> {
        sqlx::query_as(MESSAGES_AFTER)
            .bind(channel_id)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    async fn last_seq(&self, channel_id: Uuid) -> Result<u64, sqlx::Error> {
        let last: Option<i64> = sqlx::query_scalar(LAST_SEQ)
            .bind(channel_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(last.unwrap_or(0).max(0) as u64)
    }

    async fn channels_of(
        &self,
        user: Uuid,
        unread_cap: i64,
    ) -> Result<Vec<MyChannelRow>, sqlx::Error> {
        let rows: Vec<crate::port::MyChannelColumns> = sqlx::query_as(CHANNELS_OF)
            .bind(user)
            .bind(unread_cap)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(MyChannelRow::from).collect())
    }

    async fn directory(
        &self,
        pattern: &str,
        user: Uuid,
        limit: i64,
    ) -> Result<Vec<DirectoryRow>, sqlx::Error> {
        sqlx::query_as(DIRECTORY)
            .bind(pattern)
            .bind(user)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
    }

    async fn unmuted_members_except(
        &self,
        channel_id: Uuid,
        sender: Uuid,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(UNMUTED_MEMBERS_EXCEPT)
            .bind(channel_id)
            .bind(sender)
            .fetch_all(&self.pool)
            .await
    }

    async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn stream_positions(
        &self,
        schema: &str,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error> {
        let s = quote_ident(schema);
        let rows: Vec<(String, i64)> = sqlx::query_as(sql(format!(
            "SELECT stream_id, version FROM {s}.stream_positions WHERE stream_id = ANY($1)"
        )))
        .bind(streams)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, v)| (id, v.max(0) as u64))
            .collect())
    }

    async fn checkpoint(&self, projection: &str) -> Result<Option<Cursor>, sqlx::Error> {
        let row: Option<(i64, i64)> = sqlx::query_as(CHECKPOINT)
            .bind(projection)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|(tx, position)| Cursor {
            transaction_id: tx.max(0) as u64,
            global_position: position,
        }))
    }

    async fn begin(&self, schema: &str) -> Result<Box<dyn ReadTransaction>, sqlx::Error> {
        Ok(Box::new(PgReadTransaction {
            tx: self.pool.begin().await?,
            schema: quote_ident(schema),
        }))
    }
}

/// The writes of the projection over a connection whose transaction the
/// caller owns (a rebuild's switch, a replay's batches).
#[derive(Debug)]
pub struct PgReadWrites<'c> {
    conn: &'c mut PgConnection,
    /// Quoted.
    schema: String,
}

impl<'c> PgReadWrites<'c> {
    /// Writes to the tables in `schema` through `conn` (inside the caller's transaction).
    pub fn new(conn: &'c mut PgConnection, schema: &str) -> Self {
        Self {
            conn,
            schema: quote_ident(schema),
        }
    }
}

/// A read-model transaction of its own, from [`PgReadModel::begin`].
#[derive(Debug)]
struct PgReadTransaction {
    tx: Transaction<'static, Postgres>,
    /// Quoted.
    schema: String,
}

#[async_trait::async_trait]
impl ReadWrites for PgReadWrites<'_> {
    async fn lock_positions(
        &mut self,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error> {
        lock_positions(&mut *self.conn, &self.schema, streams).await
    }

    async fn write(&mut self, recorded: &RecordedEvent, event: &Event) -> Result<(), sqlx::Error> {
        write(&mut *self.conn, &self.schema, recorded, event).await
    }

    async fn save_positions(&mut self, moved: &[(String, i64)]) -> Result<(), sqlx::Error> {
        save_positions(&mut *self.conn, &self.schema, moved).await
    }

    async fn save_checkpoint(
        &mut self,
        projection: &str,
        cursor: Option<Cursor>,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        save_checkpoint(
            &mut *self.conn,
            &self.schema,
            projection,
            cursor,
            recorded_at,
        )
        .await
    }
}

#[async_trait::async_trait]
impl ReadWrites for PgReadTransaction {
    async fn lock_positions(
        &mut self,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, sqlx::Error> {
        lock_positions(&mut self.tx, &self.schema, streams).await
    }

    async fn write(&mut self, recorded: &RecordedEvent, event: &Event) -> Result<(), sqlx::Error> {
        write(&mut self.tx, &self.schema, recorded, event).await
    }

    async fn save_positions(&mut self, moved: &[(String, i64)]) -> Result<(), sqlx::Error> {
        save_positions(&mut self.tx, &self.schema, moved).await
    }

    async fn save_checkpoint(
        &mut self,
        projection: &str,
        cursor: Option<Cursor>,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        save_checkpoint(&mut self.tx, &self.schema, projection, cursor, recorded_at).await
    }
}

#[async_trait::async_trait]
impl ReadTransaction for PgReadTransaction {
    async fn commit(self: Box<Self>) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

async fn lock_positions(
    conn: &mut PgConnection,
    s: &str,
    streams: &[String],
) -> Result<HashMap<String, u64>, sqlx::Error> {
    // A stream seen for the first time has no row to lock: make one (version
    // 0) first, so an overlapping transaction on the same new stream waits
    // for this one instead of applying the same events beside it.
    sqlx::query(sql(format!(
        "INSERT INTO {s}.stream_positions (stream_id, version) SELECT unnest($1::text[]), 0 \
         ON CONFLICT (stream_id) DO NOTHING"
    )))
    .bind(streams)
    .execute(&mut *conn)
    .await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(sql(format!(
        "SELECT stream_id, version FROM {s}.stream_positions WHERE stream_id = ANY($1) ORDER BY stream_id FOR UPDATE"
    )))
    .bind(streams)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, v)| (id, v.max(0) as u64))
        .collect())
}

async fn save_positions(
    conn: &mut PgConnection,
    s: &str,
    moved: &[(String, i64)],
) -> Result<(), sqlx::Error> {
    if moved.is_empty() {
        return Ok(());
    }
    let (ids, versions): (Vec<&str>, Vec<i64>) =
        moved.iter().map(|(id, v)| (id.as_str(), *v)).unzip();
    sqlx::query(sql(format!(
        "INSERT INTO {s}.stream_positions (stream_id, version) SELECT * FROM unnest($1::text[], $2::bigint[]) \
         ON CONFLICT (stream_id) DO UPDATE SET version = greatest({s}.stream_positions.version, excluded.version)"
    )))
    .bind(&ids)
    .bind(&versions)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn save_checkpoint(
    conn: &mut PgConnection,
    s: &str,
    projection: &str,
    cursor: Option<Cursor>,
    recorded_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (tx_id, position) = match cursor {
        Some(c) => (
            i64::try_from(c.transaction_id).unwrap_or(i64::MAX),
            c.global_position,
        ),
        // Unknown: leave the cursor where it is (0-0 never wins the comparison).
        None => (0, 0),
    };
    sqlx::query(sql(format!(
        "INSERT INTO {s}.checkpoints (projection, global_position, recorded_at, applied_at, transaction_id) \
         VALUES ($1, $2, $3, now(), $4) \
         ON CONFLICT (projection) DO UPDATE SET \
         global_position = CASE WHEN ({s}.checkpoints.transaction_id, {s}.checkpoints.global_position) \
             < (excluded.transaction_id, excluded.global_position) \
             THEN excluded.global_position ELSE {s}.checkpoints.global_position END, \
         transaction_id = CASE WHEN ({s}.checkpoints.transaction_id, {s}.checkpoints.global_position) \
             < (excluded.transaction_id, excluded.global_position) \
             THEN excluded.transaction_id ELSE {s}.checkpoints.transaction_id END, \
         recorded_at = greatest({s}.checkpoints.recorded_at, excluded.recorded_at), applied_at = now()"
    )))
    .bind(projection)
    .bind(position)
    .bind(recorded_at)
    .bind(tx_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The read-model writes of one event. Each is written so that it produces the
/// same rows as the domain's `evolve` would hold.
async fn write(
    tx: &mut PgConnection,
    s: &str,
    recorded: &RecordedEvent,
    event: &Event,
) -> Result<(), sqlx::Error> {
    let at = recorded.recorded_at;
    match event {
        Event::UserRegistered(e) => {
            sqlx::query(sql(format!(
                "INSERT INTO {s}.users (user_id, username, display_name, registered_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id) DO NOTHING"
            )))
            .bind(e.user_id.0)
            .bind(&e.username)
            .bind(&e.display_name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::ChannelCreated(e) => {
            let kind = if e.kind == domain::ChannelKind::Private {
                "private"
            } else {
                "public"
            };
            sqlx::query(sql(format!(
                "INSERT INTO {s}.channels (channel_id, name, kind, max_members, owner_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (channel_id) DO NOTHING"
            )))
            .bind(e.channel_id.0)
            .bind(&e.name)
            .bind(kind)
            .bind(e.max_members.map(|m| m as i32))
            .bind(e.owner_id.0)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            upsert_member(tx, s, e.channel_id.0, e.owner_id.0, "owner", at).await?;
        }
        Event::MemberJoined(e) => {
            upsert_member(tx, s, e.channel_id.0, e.user_id.0, "member", at).await?
        }
        Event::MemberInvited(e) => {
            upsert_member(tx, s, e.channel_id.0, e.user_id.0, "member", at).await?
        }
        Event::MemberLeft(e) => remove_member(tx, s, e.channel_id.0, e.user_id.0).await?,
        Event::MemberKicked(e) => remove_member(tx, s, e.channel_id.0, e.user_id.0).await?,
        Event::MemberBanned(e) => {
            remove_member(tx, s, e.channel_id.0, e.user_id.0).await?;
            sqlx::query(sql(format!(
                "INSERT INTO {s}.bans (channel_id, user_id, banned_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::MemberUnbanned(e) => {
            sqlx::query(sql(format!(
                "DELETE FROM {s}.bans WHERE channel_id = $1 AND user_id = $2"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .execute(&mut *tx)
            .await?;
        }
        Event::MemberRoleChanged(e) => {
            let role = match e.role {
                domain::Role::Owner => "owner",
                domain::Role::Admin => "admin",
                domain::Role::Member => "member",
            };
            sqlx::query(sql(format!(
                "UPDATE {s}.members SET role = $3 WHERE channel_id = $1 AND user_id = $2"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .bind(role)
            .execute(&mut *tx)
            .await?;
            if e.role == domain::Role::Owner {
                // Ownership is transferred (the old owner's step-down is its own event).
                sqlx::query(sql(format!(
                    "UPDATE {s}.channels SET owner_id = $2 WHERE channel_id = $1"
                )))
                .bind(e.channel_id.0)
                .bind(e.user_id.0)
                .execute(&mut *tx)
                .await?;
            }
        }
        Event::ChannelArchived(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.channels SET archived = true, updated_at = $2 WHERE channel_id = $1"
            )))
            .bind(e.channel_id.0)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::ChannelMuted(e) => set_muted(tx, s, e.channel_id.0, e.user_id.0, true).await?,
        Event::ChannelUnmuted(e) => set_muted(tx, s, e.channel_id.0, e.user_id.0, false).await?,
        Event::MessageSent(e) => {
            sqlx::query(sql(format!(
                "INSERT INTO {s}.messages (channel_id, seq, message_id, sender_id, content, message_type, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
            )))
            .bind(e.channel_id.0)
            .bind(e.seq as i64)
            .bind(e.message_id.0)
            .bind(e.sender_id.0)
            .bind(&e.content)
            .bind(&e.message_type)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(sql(format!(
                "UPDATE {s}.channels SET last_seq = greatest(last_seq, $2), updated_at = $3 WHERE channel_id = $1"
            )))
            .bind(e.channel_id.0)
            .bind(e.seq as i64)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::MessageEdited(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.messages SET content = $2, edited_at = $3 WHERE message_id = $1 AND NOT deleted"
            )))
            .bind(e.message_id.0)
            .bind(&e.content)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::MessageDeleted(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.messages SET content = NULL, deleted = true WHERE message_id = $1"
            )))
            .bind(e.message_id.0)
            .execute(&mut *tx)
            .await?;
        }
        Event::ReadUpTo(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.members SET read_seq = greatest(read_seq, $3) WHERE channel_id = $1 AND user_id = $2"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .bind(e.seq as i64)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// A (re)joining member starts afresh, as in the domain.
async fn upsert_member(
    tx: &mut PgConnection,
    s: &str,
    channel: Uuid,
    user: Uuid,
    role: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql(format!(
        "INSERT INTO {s}.members (channel_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel_id, user_id) DO UPDATE SET role = excluded.role, muted = false, read_seq = 0, joined_at = excluded.joined_at"
    )))
    .bind(channel)
    .bind(user)
    .bind(role)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn remove_member(
    tx: &mut PgConnection,
    s: &str,
    channel: Uuid,
    user: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql(format!(
        "DELETE FROM {s}.members WHERE channel_id = $1 AND user_id = $2"
    )))
    .bind(channel)
    .bind(user)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn set_muted(
    tx: &mut PgConnection,
    s: &str,
    channel: Uuid,
    user: Uuid,
    muted: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(sql(format!(
        "UPDATE {s}.members SET muted = $3 WHERE channel_id = $1 AND user_id = $2"
    )))
    .bind(channel)
    .bind(user)
    .bind(muted)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
