//! `chat state channel ID --as-of TIME`: one channel as it was at a moment,
//! folded with the domain's own `Channel::evolve` over the events of its
//! stream recorded at or before that moment (streamed row by row, so a long
//! history costs time, not memory), with usernames from `UserRegistered`.

use crate::AnalystError;
use chrono::{DateTime, Utc};
use domain::{
    Channel, ChannelId, ChannelKind, Event, Role, StoredEvent, UserId, channel_stream, user_stream,
};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{PgPool, Row};
use std::collections::HashMap;

/// The flags of `chat state`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub aggregate: Aggregate,
}

/// The aggregates whose state can be shown.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Aggregate {
    /// One channel: name, kind, archived, members with roles, banned users,
    /// message counts and last seq.
    #[command(
        after_help = "Example:\n  chat state channel 0190c6e2-7c4a-7d3e-9a55-2b1f0e8d4c11 --as-of 2026-03-01T12:00:00Z --json"
    )]
    Channel(ChannelStateArgs),
}

/// The flags of `chat state channel`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChannelStateArgs {
    /// The channel's id, or its stream id.
    /// Example: `0190c6e2-7c4a-7d3e-9a55-2b1f0e8d4c11` or `channel-0190c6e2-…`.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The moment, as an RFC 3339 time: the events recorded at or before it
    /// are folded. Example: `--as-of 2026-03-01T12:00:00Z`. Default: now.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// Print one JSON object instead of text. Example: `--json`.
    #[arg(long)]
    pub json: bool,
}

/// A user, with the username their `UserRegistered` event gave, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRef {
    pub user_id: uuid::Uuid,
    pub username: Option<String>,
}

/// A member at the moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberState {
    pub user_id: uuid::Uuid,
    pub username: Option<String>,
    pub role: Role,
    pub muted: bool,
    pub read_seq: u64,
}

/// A channel as it was at `as_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelState {
    pub channel_id: uuid::Uuid,
    pub stream_id: String,
    pub as_of: DateTime<Utc>,
    /// The version of the last event folded.
    pub stream_version: u64,
    pub name: String,
    pub kind: ChannelKind,
    pub max_members: Option<u32>,
    pub archived: bool,
    pub last_seq: u64,
    /// `MessageSent` events folded.
    pub message_count: u64,
    /// `MessageEdited` events folded.
    pub edited_count: u64,
    /// `MessageDeleted` events folded.
    pub deleted_count: u64,
    /// Owners first, then admins, then members.
    pub members: Vec<MemberState>,
    pub banned: Vec<UserRef>,
}

/// Parses a channel id or a `channel-{id}` stream id.
pub fn channel_id(text: &str) -> Result<ChannelId, AnalystError> {
    let text = text.trim();
    let id = text.strip_prefix("channel-").unwrap_or(text);
    id.parse::<uuid::Uuid>()
        .map(ChannelId)
        .map_err(|_| AnalystError::InvalidArgument {
            flag: "channel ID",
            value: text.chars().take(80).collect(),
            expected: "a channel's UUID, like 0190c6e2-7c4a-7d3e-9a55-2b1f0e8d4c11",
        })
}

/// Folds channel `id` from its events recorded at or before `as_of`.
pub async fn channel_as_of(
    pool: &PgPool,
    id: ChannelId,
    as_of: DateTime<Utc>,
) -> Result<ChannelState, AnalystError> {
    let stream = channel_stream(id);
    let mut rows = sqlx::query(
        "SELECT event_id, event_type, schema_version, stream_version, data FROM events \
         WHERE stream_id = $1 AND recorded_at <= $2 ORDER BY stream_version",
    )
    .bind(&stream)
    .bind(as_of)
    .fetch(pool);
    let mut state: Option<Channel> = None;
    let (mut version, mut sent, mut edited, mut deleted) = (0u64, 0u64, 0u64, 0u64);
    while let Some(row) = rows.try_next().await.map_err(AnalystError::Log)? {
        let event = decode(&row, &stream)?;
        match event {
            Event::MessageSent(_) => sent += 1,
            Event::MessageEdited(_) => edited += 1,
            Event::MessageDeleted(_) => deleted += 1,
            _ => {}
        }
        state = Channel::evolve(state, &event);
        version = u64::try_from(
            row.try_get::<i64, _>("stream_version")
                .map_err(AnalystError::Log)?,
        )
        .unwrap_or(0);
    }
    drop(rows);
    let Some(channel) = state else {
        return Err(never_existed(pool, &stream, id, as_of).await);
    };
    let mut users: Vec<UserId> = channel.members.keys().copied().collect();
    users.extend(channel.banned.iter().copied());
    let names = usernames(pool, &users, as_of).await?;
    let name_of = |u: &UserId| names.get(u).cloned();
    let mut members: Vec<MemberState> = channel
        .members
        .iter()
        .map(|(user, m)| MemberState {
            user_id: user.0,
            username: name_of(user),
            role: m.role,
            muted: m.muted,
            read_seq: m.read_seq,
        })
        .collect();
    members.sort_by(|a, b| b.role.cmp(&a.role).then(a.username.cmp(&b.username)));
    let banned = channel
        .banned
        .iter()
        .map(|user| UserRef {
            user_id: user.0,
            username: name_of(user),
        })
        .collect();
    Ok(ChannelState {
        channel_id: id.0,
        stream_id: stream,
        as_of,
        stream_version: version,
        name: channel.name,
        kind: channel.kind,
        max_members: channel.max_members,
        archived: channel.archived,
        last_seq: channel.last_seq,
        message_count: sent,
        edited_count: edited,
        deleted_count: deleted,
        members,
        banned,
    })
}

fn decode(row: &sqlx::postgres::PgRow, stream: &str) -> Result<Event, AnalystError> {
    let get = |e: sqlx::Error| AnalystError::Log(e);
    let event_id: uuid::Uuid = row.try_get("event_id").map_err(get)?;
    let stored = StoredEvent {
        event_type: row.try_get("event_type").map_err(get)?,
        schema_version: u32::try_from(row.try_get::<i32, _>("schema_version").map_err(get)?)
            .unwrap_or(0),
        data: row.try_get("data").map_err(get)?,
    };
    let version: i64 = row.try_get("stream_version").map_err(get)?;
    Event::from_stored(&stored).map_err(|e| AnalystError::Corrupt {
        event_id,
        cursor: format!("{stream}@{version}"),
        reason: e.to_string(),
    })
}

/// Why there is no state: no such channel, or not yet at `as_of`.
async fn never_existed(
    pool: &PgPool,
    stream: &str,
    id: ChannelId,
    as_of: DateTime<Utc>,
) -> AnalystError {
    let first: Result<Option<DateTime<Utc>>, _> =
        sqlx::query_scalar("SELECT min(recorded_at) FROM events WHERE stream_id = $1")
            .bind(stream)
            .fetch_one(pool)
            .await;
    match first {
        Ok(Some(first)) => AnalystError::NotYetCreated {
            id: id.to_string(),
            as_of: as_of.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            first: first.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        },
        Ok(None) => AnalystError::UnknownChannel(id.to_string()),
        Err(e) => AnalystError::Log(e),
    }
}

/// Usernames of `users` from their `UserRegistered` events recorded by `as_of`.
async fn usernames(
    pool: &PgPool,
    users: &[UserId],
    as_of: DateTime<Utc>,
) -> Result<HashMap<UserId, String>, AnalystError> {
    let streams: Vec<String> = users.iter().map(|u| user_stream(*u)).collect();
    let rows: Vec<(i32, serde_json::Value)> = sqlx::query_as(
        "SELECT schema_version, data FROM events \
         WHERE stream_id = ANY($1) AND event_type = 'UserRegistered' AND recorded_at <= $2",
    )
    .bind(&streams)
    .bind(as_of)
    .fetch_all(pool)
    .await
    .map_err(AnalystError::Log)?;
    Ok(rows
        .into_iter()
        .filter_map(|(version, data)| {
            let stored = StoredEvent {
                event_type: "UserRegistered".into(),
                schema_version: u32::try_from(version).ok()?,
                data,
            };
            match Event::from_stored(&stored).ok()? {
                Event::UserRegistered(e) => Some((e.user_id, e.username)),
                _ => None,
            }
        })
        .collect())
}
