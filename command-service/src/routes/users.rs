//! Registration and login. The user's events go to the log and the password
//! hash to the credentials beside it, both or neither ([`event_store::Accounts`]).
//!
//! Before any database or hash: the text rules (DESIGN.md §6), the username,
//! display name and password rules, then the throttle per client address and
//! per username (§7). Hashes run on the [`AuthGate`]'s pool, whose queue is
//! bounded: a burst gets 503 with `Retry-After`, never unbounded memory.

use super::context;
use super::json::Json;
use crate::CommandError;
use crate::auth_gate::{Attempt, AuthGate, Refusal};
use crate::executor::{CommandService, Executed, to_new_events};
use actix_web::{HttpRequest, HttpResponse, web};
use auth::{JwtConfig, PasswordError};
use domain::{RegisterUser, User, UserId, user_stream};
use event_store::{AppendError, Credentials, ExpectedVersion, RegisterError};
use serde::Deserialize;
use serde_json::json;
use service_kit::{ApiError, AuthUser, RequestId};
use uuid::Uuid;

#[derive(Deserialize)]
pub(super) struct Register {
    username: String,
    password: String,
    display_name: Option<String>,
}

pub(super) async fn register(
    service: web::Data<CommandService>,
    gate: web::Data<AuthGate>,
    request_id: RequestId,
    req: HttpRequest,
    body: Json<Register>,
) -> Result<HttpResponse, Refusal> {
    let body = body.into_inner();
    refuse_bad_text(&body.username, &body.password, body.display_name.as_deref())?;
    let user_id = UserId::new();
    // The new user is the actor of their own registration.
    let actor = AuthUser {
        user_id: user_id.0,
        username: body.username.clone(),
    };
    let mut ctx = context(&actor, request_id, req.headers())?;
    // Anonymous: scope a client's key by the username it registers.
    ctx.idempotency_key = ctx.idempotency_key.map(|_| ()).and(
        req.headers()
            .get("idempotency-key")
            .and_then(|k| k.to_str().ok())
            .map(|k| format!("reg:{}:{k}", body.username.to_lowercase())),
    );
    let events = User::decide(
        None,
        RegisterUser {
            user_id,
            username: body.username.clone(),
            display_name: body.display_name,
        },
    )
    .map_err(CommandError::Rejected)?;
    auth::check_password(&body.password).map_err(|e| password_refused(&gate, e))?;
    gate.admit(Attempt::Register, &body.username, peer(&req))
        .await?;
    if let Some(Executed::Replayed { first, .. }) = service.replay(&ctx, "UserRegistered").await? {
        return Ok(HttpResponse::Created().json(json!({ "user_id": first.data.get("user_id") })));
    }
    let hash = gate
        .hashes()
        .hash(body.password)
        .await
        .map_err(|e| password_refused(&gate, e))?;

    let credentials = Credentials {
        user_id: user_id.0,
        username: body.username,
        password_hash: hash,
    };
    let registered = service
        .accounts
        .register(
            &user_stream(user_id),
            ExpectedVersion::NoStream,
            &to_new_events(&events, &ctx),
            &credentials,
        )
        .await;
    match registered {
        Ok(_) => {}
        Err(RegisterError::Append(AppendError::DuplicateIdempotencyKey(_))) => {
            return match service.replay(&ctx, "UserRegistered").await? {
                Some(Executed::Replayed { first, .. }) => {
                    Ok(HttpResponse::Created()
                        .json(json!({ "user_id": first.data.get("user_id") })))
                }
                _ => Err(CommandError::Contention.into()),
            };
        }
        Err(RegisterError::UsernameTaken(_)) => {
            return Err(ApiError::conflict("username_taken", "this username is taken").into());
        }
        Err(RegisterError::Append(AppendError::Database(e)) | RegisterError::Database(e)) => {
            return Err(CommandError::from(e).into());
        }
        Err(e @ RegisterError::Append(_)) => return Err(ApiError::internal(&e).into()),
    }
    tracing::info!(user_id = %user_id, "user registered");
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/users/{user_id}")))
        .json(json!({ "user_id": user_id })))
}

#[derive(Deserialize)]
pub(super) struct Login {
    username: String,
    password: String,
}

pub(super) async fn issue_token(
    service: web::Data<CommandService>,
    gate: web::Data<AuthGate>,
    jwt: web::Data<JwtConfig>,
    req: HttpRequest,
    body: Json<Login>,
) -> Result<HttpResponse, Refusal> {
    let body = body.into_inner();
    refuse_bad_text(&body.username, &body.password, None)?;
    let refused = || {
        Refusal::from(ApiError::unauthorized(
            "invalid_credentials",
            "unknown username or wrong password",
        ))
    };
    // A name registration would refuse names nobody: no lookup, no hash.
    if !registrable(&body.username) {
        return Err(refused());
    }
    gate.admit(Attempt::Login, &body.username, peer(&req))
        .await?;
    let found = service
        .accounts
        .credentials_of(&body.username)
        .await
        .map_err(CommandError::from)?;
    // An unknown user is checked against a decoy: the same time, never a match.
    let (user_id, username, stored) = match found {
        Some(c) => (c.user_id, c.username, Some(c.password_hash)),
        None => (Uuid::nil(), String::new(), None),
    };
    let matches = gate
        .hashes()
        .verify(body.password, stored)
        .await
        .map_err(|e| password_refused(&gate, e))?;
    if !matches || user_id.is_nil() {
        return Err(refused());
    }
    let issued = jwt.issue(user_id, &username);
    Ok(HttpResponse::Ok().json(json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    })))
}

/// DESIGN.md §6 "Text input": no field carries U+0000, and names (the username,
/// the display name) no control character at all; refused before anything
/// reaches a database or a hash.
fn refuse_bad_text(
    username: &str,
    password: &str,
    display_name: Option<&str>,
) -> Result<(), ApiError> {
    let invalid = |field: &str, rule: &str| {
        ApiError::unprocessable("validation_failed", format!("invalid {field}: {rule}"))
    };
    for (field, name) in [("username", Some(username)), ("display_name", display_name)] {
        if name.is_some_and(|name| name.chars().any(char::is_control)) {
            return Err(invalid(field, "must not contain control characters"));
        }
    }
    if password.contains('\0') {
        return Err(invalid("password", "must not contain U+0000"));
    }
    Ok(())
}

/// Whether registration would accept `username` (the domain's rule, not a copy of it).
fn registrable(username: &str) -> bool {
    User::decide(
        None,
        RegisterUser {
            user_id: UserId::new(),
            username: username.to_owned(),
            display_name: None,
        },
    )
    .is_ok()
}

/// The client's address: the TCP peer. `X-Forwarded-For` is not trusted (any
/// client could set it to escape the throttle); behind a proxy every client
/// shares the proxy's address, and the per-username limit still holds.
fn peer(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|addr| addr.ip())
}

/// A password error as an answer: a rule is 422, a full pool 503 with `Retry-After`.
fn password_refused(gate: &AuthGate, error: PasswordError) -> Refusal {
    match error {
        PasswordError::TooShort | PasswordError::TooLong | PasswordError::Nul => {
            ApiError::unprocessable("validation_failed", format!("invalid password: {error}"))
                .into()
        }
        PasswordError::Busy(busy) => gate.busy(busy),
        PasswordError::Hash(_) => ApiError::internal(&error).into(),
    }
}
