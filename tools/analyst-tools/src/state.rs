//! `chat state channel ID --as-of TIME`: one channel as it was at a moment,
//! folded with the domain's own `Channel::evolve` over the events of its
//! stream recorded at or before that moment (streamed row by row, so a long
//! history costs time, not memory), with usernames from `UserRegistered`.

use crate::source::LogSource;
use crate::{AnalystError, embedded};
use chrono::{DateTime, Utc};
use domain::{
    Channel, ChannelId, ChannelKind, Event, Role, StoredEvent, UserId, channel_stream, user_stream,
};
use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{PgPool, Row};
use std::collections::HashMap;
use std::ops::ControlFlow;

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

/// A channel's events folded so far, with the counts `evolve` does not keep.
#[derive(Default)]
struct Fold {
    state: Option<Channel>,
    version: u64,
    sent: u64,
    edited: u64,
    deleted: u64,
}

impl Fold {
    fn push(&mut self, event: &Event, version: u64) {
        match event {
            Event::MessageSent(_) => self.sent += 1,
            Event::MessageEdited(_) => self.edited += 1,
            Event::MessageDeleted(_) => self.deleted += 1,
            _ => {}
        }
        self.state = Channel::evolve(self.state.take(), event);
        self.version = version;
    }
}

/// Folds channel `id` from its events recorded at or before `as_of`.
pub async fn channel_as_of(
    source: &LogSource,
    id: ChannelId,
    as_of: DateTime<Utc>,
) -> Result<ChannelState, AnalystError> {
    let stream = channel_stream(id);
    let mut fold = Fold::default();
    match source {
        LogSource::Postgres(pool) => fold_pg(pool, &stream, as_of, &mut fold).await?,
        LogSource::Embedded(log) => {
            embedded::scan_stream(log.as_ref(), &stream, &mut |recorded| {
                if recorded.recorded_at <= as_of {
                    let stored = StoredEvent {
                        event_type: recorded.event_type,
                        schema_version: recorded.schema_version,
                        data: recorded.data,
                    };
                    let version = recorded.stream_version;
                    let event = Event::from_stored(&stored).map_err(|e| AnalystError::Corrupt {
                        event_id: recorded.event_id,
                        cursor: format!("{stream}@{version}"),
                        reason: e.to_string(),
                    })?;
                    fold.push(&event, version);
                }
                Ok(ControlFlow::Continue(()))
            })
            .await?
        }
    }
    let Fold {
        state,
        version,
        sent,
        edited,
        deleted,
    } = fold;
    let Some(channel) = state else {
        return Err(never_existed(source, &stream, id, as_of).await);
    };
    let mut users: Vec<UserId> = channel.members.keys().copied().collect();
    users.extend(channel.banned.iter().copied());
    let names = usernames(source, &users, as_of).await?;
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

/// Folds the stream's events recorded at or before `as_of`, row by row.
async fn fold_pg(
    pool: &PgPool,
    stream: &str,
    as_of: DateTime<Utc>,
    fold: &mut Fold,
) -> Result<(), AnalystError> {
    let mut rows = sqlx::query(
        "SELECT event_id, event_type, schema_version, stream_version, data FROM events \
         WHERE stream_id = $1 AND recorded_at <= $2 ORDER BY stream_version",
    )
    .bind(stream)
    .bind(as_of)
    .fetch(pool);
    while let Some(row) = rows.try_next().await.map_err(AnalystError::Log)? {
        let event = decode(&row, stream)?;
        let version = u64::try_from(
            row.try_get::<i64, _>("stream_version")
                .map_err(AnalystError::Log)?,
        )
        .unwrap_or(0);
        fold.push(&event, version);
    }
    Ok(())
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
    source: &LogSource,
    stream: &str,
    id: ChannelId,
    as_of: DateTime<Utc>,
) -> AnalystError {
    let first: Result<Option<DateTime<Utc>>, AnalystError> = match source {
        LogSource::Postgres(pool) => {
            sqlx::query_scalar("SELECT min(recorded_at) FROM events WHERE stream_id = $1")
                .bind(stream)
                .fetch_one(pool)
                .await
                .map_err(AnalystError::Log)
        }
        // One writer stamps appends in order, so the first event is the earliest.
        LogSource::Embedded(log) => embedded::first_recorded(log.as_ref(), stream).await,
    };
    match first {
        Ok(Some(first)) => AnalystError::NotYetCreated {
            id: id.to_string(),
            as_of: as_of.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            first: first.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        },
        Ok(None) => AnalystError::UnknownChannel(id.to_string()),
        Err(e) => e,
    }
}

/// Usernames of `users` from their `UserRegistered` events recorded by `as_of`.
async fn usernames(
    source: &LogSource,
    users: &[UserId],
    as_of: DateTime<Utc>,
) -> Result<HashMap<UserId, String>, AnalystError> {
    let streams: Vec<String> = users.iter().map(|u| user_stream(*u)).collect();
    let rows: Vec<(u32, serde_json::Value)> = match source {
        LogSource::Postgres(pool) => {
            let rows: Vec<(i32, serde_json::Value)> = sqlx::query_as(
                "SELECT schema_version, data FROM events \
                 WHERE stream_id = ANY($1) AND event_type = 'UserRegistered' AND recorded_at <= $2",
            )
            .bind(&streams)
            .bind(as_of)
            .fetch_all(pool)
            .await
            .map_err(AnalystError::Log)?;
            rows.into_iter()
                .filter_map(|(version, data)| Some((u32::try_from(version).ok()?, data)))
                .collect()
        }
        LogSource::Embedded(log) => embedded::registrations(log.as_ref(), &streams, as_of)
            .await?
            .into_iter()
            .map(|e| (e.schema_version, e.data))
            .collect(),
    };
    Ok(rows
        .into_iter()
        .filter_map(|(schema_version, data)| {
            let stored = StoredEvent {
                event_type: "UserRegistered".into(),
                schema_version,
                data,
            };
            match Event::from_stored(&stored).ok()? {
                Event::UserRegistered(e) => Some((e.user_id, e.username)),
                _ => None,
            }
        })
        .collect())
}
