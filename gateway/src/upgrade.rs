//! The handshake: origin allowlist, token from the `Authorization` header or
//! `?access_token=` naming a registered user, refused with 401/403 before any
//! upgrade.

use crate::{Gateway, session};
use actix_web::{HttpRequest, HttpResponse, web};
use auth::{JwtConfig, TokenError};
use service_kit::ApiError;
use std::sync::Arc;

pub(crate) async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    gateway: web::Data<Arc<Gateway>>,
    jwt: web::Data<JwtConfig>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &gateway.config)?;
    let token = bearer(&req).or_else(|| query_token(&req)).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "a token is required: Authorization: Bearer or ?access_token=",
        )
    })?;
    let claims = jwt.verify(&token).map_err(|e| match e {
        TokenError::Expired => ApiError::unauthorized("token_expired", "the token has expired"),
        TokenError::Invalid => ApiError::unauthorized("invalid_token", "the token is invalid"),
    })?;
    service_kit::require_registered(&req, claims.sub).await?;
    let (response, ws_session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        tracing::debug!(error = %e, "WebSocket handshake failed");
        ApiError::bad_request(
            "not_a_websocket",
            "this is a WebSocket endpoint: upgrade required",
        )
    })?;
    let max = gateway.config.max_frame_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let gateway = gateway.get_ref().clone();
    actix_web::rt::spawn(session::run(gateway, ws_session, stream, claims));
    Ok(response)
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(|t| t.trim().to_owned())
}

fn query_token(req: &HttpRequest) -> Option<String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("access_token").cloned())
        .filter(|t| !t.is_empty())
}

/// Browsers send `Origin`; it must be one of the server's own origins
/// (configured, `CHAT_PUBLIC_URL`: never taken from the request's `Host`,
/// which the client controls) or in the allowlist, scheme included. Clients
/// that send none (not browsers) are not refused for that.
fn check_origin(req: &HttpRequest, config: &crate::GatewayConfig) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
    let listed = |list: &[String]| {
        list.iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    };
    if listed(&config.own_origins) || listed(&config.allowed_origins) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "origin_not_allowed",
            "this origin may not open a socket here",
        ))
    }
}
