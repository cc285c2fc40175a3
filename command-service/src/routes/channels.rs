//! Channel lifecycle and membership commands.

use super::{context, no_content, with_etag};
use crate::CommandError;
use crate::executor::{CommandService, Intent};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::{ChannelCommand, ChannelId, ChannelKind, DomainError, Role, UserId, user_stream};
use serde::Deserialize;
use serde_json::json;
use service_kit::{ApiError, AuthUser, RequestId};
use uuid::Uuid;

#[derive(Deserialize)]
pub(super) struct CreateChannel {
    name: String,
    kind: ChannelKind,
    max_members: Option<u32>,
}

pub(super) async fn create(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    body: web::Json<CreateChannel>,
) -> Result<HttpResponse, ApiError> {
    let mut ctx = context(&user, request_id, req.headers())?;
    // A new channel has no version to match.
    ctx.expected_version = None;
    let body = body.into_inner();
    let channel_id = ChannelId::new();
    let command = ChannelCommand::Create {
        channel_id,
        name: body.name,
        kind: body.kind,
        max_members: body.max_members,
    };
    let executed = service
        .execute(channel_id, Intent::Command(command), &ctx, "ChannelCreated")
        .await?;
    let channel_id = executed
        .first_event()
        .and_then(|e| e.data.get("channel_id").cloned())
        .unwrap_or_else(|| json!(channel_id));
    Ok(with_etag(HttpResponse::Created(), &executed)
        .insert_header((
            "Location",
            format!("/api/channels/{}", channel_id.as_str().unwrap_or_default()),
        ))
        .json(json!({ "channel_id": channel_id })))
}

#[derive(Deserialize, Default)]
pub(super) struct AddMember {
    user_id: Option<Uuid>,
}

/// `{}` joins the caller; `{user_id}` invites someone.
pub(super) async fn add_member(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let target = member_body(&body)?.user_id.filter(|id| *id != user.user_id);
    let (command, event_type) = match target {
        None => (ChannelCommand::Join, "MemberJoined"),
        Some(user_id) => {
            require_user(&service, user_id).await?;
            (
                ChannelCommand::Invite {
                    user_id: user_id.into(),
                },
                "MemberInvited",
            )
        }
    };
    let executed = service
        .execute(
            path.into_inner().into(),
            Intent::Command(command),
            &ctx,
            event_type,
        )
        .await?;
    Ok(no_content(&executed))
}

/// No body or `{}` joins; any other body must be a valid `{user_id}` object.
fn member_body(body: &[u8]) -> Result<AddMember, ApiError> {
    const LIMIT: usize = 4096;
    if body.len() > LIMIT {
        return Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {LIMIT} bytes"),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(AddMember::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_body"
        } else {
            "malformed_json"
        };
        ApiError::bad_request(code, e.to_string())
    })
}

/// Removing oneself is leaving; removing someone else is a kick.
pub(super) async fn remove_member(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let (channel_id, target) = path.into_inner();
    let (command, event_type) = if target == user.user_id {
        (ChannelCommand::Leave, "MemberLeft")
    } else {
        (
            ChannelCommand::Kick {
                user_id: target.into(),
            },
            "MemberKicked",
        )
    };
    let executed = service
        .execute(
            channel_id.into(),
            Intent::Command(command),
            &ctx,
            event_type,
        )
        .await?;
    Ok(no_content(&executed))
}

#[derive(Deserialize)]
pub(super) struct ChangeRole {
    role: Role,
}

pub(super) async fn change_role(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<ChangeRole>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let (channel_id, target) = path.into_inner();
    let command = ChannelCommand::ChangeRole {
        user_id: target.into(),
        role: body.role,
    };
    let executed = service
        .execute(
            channel_id.into(),
            Intent::Command(command),
            &ctx,
            "MemberRoleChanged",
        )
        .await?;
    Ok(no_content(&executed))
}

#[derive(Deserialize)]
pub(super) struct Ban {
    user_id: Uuid,
}

pub(super) async fn ban(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<Ban>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    require_user(&service, body.user_id).await?;
    let command = ChannelCommand::Ban {
        user_id: body.user_id.into(),
    };
    let executed = service
        .execute(
            path.into_inner().into(),
            Intent::Command(command),
            &ctx,
            "MemberBanned",
        )
        .await?;
    Ok(no_content(&executed))
}

pub(super) async fn unban(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let (channel_id, target) = path.into_inner();
    let command = ChannelCommand::Unban {
        user_id: target.into(),
    };
    let executed = service
        .execute(
            channel_id.into(),
            Intent::Command(command),
            &ctx,
            "MemberUnbanned",
        )
        .await?;
    Ok(no_content(&executed))
}

pub(super) async fn archive(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let executed = service
        .execute(
            path.into_inner().into(),
            Intent::Command(ChannelCommand::Archive),
            &ctx,
            "ChannelArchived",
        )
        .await?;
    Ok(no_content(&executed))
}

#[derive(Deserialize)]
pub(super) struct Mute {
    muted: bool,
}

pub(super) async fn mute(
    service: web::Data<CommandService>,
    user: AuthUser,
    request_id: RequestId,
    req: HttpRequest,
    path: web::Path<Uuid>,
    body: web::Json<Mute>,
) -> Result<HttpResponse, ApiError> {
    let ctx = context(&user, request_id, req.headers())?;
    let event_type = if body.muted {
        "ChannelMuted"
    } else {
        "ChannelUnmuted"
    };
    let command = ChannelCommand::SetMuted { muted: body.muted };
    let executed = service
        .execute(
            path.into_inner().into(),
            Intent::Command(command),
            &ctx,
            event_type,
        )
        .await?;
    Ok(no_content(&executed))
}

/// 404 unless the user is registered.
async fn require_user(service: &CommandService, user_id: Uuid) -> Result<(), ApiError> {
    let version = service
        .store()
        .stream_version(&user_stream(UserId(user_id)))
        .await
        .map_err(CommandError::Store)?;
    if version == 0 {
        return Err(CommandError::Rejected(DomainError::UserNotFound).into());
    }
    Ok(())
}
