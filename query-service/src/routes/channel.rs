//! One channel with its members: open to anyone signed in for a public
//! channel, only to members for a private one. A public channel has no cap on
//! members, so the answer carries the first [`MEMBERS_SHOWN`] in joining
//! order and `member_count`, never all of them.

use crate::access::readable_channel;
use crate::{QueryError, QueryService};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use service_kit::{ApiError, AuthUser};
use uuid::Uuid;

/// Most members listed in a channel's detail.
const MEMBERS_SHOWN: i64 = 100;

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

#[derive(Serialize, sqlx::FromRow)]
struct Member {
    user_id: Uuid,
    username: Option<String>,
    display_name: Option<String>,
    role: String,
    joined_at: DateTime<Utc>,
}

/// 200 `{channel_id, name, kind, max_members, owner_id, archived, created_at, last_seq, members, member_count}`.
pub(super) async fn show(
    user: AuthUser,
    service: web::Data<QueryService>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let channel = readable_channel(service.read_pool(), &path, user.user_id).await?;
    let members = sqlx::query_as::<_, Member>(MEMBERS)
        .bind(channel.channel_id)
        .bind(MEMBERS_SHOWN)
        .fetch_all(service.read_pool())
        .await
        .map_err(QueryError::ReadDb)?;
    let member_count: i64 = sqlx::query_scalar(MEMBER_COUNT)
        .bind(channel.channel_id)
        .fetch_one(service.read_pool())
        .await
        .map_err(QueryError::ReadDb)?;
    Ok(HttpResponse::Ok().json(json!({
        "channel_id": channel.channel_id,
        "name": channel.name,
        "kind": channel.kind,
        "max_members": channel.max_members,
        "owner_id": channel.owner_id,
        "archived": channel.archived,
        "created_at": channel.created_at,
        "last_seq": channel.last_seq,
        "members": members,
        "member_count": member_count,
    })))
}
