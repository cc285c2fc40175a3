//! The event-history API for analysts: the whole log, or one stream, or some
//! event types, in global commit order as NDJSON, resumable from any line's
//! `cursor`. Only for the usernames in `CHAT_ADMINS`.

use crate::export::Export;
use crate::{QueryError, QueryService, params};
use actix_web::{HttpResponse, web};
use event_store::{Cursor, LogFilter};
use serde::Deserialize;
use service_kit::{ApiError, AuthUser};

/// The query string of an event-history request, as the route extracts it.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
    stream: Option<String>,
    #[serde(rename = "type")]
    types: Option<String>,
}

/// What an event-history request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsRequest {
    /// Where to start: `Cursor::START` when `after` is absent or blank.
    pub after: Cursor,
    /// Most lines to send (`None`: no limit; zero or negative: none).
    pub limit: Option<i64>,
    /// The stream and event types asked for (empty: all).
    pub filter: LogFilter,
}

impl EventsQuery {
    /// The request asked for (pure: the fuzz targets of `fuzz/` call it); a
    /// bad parameter is a 400 naming it, a bad cursor a 400 `invalid_cursor`.
    pub fn request(self) -> Result<EventsRequest, QueryError> {
        for (name, value) in [("stream", &self.stream), ("type", &self.types)] {
            if value.as_deref().is_some_and(|v| v.contains('\0')) {
                return Err(QueryError::InvalidQuery(format!(
                    "{name} must not contain U+0000"
                )));
            }
        }
        let after = match self
            .after
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            None => Cursor::START,
            Some(cursor) => cursor.parse()?,
        };
        Ok(EventsRequest {
            after,
            limit: params::integer("limit", self.limit.as_deref())?,
            filter: LogFilter {
                stream_id: self.stream.filter(|s| !s.is_empty()),
                event_types: params::list(self.types.as_deref()),
            },
        })
    }
}

/// 200 `application/x-ndjson`, one envelope with its `cursor` per line.
pub(super) async fn export(
    user: AuthUser,
    service: web::Data<QueryService>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    if !service.is_admin(&user.username) {
        return Err(QueryError::NotAnAdmin.into());
    }
    let EventsRequest {
        after,
        limit,
        filter,
    } = query.into_inner().request()?;
    let export = Export::start(service.log().clone(), filter, after, limit)
        .await
        .map_err(QueryError::EventLog)?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(export.into_stream()))
}
