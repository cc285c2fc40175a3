//! The public-channel directory (DESIGN.md §11): public, unarchived channels
//! whose name contains `q` (a literal, without regard to case), newest first,
//! so a person can find a channel to join.

use crate::{QueryError, QueryService, params};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use read_model::DirectoryRow;
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_kit::{ApiError, AuthUser};
use uuid::Uuid;

/// Channels per answer when `limit` is absent.
const DEFAULT_LIMIT: i64 = 50;
/// The largest answer; larger limits are clamped to it.
const MAX_LIMIT: i64 = 100;
/// The longest search text in characters: a channel name is at most 100, so
/// anything longer cannot match and is a mistake worth naming.
const MAX_QUERY_CHARS: usize = 100;

/// A directory entry as clients see it.
#[derive(Debug, Serialize)]
struct DirectoryEntry {
    channel_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    member_count: i64,
    is_member: bool,
}

impl From<DirectoryRow> for DirectoryEntry {
    fn from(d: DirectoryRow) -> Self {
        DirectoryEntry {
            channel_id: d.channel_id,
            name: d.name,
            created_at: d.created_at,
            member_count: d.member_count,
            is_member: d.is_member,
        }
    }
}

/// The query string of a directory request, as the route extracts it.
#[derive(Debug, Deserialize)]
pub struct DirectoryQuery {
    q: Option<String>,
    limit: Option<String>,
}

/// What a directory request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySearch<'q> {
    /// The search text, trimmed (empty: every name).
    pub text: &'q str,
    /// `text` as a LIKE pattern (escape `\`) matching names that contain it.
    pub pattern: String,
    /// Most channels listed: 50 when absent, clamped to 1..=100.
    pub limit: i64,
}

impl DirectoryQuery {
    /// The search asked for (pure: the fuzz targets of `fuzz/` call it); a
    /// bad `q` or `limit` is a 400 naming it.
    pub fn search(&self) -> Result<DirectorySearch<'_>, QueryError> {
        let text = search_text(self.q.as_deref())?;
        let limit = params::integer("limit", self.limit.as_deref())?
            .unwrap_or(DEFAULT_LIMIT)
            .clamp(1, MAX_LIMIT);
        Ok(DirectorySearch {
            text,
            pattern: contains_pattern(text),
            limit,
        })
    }
}

/// `text` as a LIKE pattern matching any name that contains it literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The search text: trimmed; absent or blank matches every name. NUL and
/// over-long text (counted as sent, as the OpenAPI `maxLength` does) are a
/// 400 before anything reaches the database.
fn search_text(q: Option<&str>) -> Result<&str, QueryError> {
    let sent = q.unwrap_or("");
    let text = sent.trim();
    if text.contains('\0') {
        return Err(QueryError::InvalidQuery(
            "`q` must not contain U+0000".into(),
        ));
    }
    if sent.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryError::InvalidQuery(format!(
            "`q` is at most {MAX_QUERY_CHARS} characters"
        )));
    }
    Ok(text)
}

/// 200 `{"channels": [{channel_id, name, created_at, member_count, is_member}], "has_more": bool}`.
pub(super) async fn public_channels(
    user: AuthUser,
    service: web::Data<QueryService>,
    query: web::Query<DirectoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let DirectorySearch { pattern, limit, .. } = query.search()?;
    // `pattern` matches `q` as a literal; one row beyond the page tells
    // whether more exist.
    let mut rows = service
        .read()
        .directory(&pattern, user.user_id, limit + 1)
        .await
        .map_err(QueryError::ReadDb)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let channels: Vec<DirectoryEntry> = rows.into_iter().map(DirectoryEntry::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "channels": channels, "has_more": has_more })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_the_escape_character_are_literals() {
        assert_eq!(contains_pattern(""), "%%");
        assert_eq!(contains_pattern("gen"), "%gen%");
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn search_text_is_trimmed_and_bounded() {
        assert_eq!(search_text(None).ok(), Some(""));
        assert_eq!(search_text(Some("  gen ")).ok(), Some("gen"));
        assert!(search_text(Some("a\0b")).is_err());
        assert!(search_text(Some(&"x".repeat(101))).is_err());
        assert!(search_text(Some(&"é".repeat(100))).is_ok());
        assert!(search_text(Some(&format!(" {}", "x".repeat(100)))).is_err());
    }
}
