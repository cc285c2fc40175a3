//! The row changes a folded page is made of: whole rows where the page
//! knows them, patches where a row's state before the page is unknown.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A new `users` row (inserted if absent).
#[derive(Debug, Clone)]
pub struct UserRow {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub registered_at: DateTime<Utc>,
}

/// A new `channels` row (inserted if absent), with the page's later changes.
#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub channel_id: Uuid,
    pub name: String,
    pub kind: &'static str,
    pub max_members: Option<i32>,
    pub owner_id: Uuid,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub last_seq: i64,
    pub updated_at: DateTime<Utc>,
}

/// The page's changes to an existing channel row.
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub archived: bool,
    /// The owner after the page's last ownership transfer.
    pub owner_id: Option<Uuid>,
    pub max_seq: Option<i64>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A whole `members` row, written over whatever is there.
#[derive(Debug, Clone)]
pub struct MemberRow {
    pub role: &'static str,
    pub muted: bool,
    pub read_seq: i64,
    pub joined_at: DateTime<Utc>,
}

/// Changes to an existing member row (none: that column stays).
#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    pub role: Option<&'static str>,
    pub muted: Option<bool>,
    pub read_seq: Option<i64>,
}

/// The final change of one member in a page.
#[derive(Debug, Clone)]
pub enum MemberChange {
    Patch(MemberPatch),
    Put(MemberRow),
    Delete,
}

/// The final change of one ban: delete first if `deleted`, then insert if absent.
#[derive(Debug, Clone, Default)]
pub struct BanChange {
    pub deleted: bool,
    pub insert: Option<DateTime<Utc>>,
}

/// The page's changes to an existing message row.
#[derive(Debug, Clone, Default)]
pub struct MessagePatch {
    /// The last edit before any delete.
    pub edit: Option<(String, DateTime<Utc>)>,
    pub deleted: bool,
}
