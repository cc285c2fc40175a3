//! The query side (DESIGN.md §6): reads of channels, members and message
//! history from the read models, and the event-history API that streams the
//! log in global commit order as NDJSON for analysts.
//!
//! The host mounts [`configure`] on any actix `ServiceConfig` and registers
//! `web::Data<QueryService>` and `web::Data<auth::JwtConfig>` beside
//! `service_kit::configure_extractors`.

mod access;
mod error;
mod export;
pub mod params;
mod routes;

pub use error::QueryError;
pub use routes::{
    DirectoryQuery, DirectorySearch, EventsQuery, EventsRequest, HistoryPage, HistoryQuery, ROUTES,
    configure,
};

use event_store::EventLog;
use read_model::ReadModel;
use std::sync::Arc;

/// What every query handler needs: the read model, the event log, and the
/// usernames allowed to read the log.
#[derive(Debug, Clone)]
pub struct QueryService {
    read: Arc<dyn ReadModel>,
    log: Arc<dyn EventLog>,
    admins: Vec<String>,
}

impl QueryService {
    /// A service reading `read` (the live read model) and `log`; `admins`
    /// are the usernames of `CHAT_ADMINS`.
    pub fn new(read: Arc<dyn ReadModel>, log: Arc<dyn EventLog>, admins: Vec<String>) -> Self {
        Self { read, log, admins }
    }

    /// The read model.
    pub fn read(&self) -> &dyn ReadModel {
        self.read.as_ref()
    }

    /// The event log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Whether `username` may read the event log. Usernames are unique without
    /// regard to ASCII case, so the comparison ignores it too.
    pub fn is_admin(&self, username: &str) -> bool {
        self.admins.iter().any(|a| a.eq_ignore_ascii_case(username))
    }
}
