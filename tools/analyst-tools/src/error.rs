//! Why an analyst's command failed, as one line a person can act on. Bad
//! input (a cursor, a time, an id) is told apart from a failing database so
//! the message says which to fix.

/// A failure of an analyst's command.
#[derive(Debug, thiserror::Error)]
pub enum AnalystError {
    /// A flag's value could not be understood.
    #[error("invalid {flag} {value:?}: {expected}")]
    InvalidArgument {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A database could not be opened.
    #[error("cannot open the {what} at {target}: {}{hint}", sql_text(.cause))]
    Connect {
        what: &'static str,
        /// host:port/database, never the password.
        target: String,
        cause: sqlx::Error,
        /// How to start the server, when it seems not to run.
        hint: &'static str,
    },
    /// The embedded backend's data directory holds no log (or cannot be used).
    #[error(transparent)]
    DataDir(#[from] service_kit::DataDirError),
    /// The embedded backend's log file could not be opened.
    #[error(transparent)]
    OpenEmbedded(#[from] event_store::SqliteOpenError),
    /// Reading the event log failed.
    #[error("reading the event log failed: {}", sql_text(.0))]
    Log(sqlx::Error),
    /// The log's stamps come from another cluster (or could not be checked).
    #[error(transparent)]
    Stamps(#[from] event_store::ConnectError),
    /// Writing the output failed.
    #[error("writing the output failed: {0}")]
    Output(std::io::Error),
    /// An event in the log cannot be decoded into a domain event.
    #[error("event {event_id} (cursor {cursor}) cannot be decoded: {reason}")]
    Corrupt {
        event_id: uuid::Uuid,
        cursor: String,
        reason: String,
    },
    /// A replay was refused before it wrote anything.
    #[error("refusing to replay into {target}: {reason}")]
    Refused { target: String, reason: String },
    /// A transaction stayed open too long for the log to be read completely.
    #[error(
        "a transaction has been open for over {seconds}s and holds the event log back; \
         the replay would miss its events — retry when it has ended"
    )]
    Unsettled { seconds: u64 },
    /// The replay's target database could not be created.
    #[error("cannot create the replay target: {0}")]
    TargetCreate(event_store::ConnectError),
    /// The replay's target database failed.
    #[error("the replay target database failed: {}", sql_text(.0))]
    Target(sqlx::Error),
    /// The replay's target file could not be replaced or its directory made.
    #[error("the replay target file failed: {0}")]
    TargetFile(std::io::Error),
    /// Applying an event to the replayed read model failed.
    #[error("applying event {cursor} to the replayed read model failed: {cause}")]
    Apply {
        cursor: String,
        /// The projector's `ApplyError` (not exported by name).
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No stream of that id has any event.
    #[error("no channel {0} in the event log")]
    UnknownChannel(String),
    /// The stream exists, but only after the asked moment.
    #[error("channel {id} did not exist yet at {as_of} (its first event was recorded at {first})")]
    NotYetCreated {
        id: String,
        as_of: String,
        first: String,
    },
}

/// A database error as its server message alone (no chain, no source line),
/// so every failure stays one line; other errors as they display.
fn sql_text(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}

/// Each variant's message already holds its cause, so none is chained as a
/// `source`: printed with `{:#}` the error stays one line without repeats.
impl AnalystError {
    /// Whether the reader of the output went away (`chat events | head`): a
    /// normal end, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, AnalystError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
