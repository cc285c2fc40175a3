//! The event-history API for analysts: the whole log, or one stream, or some
//! event types, in global commit order as NDJSON, resumable from any line's
//! `cursor`. Only for the usernames in `CHAT_ADMINS`.

use crate::export::Export;
use crate::{QueryError, QueryService, params};
use actix_web::{HttpResponse, web};
use event_store::{Cursor, LogFilter};
use serde::Deserialize;
use service_kit::{ApiError, AuthUser};

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
    stream: Option<String>,
    #[serde(rename = "type")]
    types: Option<String>,
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
    let query = query.into_inner();
    for (name, value) in [("stream", &query.stream), ("type", &query.types)] {
        if value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(QueryError::InvalidQuery(format!("{name} must not contain U+0000")).into());
        }
    }
    let after = match query
        .after
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        None => Cursor::START,
        Some(cursor) => cursor.parse().map_err(QueryError::from)?,
    };
    let limit = params::integer("limit", query.limit.as_deref())?;
    let filter = LogFilter {
        stream_id: query.stream.filter(|s| !s.is_empty()),
        event_types: params::list(query.types.as_deref()),
    };
    let export = Export::start(service.log().clone(), filter, after, limit)
        .await
        .map_err(QueryError::EventLog)?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(export.into_stream()))
}
