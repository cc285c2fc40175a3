//! Channel lifecycle and membership commands.

use super::commander::Commander;
use super::json::{Json, Object};
use super::{no_content, with_etag};
use crate::CommandError;
use crate::executor::Intent;
use actix_web::{HttpResponse, web};
use domain::{ChannelCommand, ChannelId, ChannelKind, DomainError, Role, UserId, user_stream};
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_kit::ApiError;
use uuid::Uuid;

/// The body of `POST /api/channels`.
#[derive(Debug, Deserialize, Serialize)]
pub struct CreateChannel {
    name: String,
    #[serde(deserialize_with = "super::json::string_enum")]
    kind: ChannelKind,
    #[serde(default, deserialize_with = "service_kit::integer::optional_u32")]
    max_members: Option<u32>,
}

pub(super) async fn create(
    mut cmd: Commander,
    body: Json<CreateChannel>,
) -> Result<HttpResponse, ApiError> {
    // A new channel has no version to match.
    cmd.ctx.expected_version = None;
    let body = body.into_inner();
    let channel_id = ChannelId::new();
    let command = ChannelCommand::Create {
        channel_id,
        name: body.name.clone(),
        kind: body.kind,
        max_members: body.max_members,
    };
    let executed = cmd
        .run(
            channel_id.0,
            Intent::Command(command),
            "ChannelCreated",
            &body,
        )
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

/// The body of `POST /api/channels/{id}/members` (see [`member_body`]).
#[derive(Debug, Deserialize, Serialize, Default)]
pub struct AddMember {
    user_id: Option<Uuid>,
}

/// `{}` (or no body) joins the caller; `{user_id}` invites someone.
pub(super) async fn add_member(
    cmd: Commander,
    path: web::Path<Uuid>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = member_body(&read_at_most(payload, MEMBER_BODY_LIMIT).await?)?;
    let target = body.user_id.filter(|id| *id != cmd.user_id);
    let (command, event_type) = match target {
        None => (ChannelCommand::Join, "MemberJoined"),
        Some(user_id) => {
            require_user(&cmd, user_id).await?;
            (
                ChannelCommand::Invite {
                    user_id: user_id.into(),
                },
                "MemberInvited",
            )
        }
    };
    Ok(no_content(
        &cmd.run(
            path.into_inner(),
            Intent::Command(command),
            event_type,
            &body,
        )
        .await?,
    ))
}

const MEMBER_BODY_LIMIT: usize = 4096;

/// The body, read only as far as `limit` bytes: a bigger one is a 413 in the
/// error contract whatever its size (actix's own payload limit would answer
/// a bare 413 of its own).
async fn read_at_most(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| service_kit::payload_error(&e))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body exceeds {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// No body or `{}` joins; any other body must be a valid `{user_id}` object.
/// Public for the fuzz targets of `fuzz/`.
pub fn member_body(body: &[u8]) -> Result<AddMember, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(AddMember::default());
    }
    serde_json::from_slice::<Object<AddMember>>(body)
        .map(|body| body.0)
        .map_err(|e| {
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
    cmd: Commander,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (channel_id, target) = path.into_inner();
    let (command, event_type) = if target == cmd.user_id {
        (ChannelCommand::Leave, "MemberLeft")
    } else {
        (
            ChannelCommand::Kick {
                user_id: target.into(),
            },
            "MemberKicked",
        )
    };
    Ok(no_content(
        &cmd.run(channel_id, Intent::Command(command), event_type, &())
            .await?,
    ))
}

/// The body of `PUT /api/channels/{id}/members/{user_id}/role`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ChangeRole {
    #[serde(deserialize_with = "super::json::string_enum")]
    role: Role,
}

pub(super) async fn change_role(
    cmd: Commander,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<ChangeRole>,
) -> Result<HttpResponse, ApiError> {
    let (channel_id, target) = path.into_inner();
    let command = ChannelCommand::ChangeRole {
        user_id: target.into(),
        role: body.role,
    };
    Ok(no_content(
        &cmd.run(
            channel_id,
            Intent::Command(command),
            "MemberRoleChanged",
            &*body,
        )
        .await?,
    ))
}

/// The body of `POST /api/channels/{id}/bans`.
#[derive(Debug, Deserialize, Serialize)]
pub struct Ban {
    user_id: Uuid,
}

pub(super) async fn ban(
    cmd: Commander,
    path: web::Path<Uuid>,
    body: Json<Ban>,
) -> Result<HttpResponse, ApiError> {
    require_user(&cmd, body.user_id).await?;
    let command = ChannelCommand::Ban {
        user_id: body.user_id.into(),
    };
    Ok(no_content(
        &cmd.run(
            path.into_inner(),
            Intent::Command(command),
            "MemberBanned",
            &*body,
        )
        .await?,
    ))
}

pub(super) async fn unban(
    cmd: Commander,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (channel_id, target) = path.into_inner();
    let command = ChannelCommand::Unban {
        user_id: target.into(),
    };
    Ok(no_content(
        &cmd.run(channel_id, Intent::Command(command), "MemberUnbanned", &())
            .await?,
    ))
}

pub(super) async fn archive(
    cmd: Commander,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    Ok(no_content(
        &cmd.run(
            path.into_inner(),
            Intent::Command(ChannelCommand::Archive),
            "ChannelArchived",
            &(),
        )
        .await?,
    ))
}

/// The body of `PUT /api/channels/{id}/mute`.
#[derive(Debug, Deserialize, Serialize)]
pub struct Mute {
    muted: bool,
}

pub(super) async fn mute(
    cmd: Commander,
    path: web::Path<Uuid>,
    body: Json<Mute>,
) -> Result<HttpResponse, ApiError> {
    let event_type = if body.muted {
        "ChannelMuted"
    } else {
        "ChannelUnmuted"
    };
    let command = ChannelCommand::SetMuted { muted: body.muted };
    Ok(no_content(
        &cmd.run(
            path.into_inner(),
            Intent::Command(command),
            event_type,
            &*body,
        )
        .await?,
    ))
}

/// 404 unless the user is registered.
async fn require_user(cmd: &Commander, user_id: Uuid) -> Result<(), ApiError> {
    let version = cmd
        .service()
        .store()
        .stream_version(&user_stream(UserId(user_id)))
        .await
        .map_err(CommandError::from)?;
    if version == 0 {
        return Err(CommandError::Rejected(DomainError::UserNotFound).into());
    }
    Ok(())
}
