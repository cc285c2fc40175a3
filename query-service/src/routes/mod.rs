//! The query endpoints of DESIGN.md §6, mounted on any actix `ServiceConfig`
//! (alone in `query-service`, or beside the other services in `chat up`).

mod channel;
mod channels;
mod directory;
mod events;
mod messages;

use actix_web::web;

pub use directory::{DirectoryQuery, DirectorySearch};
pub use events::{EventsQuery, EventsRequest};
pub use messages::{HistoryPage, HistoryQuery};

/// Every route this crate mounts, as (method, path pattern).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/channels"),
    ("GET", "/api/channels/public"),
    ("GET", "/api/channels/{id}"),
    ("GET", "/api/channels/{id}/messages"),
    ("GET", "/api/events"),
];

/// Mounts every query route. The host registers `web::Data<QueryService>`,
/// `web::Data<auth::JwtConfig>` and `service_kit::configure_extractors`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The directory before `{id}`: actix takes the first route that matches.
    cfg.route("/api/channels", web::get().to(channels::list_mine))
        .route(
            "/api/channels/public",
            web::get().to(directory::public_channels),
        )
        .route("/api/channels/{id}", web::get().to(channel::show))
        .route(
            "/api/channels/{id}/messages",
            web::get().to(messages::history),
        )
        .route("/api/events", web::get().to(events::export));
}
