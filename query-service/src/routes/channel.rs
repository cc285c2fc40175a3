//! One channel with its members: open to anyone signed in for a public
//! channel, only to members for a private one. A public channel has no cap on
//! members, so the answer carries the first [`MEMBERS_SHOWN`] in joining
//! order and `member_count`, never all of them.

use crate::access::readable_channel;
use crate::{QueryError, QueryService};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use read_model::MemberRow;
use serde::Serialize;
use serde_json::json;
use service_kit::{ApiError, AuthUser};
use uuid::Uuid;

/// Most members listed in a channel's detail.
const MEMBERS_SHOWN: i64 = 100;

/// A member as clients see it; the user row may not be projected yet (no names then).
#[derive(Serialize)]
struct Member {
    user_id: Uuid,
    username: Option<String>,
    display_name: Option<String>,
    role: String,
    joined_at: DateTime<Utc>,
}

impl From<MemberRow> for Member {
    fn from(m: MemberRow) -> Self {
        Member {
            user_id: m.user_id,
            username: m.username,
            display_name: m.display_name,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

/// 200 `{channel_id, name, kind, max_members, owner_id, archived, created_at, last_seq, members, member_count}`.
pub(super) async fn show(
    user: AuthUser,
    service: web::Data<QueryService>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let channel = readable_channel(service.read(), &path, user.user_id).await?;
    let members: Vec<Member> = service
        .read()
        .members(channel.channel_id, MEMBERS_SHOWN)
        .await
        .map_err(QueryError::ReadDb)?
        .into_iter()
        .map(Member::from)
        .collect();
    let member_count = service
        .read()
        .member_count(channel.channel_id)
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
