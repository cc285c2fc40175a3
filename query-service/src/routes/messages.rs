//! Message history of one channel, newest first, paged by `seq`: the page is
//! the newest `limit` messages with `after < seq < before`. Seqs are the
//! cursor, so pages stay stable while new messages arrive.

use crate::access::readable_channel;
use crate::{QueryError, QueryService, params};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use read_model::MessageRow;
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_kit::{ApiError, AuthUser};
use uuid::Uuid;

/// Messages per page when `limit` is absent.
pub(crate) const DEFAULT_LIMIT: i64 = 50;
/// The largest page; larger limits are clamped to it.
pub(crate) const MAX_LIMIT: i64 = 100;

/// A message as clients see it; a deleted one is a tombstone with its seq.
#[derive(Debug, Serialize)]
pub(super) struct MessageView {
    pub message_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub content: Option<String>,
    #[serde(rename = "type")]
    pub message_type: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

impl From<MessageRow> for MessageView {
    fn from(m: MessageRow) -> Self {
        MessageView {
            message_id: m.message_id,
            seq: m.seq,
            sender_id: m.sender_id,
            content: m.content,
            message_type: m.message_type,
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted: m.deleted,
        }
    }
}

/// The query string of a history request, as the route extracts it.
#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    before: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

/// The page a history request asks for: the newest `limit` messages with
/// `after < seq < before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPage {
    /// Exclusive upper bound; `i64::MAX` when absent.
    pub before: i64,
    /// Exclusive lower bound; `i64::MIN` when absent.
    pub after: i64,
    /// Page size: 50 when absent, clamped to 1..=100.
    pub limit: i64,
}

impl HistoryQuery {
    /// The page asked for (pure: the fuzz targets of `fuzz/` call it). Empty
    /// parameters are absent, out-of-range integers saturate, and anything
    /// else that is not an integer is a 400 naming its parameter.
    pub fn page(&self) -> Result<HistoryPage, QueryError> {
        Ok(HistoryPage {
            before: params::integer("before", self.before.as_deref())?.unwrap_or(i64::MAX),
            after: params::integer("after", self.after.as_deref())?.unwrap_or(i64::MIN),
            limit: params::integer("limit", self.limit.as_deref())?
                .unwrap_or(DEFAULT_LIMIT)
                .clamp(1, MAX_LIMIT),
        })
    }
}

/// 200 `{"messages": [...], "has_more": bool}`.
pub(super) async fn history(
    user: AuthUser,
    service: web::Data<QueryService>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let HistoryPage {
        before,
        after,
        limit,
    } = query.page()?;
    let channel = readable_channel(service.read(), &path, user.user_id).await?;
    // One row beyond the page tells whether more exist.
    let mut rows = service
        .read()
        .messages_between(channel.channel_id, after, before, limit + 1)
        .await
        .map_err(QueryError::ReadDb)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let messages: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "messages": messages, "has_more": has_more })))
}
