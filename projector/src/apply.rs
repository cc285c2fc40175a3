//! Applying one event to the read model, inside the caller's transaction.
//!
//! `stream_positions` holds the last version applied per stream: an event at or
//! below it is a duplicate and changes nothing; an event beyond the next
//! version means events went missing on the way, and they are read from the
//! log and applied first. Every write is therefore applied exactly once, in
//! stream order, however the broker delivers.

use crate::decode::decode_recorded;
use domain::Event;
use event_store::{PgEventStore, RecordedEvent};
use read_model::quote_ident;
use sqlx::PgConnection;
use uuid::Uuid;

/// A change that committed with the batch, to announce to the gateways.
#[derive(Debug, Clone)]
pub struct AppliedChange {
    /// The channel it concerns (None for user events).
    pub channel_id: Option<Uuid>,
    pub event: RecordedEvent,
}

/// What applying one event did.
#[derive(Debug)]
pub enum Outcome {
    /// Applied, after the healed events before it (in order; the event is last).
    Applied {
        changes: Vec<AppliedChange>,
        healed: usize,
    },
    /// Already applied: nothing changed.
    Duplicate,
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("read database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("healing a gap from the log: {0}")]
    Log(sqlx::Error),
    #[error("the log lacks versions {from}..{to} of {stream} (cannot heal)")]
    Unhealable { stream: String, from: u64, to: u64 },
    #[error("event {0} in the log cannot be decoded: {1}")]
    Corrupt(Uuid, String),
}

/// Applies `recorded` (decoded as `event`) to the read model in `schema`.
pub async fn apply_event(
    tx: &mut PgConnection,
    schema: &str,
    log: &PgEventStore,
    recorded: &RecordedEvent,
    event: &Event,
) -> Result<Outcome, ApplyError> {
    let mut outcomes = apply_batch(tx, schema, log, &[(recorded, event)])
        .await
        .map_err(|(_, e)| e)?;
    Ok(outcomes.pop().unwrap_or(Outcome::Duplicate))
}

/// Applies several events in order inside one transaction: the streams'
/// positions are read (and locked) once and written once for the batch, so
/// an event costs only its own writes. An error names the index of the event
/// it is due to when it is that event's fault (it cannot heal or decode).
pub async fn apply_batch(
    tx: &mut PgConnection,
    schema: &str,
    log: &PgEventStore,
    items: &[(&RecordedEvent, &Event)],
) -> Result<Vec<Outcome>, (Option<usize>, ApplyError)> {
    let s = quote_ident(schema);
    let streams: Vec<String> = items
        .iter()
        .map(|(r, _)| r.stream_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // A stream seen for the first time has no row to lock: make one (version
    // 0) first, so an overlapping transaction on the same new stream waits
    // for this one instead of applying the same events beside it.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {s}.stream_positions (stream_id, version) SELECT unnest($1::text[]), 0 \
         ON CONFLICT (stream_id) DO NOTHING"
    )))
    .bind(&streams)
    .execute(&mut *tx)
    .await
    .map_err(|e| (None, e.into()))?;
    let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT stream_id, version FROM {s}.stream_positions WHERE stream_id = ANY($1) ORDER BY stream_id FOR UPDATE"
    )))
    .bind(&streams)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| (None, e.into()))?;
    let mut positions: std::collections::HashMap<String, u64> = rows
        .into_iter()
        .map(|(id, v)| (id, v.max(0) as u64))
        .collect();
    let mut moved = std::collections::BTreeMap::new();
    let mut outcomes = Vec::with_capacity(items.len());
    for (index, (recorded, event)) in items.iter().enumerate() {
        let applied = positions.get(&recorded.stream_id).copied().unwrap_or(0);
        if recorded.stream_version <= applied {
            outcomes.push(Outcome::Duplicate);
            continue;
        }
        let mut changes = Vec::new();
        if recorded.stream_version > applied + 1 {
            for (healed, healed_event) in missing_before(log, recorded, applied)
                .await
                .map_err(|e| (Some(index), e))?
            {
                write(tx, &s, &healed, &healed_event)
                    .await
                    .map_err(|e| (None, e.into()))?;
                changes.push(change(healed, &healed_event));
            }
            metrics::counter!("projector_healed_gap_events_total").increment(changes.len() as u64);
        }
        write(tx, &s, recorded, event)
            .await
            .map_err(|e| (None, e.into()))?;
        positions.insert(recorded.stream_id.clone(), recorded.stream_version);
        moved.insert(recorded.stream_id.clone(), recorded.stream_version as i64);
        let healed = changes.len();
        changes.push(change((*recorded).clone(), event));
        outcomes.push(Outcome::Applied { changes, healed });
    }
    if !moved.is_empty() {
        let (ids, versions): (Vec<String>, Vec<i64>) = moved.into_iter().unzip();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {s}.stream_positions (stream_id, version) SELECT * FROM unnest($1::text[], $2::bigint[]) \
             ON CONFLICT (stream_id) DO UPDATE SET version = greatest({s}.stream_positions.version, excluded.version)"
        )))
        .bind(&ids)
        .bind(&versions)
        .execute(&mut *tx)
        .await
        .map_err(|e| (None, e.into()))?;
    }
    Ok(outcomes)
}

/// Most events read from the log in one statement while healing.
pub const HEAL_PAGE: i64 = 500;

/// The events of `recorded`'s stream between `applied` and it, from the log:
/// exactly the gap (bounded in SQL on both sides), read a page at a time.
async fn missing_before(
    log: &PgEventStore,
    recorded: &RecordedEvent,
    applied: u64,
) -> Result<Vec<(RecordedEvent, Event)>, ApplyError> {
    let unhealable = || ApplyError::Unhealable {
        stream: recorded.stream_id.clone(),
        from: applied + 1,
        to: recorded.stream_version,
    };
    let mut missing = Vec::new();
    let mut next = applied;
    while next + 1 < recorded.stream_version {
        let page = log
            .read_stream_range(
                &recorded.stream_id,
                next,
                recorded.stream_version,
                HEAL_PAGE,
            )
            .await
            .map_err(ApplyError::Log)?;
        if page.is_empty() {
            return Err(unhealable());
        }
        for healed in page {
            if healed.stream_version != next + 1 {
                return Err(unhealable());
            }
            next = healed.stream_version;
            let event =
                decode_recorded(&healed).map_err(|e| ApplyError::Corrupt(healed.event_id, e))?;
            missing.push((healed, event));
        }
    }
    Ok(missing)
}

fn change(event: RecordedEvent, decoded: &Event) -> AppliedChange {
    AppliedChange {
        channel_id: channel_of(decoded),
        event,
    }
}

fn channel_of(event: &Event) -> Option<Uuid> {
    Some(
        match event {
            Event::UserRegistered(_) => return None,
            Event::ChannelCreated(e) => e.channel_id,
            Event::MemberJoined(e) => e.channel_id,
            Event::MemberInvited(e) => e.channel_id,
            Event::MemberLeft(e) => e.channel_id,
            Event::MemberKicked(e) => e.channel_id,
            Event::MemberBanned(e) => e.channel_id,
            Event::MemberUnbanned(e) => e.channel_id,
            Event::MemberRoleChanged(e) => e.channel_id,
            Event::ChannelArchived(e) => e.channel_id,
            Event::ChannelMuted(e) => e.channel_id,
            Event::ChannelUnmuted(e) => e.channel_id,
            Event::MessageSent(e) => e.channel_id,
            Event::MessageEdited(e) => e.channel_id,
            Event::MessageDeleted(e) => e.channel_id,
            Event::ReadUpTo(e) => e.channel_id,
        }
        .0,
    )
}

/// The read-model writes of one event. Each is written so that it produces the
/// same rows as the domain's `evolve` would hold.
async fn write(
    tx: &mut PgConnection,
    s: &str,
    recorded: &RecordedEvent,
    event: &Event,
) -> Result<(), sqlx::Error> {
    let at = recorded.recorded_at;
    let sql = |text: String| sqlx::AssertSqlSafe(text);
    match event {
        Event::UserRegistered(e) => {
            sqlx::query(sql(format!(
                "INSERT INTO {s}.users (user_id, username, display_name, registered_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id) DO NOTHING"
            )))
            .bind(e.user_id.0)
            .bind(&e.username)
            .bind(&e.display_name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::ChannelCreated(e) => {
            let kind = if e.kind == domain::ChannelKind::Private {
                "private"
            } else {
                "public"
            };
            sqlx::query(sql(format!(
                "INSERT INTO {s}.channels (channel_id, name, kind, max_members, owner_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (channel_id) DO NOTHING"
            )))
            .bind(e.channel_id.0)
            .bind(&e.name)
            .bind(kind)
            .bind(e.max_members.map(|m| m as i32))
            .bind(e.owner_id.0)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            upsert_member(tx, s, e.channel_id.0, e.owner_id.0, "owner", at).await?;
        }
        Event::MemberJoined(e) => {
            upsert_member(tx, s, e.channel_id.0, e.user_id.0, "member", at).await?
        }
        Event::MemberInvited(e) => {
            upsert_member(tx, s, e.channel_id.0, e.user_id.0, "member", at).await?
        }
        Event::MemberLeft(e) => remove_member(tx, s, e.channel_id.0, e.user_id.0).await?,
        Event::MemberKicked(e) => remove_member(tx, s, e.channel_id.0, e.user_id.0).await?,
        Event::MemberBanned(e) => {
            remove_member(tx, s, e.channel_id.0, e.user_id.0).await?;
            sqlx::query(sql(format!(
                "INSERT INTO {s}.bans (channel_id, user_id, banned_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::MemberUnbanned(e) => {
            sqlx::query(sql(format!(
                "DELETE FROM {s}.bans WHERE channel_id = $1 AND user_id = $2"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .execute(&mut *tx)
            .await?;
        }
        Event::MemberRoleChanged(e) => {
            let role = match e.role {
                domain::Role::Owner => "owner",
                domain::Role::Admin => "admin",
                domain::Role::Member => "member",
            };
            sqlx::query(sql(format!(
                "UPDATE {s}.members SET role = $3 WHERE channel_id = $1 AND user_id = $2"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .bind(role)
            .execute(&mut *tx)
            .await?;
            if e.role == domain::Role::Owner {
                // Ownership is transferred (the old owner's step-down is its own event).
                sqlx::query(sql(format!(
                    "UPDATE {s}.channels SET owner_id = $2 WHERE channel_id = $1"
                )))
                .bind(e.channel_id.0)
                .bind(e.user_id.0)
                .execute(&mut *tx)
                .await?;
            }
        }
        Event::ChannelArchived(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.channels SET archived = true, updated_at = $2 WHERE channel_id = $1"
            )))
            .bind(e.channel_id.0)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::ChannelMuted(e) => set_muted(tx, s, e.channel_id.0, e.user_id.0, true).await?,
        Event::ChannelUnmuted(e) => set_muted(tx, s, e.channel_id.0, e.user_id.0, false).await?,
        Event::MessageSent(e) => {
            sqlx::query(sql(format!(
                "INSERT INTO {s}.messages (channel_id, seq, message_id, sender_id, content, message_type, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
            )))
            .bind(e.channel_id.0)
            .bind(e.seq as i64)
            .bind(e.message_id.0)
            .bind(e.sender_id.0)
            .bind(&e.content)
            .bind(&e.message_type)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(sql(format!(
                "UPDATE {s}.channels SET last_seq = greatest(last_seq, $2), updated_at = $3 WHERE channel_id = $1"
            )))
            .bind(e.channel_id.0)
            .bind(e.seq as i64)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::MessageEdited(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.messages SET content = $2, edited_at = $3 WHERE message_id = $1 AND NOT deleted"
            )))
            .bind(e.message_id.0)
            .bind(&e.content)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        Event::MessageDeleted(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.messages SET content = NULL, deleted = true WHERE message_id = $1"
            )))
            .bind(e.message_id.0)
            .execute(&mut *tx)
            .await?;
        }
        Event::ReadUpTo(e) => {
            sqlx::query(sql(format!(
                "UPDATE {s}.members SET read_seq = greatest(read_seq, $3) WHERE channel_id = $1 AND user_id = $2"
            )))
            .bind(e.channel_id.0)
            .bind(e.user_id.0)
            .bind(e.seq as i64)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// A (re)joining member starts afresh, as in the domain.
async fn upsert_member(
    tx: &mut PgConnection,
    s: &str,
    channel: Uuid,
    user: Uuid,
    role: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {s}.members (channel_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (channel_id, user_id) DO UPDATE SET role = excluded.role, muted = false, read_seq = 0, joined_at = excluded.joined_at"
    )))
    .bind(channel)
    .bind(user)
    .bind(role)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn remove_member(
    tx: &mut PgConnection,
    s: &str,
    channel: Uuid,
    user: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {s}.members WHERE channel_id = $1 AND user_id = $2"
    )))
    .bind(channel)
    .bind(user)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn set_muted(
    tx: &mut PgConnection,
    s: &str,
    channel: Uuid,
    user: Uuid,
    muted: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {s}.members SET muted = $3 WHERE channel_id = $1 AND user_id = $2"
    )))
    .bind(channel)
    .bind(user)
    .bind(muted)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
