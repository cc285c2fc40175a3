//! The command endpoints of DESIGN.md §6, mounted on any actix `ServiceConfig`
//! (alone in `command-service`, or beside the other services in `chat up`).

mod channels;
mod commander;
mod json;
mod messages;
mod users;

/// The JSON bodies of the command routes, as the routes deserialise them
/// (public for the fuzz targets of `fuzz/`).
pub mod bodies {
    pub use super::channels::{AddMember, Ban, ChangeRole, CreateChannel, Mute, member_body};
    pub use super::json::{Json, Object};
    pub use super::messages::{EditMessage, MarkRead, SendMessage};
}

use crate::executor::{CommandContext, Executed};
use crate::idempotency::{MAX_KEY_CHARS, header_key};
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpResponse, HttpResponseBuilder, web};
use service_kit::{ApiError, AuthUser, RequestId};

/// Every route this crate mounts, as (method, path pattern); the OpenAPI test
/// holds `schemas/openapi.json` to this list.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/users"),
    ("POST", "/api/auth/token"),
    ("POST", "/api/channels"),
    ("POST", "/api/channels/{id}/members"),
    ("DELETE", "/api/channels/{id}/members/{user_id}"),
    ("PUT", "/api/channels/{id}/members/{user_id}/role"),
    ("POST", "/api/channels/{id}/bans"),
    ("DELETE", "/api/channels/{id}/bans/{user_id}"),
    ("POST", "/api/channels/{id}/archive"),
    ("PUT", "/api/channels/{id}/mute"),
    ("POST", "/api/channels/{id}/messages"),
    ("PATCH", "/api/channels/{id}/messages/{message_id}"),
    ("DELETE", "/api/channels/{id}/messages/{message_id}"),
    ("POST", "/api/channels/{id}/read"),
];

/// Mounts every command route. The host registers `web::Data<CommandService>`,
/// `web::Data<auth::JwtConfig>` and `web::Data<AuthGate>` (one per process),
/// and `service_kit::configure_extractors`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/users", web::post().to(users::register))
        .route("/api/auth/token", web::post().to(users::issue_token))
        .route("/api/channels", web::post().to(channels::create))
        .route(
            "/api/channels/{id}/members",
            web::post().to(channels::add_member),
        )
        .route(
            "/api/channels/{id}/members/{user_id}",
            web::delete().to(channels::remove_member),
        )
        .route(
            "/api/channels/{id}/members/{user_id}/role",
            web::put().to(channels::change_role),
        )
        .route("/api/channels/{id}/bans", web::post().to(channels::ban))
        .route(
            "/api/channels/{id}/bans/{user_id}",
            web::delete().to(channels::unban),
        )
        .route(
            "/api/channels/{id}/archive",
            web::post().to(channels::archive),
        )
        .route("/api/channels/{id}/mute", web::put().to(channels::mute))
        .route(
            "/api/channels/{id}/messages",
            web::post().to(messages::send),
        )
        .route(
            "/api/channels/{id}/messages/{message_id}",
            web::patch().to(messages::edit),
        )
        .route(
            "/api/channels/{id}/messages/{message_id}",
            web::delete().to(messages::delete),
        )
        .route(
            "/api/channels/{id}/read",
            web::post().to(messages::mark_read),
        );
}

/// Builds the command context from the caller, the request id and the headers.
fn context(
    user: &AuthUser,
    request_id: RequestId,
    headers: &HeaderMap,
) -> Result<CommandContext, ApiError> {
    Ok(CommandContext {
        actor: user.user_id.into(),
        correlation_id: request_id.0,
        expected_version: if_match(headers)?,
        idempotency_key: idempotency_header(headers)?
            .map(|key| header_key(user.user_id.into(), &key)),
        request_fingerprint: None,
    })
}

/// `If-Match: "7"` (or `7`, `W/"7"`); `*` or absent: any version.
/// Public for the fuzz targets of `fuzz/`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::bad_request(
            "invalid_if_match",
            "If-Match must be an ETag this API returned",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text == "*" {
        return Ok(None);
    }
    // As the OpenAPI pattern says: `(W/)?"?[0-9]+"?`, so no sign and no
    // quotes beyond one on each side (`str::parse` takes `+7`).
    let text = text.strip_prefix("W/").unwrap_or(text);
    let text = text.strip_prefix('"').unwrap_or(text);
    let text = text.strip_suffix('"').unwrap_or(text);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse().map(Some).map_err(|_| invalid())
}

/// The `Idempotency-Key` header: 1–200 visible ASCII characters (so never U+0000).
/// Public for the fuzz targets of `fuzz/`.
pub fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if (1..=MAX_KEY_CHARS).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 200 visible ASCII characters",
        )),
    }
}

/// A response with the stream's version as a strong `ETag`.
fn with_etag(mut builder: HttpResponseBuilder, executed: &Executed) -> HttpResponseBuilder {
    builder.insert_header((header::ETAG, format!("\"{}\"", executed.version())));
    builder
}

/// `204 No Content` with the `ETag`.
fn no_content(executed: &Executed) -> HttpResponse {
    with_etag(HttpResponse::NoContent(), executed).finish()
}
