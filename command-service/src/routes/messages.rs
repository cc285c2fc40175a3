//! Sending, editing, deleting and reading messages.

use super::{context, no_content, with_etag};
use crate::executor::{CommandService, Intent};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::{ChannelCommand, MessageId};
use serde::Deserialize;
use serde_json::json;
use service_kit::{ApiError, AuthUser, RequestId};
use uuid::Uuid;

#[derive(Deserialize)]
pub(super) struct SendMessage {
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
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<SendMessage>,
) -> Result<HttpResponse, ApiError> {
    let mut ctx = context(&user, request_id, req.headers())?;
    let body = body.into_inner();
    if let Some(id) = &body.client_msg_id {
        if id.is_empty() || id.len() > 200 {
            return Err(ApiError::bad_request(
                "invalid_body",
                "client_msg_id must be 1 to 200 bytes",
            ));
        }
        // The client's own id dedupes sends across HTTP and WebSocket alike.
        ctx.idempotency_key = Some(format!("msg:{}:{id}", user.user_id));
    }
    let command = ChannelCommand::SendMessage {
        message_id: MessageId::new(),
        content: body.content,
        message_type: body.message_type,
        client_msg_id: body.client_msg_id,
    };
    let executed = service
        .execute(
            path.into_inner().into(),
            Intent::Command(command),
            &ctx,
            "MessageSent",
        )
        .await?;
    let data = executed
        .first_event()
        .map(|e| e.data.clone())
        .unwrap_or_default();
    Ok(with_etag(HttpResponse::Created(), &executed)
        .json(json!({ "message_id": data.get("message_id"), "seq": data.get("seq") })))
}

#[derive(Deserialize)]
pub(super) struct EditMessage {
    content: String,
}

pub(super) async fn edit(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<EditMessage>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let (channel_id, message_id) = path.into_inner();
    let intent = Intent::Edit {
        message_id: message_id.into(),
        content: body.into_inner().content,
    };
    let executed = service
        .execute(channel_id.into(), intent, &ctx, "MessageEdited")
        .await?;
    let data = executed
        .first_event()
        .map(|e| e.data.clone())
        .unwrap_or_default();
    Ok(with_etag(HttpResponse::Ok(), &executed)
        .json(json!({ "message_id": message_id, "seq": data.get("seq") })))
}

pub(super) async fn delete(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let (channel_id, message_id) = path.into_inner();
    let executed = service
        .execute(
            channel_id.into(),
            Intent::Delete {
                message_id: message_id.into(),
            },
            &ctx,
            "MessageDeleted",
        )
        .await?;
    Ok(no_content(&executed))
}

#[derive(Deserialize)]
pub(super) struct MarkRead {
    seq: u64,
}

pub(super) async fn mark_read(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<MarkRead>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let command = ChannelCommand::MarkRead { seq: body.seq };
    let executed = service
        .execute(
            path.into_inner().into(),
            Intent::Command(command),
            &ctx,
            "ReadUpTo",
        )
        .await?;
    Ok(no_content(&executed))
}
