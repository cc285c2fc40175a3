//! Why a command failed, and how each failure is answered over HTTP.

use domain::{DomainError, ErrorKind};
use service_kit::ApiError;
use std::sync::Arc;

/// A command that did not append. Clone, because one failure of a group
/// append is every member's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// The domain refused it.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// `If-Match` named a version the stream is no longer at.
    #[error("the stream is at version {actual}, not {expected}")]
    StaleVersion { expected: u64, actual: u64 },
    /// Retries against concurrent writers ran out.
    #[error("too many concurrent changes; retry")]
    Contention,
    /// The sender exceeded their send rate.
    #[error("too many messages; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    /// The idempotency key was first used for a different kind of command.
    #[error("this idempotency key was already used for another command")]
    KeyReused,
    /// A stored event could not be decoded (a bug or a foreign writer).
    #[error("corrupt event in {stream}: {reason}")]
    Corrupt { stream: String, reason: String },
    /// The event log failed.
    #[error("event log: {0}")]
    Store(Arc<sqlx::Error>),
}

impl From<sqlx::Error> for CommandError {
    fn from(e: sqlx::Error) -> Self {
        CommandError::Store(Arc::new(e))
    }
}

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> ApiError {
        match err {
            CommandError::Rejected(e) => {
                let message = e.to_string();
                match e.kind() {
                    ErrorKind::Forbidden => ApiError::forbidden(e.code(), message),
                    ErrorKind::NotFound => ApiError::not_found(e.code(), message),
                    ErrorKind::Conflict => ApiError::conflict(e.code(), message),
                    ErrorKind::Unprocessable => ApiError::unprocessable(e.code(), message),
                }
            }
            e @ CommandError::StaleVersion { .. } => {
                ApiError::conflict("version_conflict", e.to_string())
            }
            e @ CommandError::Contention => ApiError::conflict("contention", e.to_string()),
            e @ CommandError::RateLimited { .. } => ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                e.to_string(),
            ),
            e @ CommandError::KeyReused => {
                ApiError::unprocessable("idempotency_key_reused", e.to_string())
            }
            e @ CommandError::Corrupt { .. } => ApiError::internal(&e),
            CommandError::Store(e) => ApiError::database(&e),
        }
    }
}
