//! Request extractors with the error contract: bearer-token users, request
//! ids, and JSON/path/query parsing that answers 400/404/413, never 500.

use crate::ApiError;
use crate::known_users::{self, KnownUsers};
use actix_web::dev::Payload;
use actix_web::error::{JsonPayloadError, QueryPayloadError};
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use auth::{JwtConfig, TokenError};
use futures_util::future::LocalBoxFuture;
use std::future::{Ready, ready};
use uuid::Uuid;

/// The authenticated caller, from `Authorization: Bearer <JWT>`: a valid
/// token whose subject is a registered user (when the host registered
/// [`KnownUsers`], as every server binary does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub username: String,
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = authenticate(req);
        let known = req.app_data::<web::Data<KnownUsers>>().cloned();
        Box::pin(async move {
            let user = verified?;
            if let Some(known) = known {
                known_users::check(&known, user.user_id).await?;
            }
            Ok(user)
        })
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let Some(jwt) = req.app_data::<web::Data<JwtConfig>>() else {
        return Err(ApiError::internal(
            &"JwtConfig is not registered as app data",
        ));
    };
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "an Authorization: Bearer token is required",
            )
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header must be `Bearer <token>`",
            )
        })?;
    match jwt.verify(token) {
        Ok(claims) => Ok(AuthUser {
            user_id: claims.sub,
            username: claims.name,
        }),
        Err(TokenError::Expired) => Err(ApiError::unauthorized(
            "token_expired",
            "the token has expired",
        )),
        Err(TokenError::Invalid) => Err(ApiError::unauthorized(
            "invalid_token",
            "the token is invalid",
        )),
    }
}

/// The id of the current request (from `X-Request-Id` or fresh); it becomes the
/// correlation id of the events a command appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub Uuid);

impl FromRequest for RequestId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RequestId>()
            .copied()
            .unwrap_or(RequestId(Uuid::now_v7()))))
    }
}

/// Registers JSON, path and query extractor configs that answer with the error
/// contract. `max_body` bounds JSON bodies (413 beyond it).
pub fn configure_extractors(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .content_type_required(false)
            .error_handler(|err, _| json_error(err).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|_, _| ApiError::not_found("not_found", "no such resource").into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _| query_error(err).into()));
}

fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {limit} bytes"),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::bad_request("invalid_body", e.to_string())
        }
        JsonPayloadError::Deserialize(e) => ApiError::bad_request("malformed_json", e.to_string()),
        JsonPayloadError::Payload(e) if crate::slow_clients::is_body_timeout(&e) => {
            crate::slow_clients::body_timed_out()
        }
        JsonPayloadError::ContentType => {
            ApiError::bad_request("malformed_json", "the body must be JSON")
        }
        other => ApiError::bad_request("malformed_json", other.to_string()),
    }
}

fn query_error(err: QueryPayloadError) -> ApiError {
    ApiError::bad_request("invalid_query", err.to_string())
}
