//! The caller's channels with their read state: role, mute, read pointer,
//! unread count and last message, newest activity first.

use super::messages::MessageView;
use crate::{QueryError, QueryService};
use actix_web::{HttpResponse, web};
use read_model::MyChannelRow;
use serde::Serialize;
use serde_json::json;
use service_kit::{ApiError, AuthUser};
use uuid::Uuid;

/// The most unread messages counted per channel (a client shows "999+"):
/// a member who never reads a busy channel would otherwise pay for all of it
/// on every list.
const UNREAD_CAP: i64 = 1000;

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

impl From<MyChannelRow> for MyChannel {
    fn from(r: MyChannelRow) -> Self {
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
            last_message: r.last_message.map(MessageView::from),
        }
    }
}

/// 200 `{"channels": [...]}`.
pub(super) async fn list_mine(
    user: AuthUser,
    service: web::Data<QueryService>,
) -> Result<HttpResponse, ApiError> {
    let rows = service
        .read()
        .channels_of(user.user_id, UNREAD_CAP)
        .await
        .map_err(QueryError::ReadDb)?;
    let channels: Vec<MyChannel> = rows.into_iter().map(MyChannel::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "channels": channels })))
}
