//! Why a query failed, and how each failure is answered over HTTP.

use service_kit::ApiError;

/// A query that could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No channel with this id (or the id is not a UUID).
    #[error("no such channel")]
    ChannelNotFound,
    /// The channel is private and the caller is not a member.
    #[error("this channel is private and you are not a member")]
    NotAMember,
    /// The caller is banned from the channel (public or not).
    #[error("you are banned from this channel")]
    Banned,
    /// The caller may not read the event log.
    #[error("the event history is only for administrators")]
    NotAnAdmin,
    /// A query parameter is not what it must be.
    #[error("{0}")]
    InvalidQuery(String),
    /// `after` is not a cursor this API handed out.
    #[error(transparent)]
    InvalidCursor(#[from] event_store::CursorParseError),
    /// The read database failed.
    #[error("read database: {0}")]
    ReadDb(#[source] sqlx::Error),
    /// The event log failed.
    #[error("event log: {0}")]
    EventLog(#[source] sqlx::Error),
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> ApiError {
        let message = err.to_string();
        match err {
            QueryError::ChannelNotFound => ApiError::not_found("channel_not_found", message),
            QueryError::NotAMember => ApiError::forbidden("not_a_member", message),
            QueryError::Banned => ApiError::forbidden("banned", message),
            QueryError::NotAnAdmin => ApiError::forbidden("forbidden", message),
            QueryError::InvalidQuery(_) => ApiError::bad_request("invalid_query", message),
            QueryError::InvalidCursor(_) => ApiError::bad_request("invalid_cursor", message),
            QueryError::ReadDb(e) | QueryError::EventLog(e) => ApiError::database(&e),
        }
    }
}
