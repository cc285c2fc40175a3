//! Login credentials beside the log: the write database's one non-event table.
//! Password hashes are secrets, not facts about the domain, so they stay out of
//! the exported log; but a user exists only if both its registration event and
//! its credentials do, so the two are written in one transaction.

use crate::{AppendError, ExpectedVersion, NewEvent, RecordedEvent};
use uuid::Uuid;

/// A user's login credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user_id: Uuid,
    /// As registered; looked up case-insensitively, and unique so.
    pub username: String,
    pub password_hash: String,
}

/// A registration that did not happen: nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The append was refused (or failed); no credentials were written.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Another user has this username, in any case; no event was appended.
    #[error("username {0:?} is taken")]
    UsernameTaken(String),
    /// Writing the credentials or committing failed; the append is undone.
    #[error("credentials unavailable: {0}")]
    Database(#[source] sqlx::Error),
}

/// Registrations and logins, whatever holds the log.
#[async_trait::async_trait]
pub trait Accounts: Send + Sync + std::fmt::Debug {
    /// Appends `events` to `stream_id` (at `expected`) and stores
    /// `credentials`, both or neither: the append comes first, so a refused
    /// append is reported as such whatever the username.
    async fn register(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: &[NewEvent],
        credentials: &Credentials,
    ) -> Result<Vec<RecordedEvent>, RegisterError>;

    /// The credentials registered under `username`, compared case-insensitively.
    async fn credentials_of(&self, username: &str) -> Result<Option<Credentials>, sqlx::Error>;
}

/// A unique violation of the credentials insert: the username (the user id is
/// new with its stream, whose append would have been refused first).
pub(crate) fn classify_credentials(err: sqlx::Error, username: &str) -> RegisterError {
    if err
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
    {
        RegisterError::UsernameTaken(username.to_owned())
    } else {
        RegisterError::Database(err)
    }
}
