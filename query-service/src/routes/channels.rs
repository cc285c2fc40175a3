//! The caller's channels with their read state: role, mute, read pointer,
//! unread count and last message, newest activity first.

use super::messages::MessageView;
use crate::{QueryError, QueryService};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use service_kit::{ApiError, AuthUser};
use uuid::Uuid;

/// One membership row with its channel, unread count and last message (the
/// `lm_` columns, all NULL when the channel has no message yet). The unread
/// count is a range count on the (channel_id, seq) key above the read pointer,
/// stopped at [`UNREAD_CAP`] (a member who never reads a busy channel would
/// otherwise pay for all of it on every list); activity is the last
/// message's time, or the channel's creation.
const MINE: &str = "
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

/// The most unread messages counted per channel (a client shows "999+").
const UNREAD_CAP: i64 = 1000;

#[derive(sqlx::FromRow)]
struct Row {
    channel_id: Uuid,
    name: String,
    kind: String,
    archived: bool,
    role: String,
    muted: bool,
    read_seq: i64,
    last_seq: i64,
    unread_count: i64,
    lm_message_id: Option<Uuid>,
    lm_seq: Option<i64>,
    lm_sender_id: Option<Uuid>,
    lm_content: Option<String>,
    lm_type: Option<String>,
    lm_created_at: Option<DateTime<Utc>>,
    lm_edited_at: Option<DateTime<Utc>>,
    lm_deleted: Option<bool>,
}

#[derive(Serialize)]
struct MyChannel {
    channel_id: Uuid,
    name: String,
    kind: String,
    archived: bool,
    role: String,
    muted: bool,
    read_seq: i64,
    last_seq: i64,
    unread_count: i64,
    last_message: Option<MessageView>,
}

impl From<Row> for MyChannel {
    fn from(r: Row) -> Self {
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
            ) => Some(MessageView {
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
        MyChannel {
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

/// 200 `{"channels": [...]}`.
pub(super) async fn list_mine(
    user: AuthUser,
    service: web::Data<QueryService>,
) -> Result<HttpResponse, ApiError> {
    let rows = sqlx::query_as::<_, Row>(MINE)
        .bind(user.user_id)
        .bind(UNREAD_CAP)
        .fetch_all(service.read_pool())
        .await
        .map_err(QueryError::ReadDb)?;
    let channels: Vec<MyChannel> = rows.into_iter().map(MyChannel::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "channels": channels })))
}
