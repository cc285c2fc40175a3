//! Registration and login. The user's events go to the log; the password hash
//! goes to `user_credentials` in the same transaction, after the event insert.

use super::context;
use crate::CommandError;
use crate::executor::{CommandService, Executed, to_new_events};
use actix_web::{HttpRequest, HttpResponse, web};
use auth::{JwtConfig, PasswordError};
use domain::{RegisterUser, User, UserId, user_stream};
use event_store::{AppendError, ExpectedVersion};
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
    request_id: RequestId,
    req: HttpRequest,
    body: web::Json<Register>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
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
    if let Some(Executed::Replayed { first, .. }) = service.replay(&ctx, "UserRegistered").await? {
        return Ok(HttpResponse::Created().json(json!({ "user_id": first.data.get("user_id") })));
    }
    let events = User::decide(
        None,
        RegisterUser {
            user_id,
            username: body.username.clone(),
            display_name: body.display_name,
        },
    )
    .map_err(CommandError::Rejected)?;
    let password = body.password;
    let hash = hashing(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| match e {
            PasswordError::TooShort | PasswordError::TooLong => {
                ApiError::unprocessable("validation_failed", format!("invalid password: {e}"))
            }
            PasswordError::Hash(_) => ApiError::internal(&e),
        })?;

    let store = service.store();
    let mut tx = store.pool().begin().await.map_err(CommandError::Store)?;
    let appended = store
        .append_in(
            &mut tx,
            &user_stream(user_id),
            ExpectedVersion::NoStream,
            &to_new_events(&events, &ctx),
        )
        .await;
    match appended {
        Ok(_) => {}
        Err(AppendError::DuplicateIdempotencyKey(_)) => {
            drop(tx);
            return match service.replay(&ctx, "UserRegistered").await? {
                Some(Executed::Replayed { first, .. }) => {
                    Ok(HttpResponse::Created()
                        .json(json!({ "user_id": first.data.get("user_id") })))
                }
                _ => Err(CommandError::Contention.into()),
            };
        }
        Err(AppendError::Database(e)) => return Err(CommandError::Store(e).into()),
        Err(e) => return Err(ApiError::internal(&e)),
    }
    let inserted = sqlx::query(
        "INSERT INTO user_credentials (user_id, username, password_hash) VALUES ($1, $2, $3)",
    )
    .bind(user_id.0)
    .bind(&body.username)
    .bind(&hash)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            return Err(ApiError::conflict(
                "username_taken",
                "this username is taken",
            ));
        }
        Err(e) => return Err(CommandError::Store(e).into()),
    }
    tx.commit().await.map_err(CommandError::Store)?;
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

/// A hash of a random password, verified against when the user is unknown so
/// that unknown and known usernames take the same time.
static DECOY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    auth::hash_password(&Uuid::new_v4().to_string()).unwrap_or_default()
});

pub(super) async fn issue_token(
    service: web::Data<CommandService>,
    jwt: web::Data<JwtConfig>,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let row: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT user_id, username, password_hash FROM user_credentials WHERE lower(username) = lower($1)")
            .bind(&body.username)
            .fetch_optional(service.store().pool())
            .await
            .map_err(CommandError::Store)?;
    let (user_id, username, hash) = match row {
        Some(found) => found,
        None => (Uuid::nil(), String::new(), DECOY_HASH.clone()),
    };
    let password = body.password;
    let matches = hashing(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if !matches || user_id.is_nil() {
        return Err(ApiError::unauthorized(
            "invalid_credentials",
            "unknown username or wrong password",
        ));
    }
    let issued = jwt.issue(user_id, &username);
    Ok(HttpResponse::Ok().json(json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    })))
}

/// Argon2 takes ~19 MiB and tens of milliseconds per hash. Running at most two
/// at a time bounds that memory (and the allocator arenas that keep it) under a
/// burst of registrations or logins, and leaves the cores to everything else.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let _permit = HASHING.acquire().await.map_err(|e| e.to_string())?;
    web::block(work).await.map_err(|e| e.to_string())
}
