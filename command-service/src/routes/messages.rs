//! Sending, editing, deleting and reading messages.

use super::commander::Commander;
use super::json::Json;
use super::{no_content, with_etag};
use crate::executor::Intent;
use actix_web::{HttpResponse, web};
use domain::{ChannelCommand, MessageId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_kit::ApiError;
use uuid::Uuid;

/// The body of `POST /api/channels/{id}/messages`.
#[derive(Debug, Deserialize, Serialize)]
pub struct SendMessage {
    content: String,
    #[serde(rename = "type", default = "text")]
    message_type: String,
    client_msg_id: Option<String>,
}

fn text() -> String {
    "text".into()
}

/// 201 `{message_id, seq}`; a repeat (same `client_msg_id` or `Idempotency-Key`) answers the same.
pub(super) async fn send(
    mut cmd: Commander,
    path: web::Path<Uuid>,
    body: Json<SendMessage>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let channel_id = path.into_inner();
    if let Some(id) = &body.client_msg_id {
        // The client's own id dedupes sends across HTTP and WebSocket alike.
        cmd.key_by_client_msg_id(channel_id, id)?;
    }
    let command = ChannelCommand::SendMessage {
        message_id: MessageId::new(),
        content: body.content.clone(),
        message_type: body.message_type.clone(),
        client_msg_id: body.client_msg_id.clone(),
    };
    let executed = cmd
        .run(channel_id, Intent::Command(command), "MessageSent", &body)
        .await?;
    let data = executed
        .first_event()
        .map(|e| e.data.clone())
        .unwrap_or_default();
    Ok(with_etag(HttpResponse::Created(), &executed)
        .json(json!({ "message_id": data.get("message_id"), "seq": data.get("seq") })))
}

/// The body of `PATCH /api/channels/{id}/messages/{message_id}`.
#[derive(Debug, Deserialize, Serialize)]
pub struct EditMessage {
    content: String,
}

pub(super) async fn edit(
    cmd: Commander,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<EditMessage>,
) -> Result<HttpResponse, ApiError> {
    let (channel_id, message_id) = path.into_inner();
    let body = body.into_inner();
    let intent = Intent::Edit {
        message_id: message_id.into(),
        content: body.content.clone(),
    };
    let executed = cmd.run(channel_id, intent, "MessageEdited", &body).await?;
    let data = executed
        .first_event()
        .map(|e| e.data.clone())
        .unwrap_or_default();
    Ok(with_etag(HttpResponse::Ok(), &executed)
        .json(json!({ "message_id": message_id, "seq": data.get("seq") })))
}

pub(super) async fn delete(
    cmd: Commander,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (channel_id, message_id) = path.into_inner();
    Ok(no_content(
        &cmd.run(
            channel_id,
            Intent::Delete {
                message_id: message_id.into(),
            },
            "MessageDeleted",
            &(),
        )
        .await?,
    ))
}

/// The body of `POST /api/channels/{id}/read`.
#[derive(Debug, Deserialize, Serialize)]
pub struct MarkRead {
    #[serde(deserialize_with = "service_kit::integer::u64")]
    seq: u64,
}

pub(super) async fn mark_read(
    cmd: Commander,
    path: web::Path<Uuid>,
    body: Json<MarkRead>,
) -> Result<HttpResponse, ApiError> {
    let command = ChannelCommand::MarkRead { seq: body.seq };
    Ok(no_content(
        &cmd.run(
            path.into_inner(),
            Intent::Command(command),
            "ReadUpTo",
            &*body,
        )
        .await?,
    ))
}
