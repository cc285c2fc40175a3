//! Applying events to the read model, inside the caller's transaction.
//!
//! `stream_positions` holds the last version applied per stream: an event at or
//! below it is a duplicate and changes nothing; an event beyond the next
//! version means events went missing on the way, and they are read from the
//! log and applied first. Every write is therefore applied exactly once, in
//! stream order, however the broker delivers.

use crate::decode::decode_recorded;
use domain::Event;
use event_store::{EventLog, RecordedEvent};
use read_model::ReadWrites;
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

/// Applies `recorded` (decoded as `event`) through `writes`.
pub async fn apply_event(
    writes: &mut dyn ReadWrites,
    log: &dyn EventLog,
    recorded: &RecordedEvent,
    event: &Event,
) -> Result<Outcome, ApplyError> {
    let mut outcomes = apply_batch(writes, log, &[(recorded, event)])
        .await
        .map_err(|(_, e)| e)?;
    Ok(outcomes.pop().unwrap_or(Outcome::Duplicate))
}

/// Applies several events in order inside one transaction: the streams'
/// positions are read (and locked) once and written once for the batch, so
/// an event costs only its own writes. An error names the index of the event
/// it is due to when it is that event's fault (it cannot heal or decode).
pub async fn apply_batch(
    writes: &mut dyn ReadWrites,
    log: &dyn EventLog,
    items: &[(&RecordedEvent, &Event)],
) -> Result<Vec<Outcome>, (Option<usize>, ApplyError)> {
    let streams: Vec<String> = items
        .iter()
        .map(|(r, _)| r.stream_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut positions = writes
        .lock_positions(&streams)
        .await
        .map_err(|e| (None, e.into()))?;
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
                writes
                    .write(&healed, &healed_event)
                    .await
                    .map_err(|e| (None, e.into()))?;
                changes.push(change(healed, &healed_event));
            }
            metrics::counter!("projector_healed_gap_events_total").increment(changes.len() as u64);
        }
        writes
            .write(recorded, event)
            .await
            .map_err(|e| (None, e.into()))?;
        positions.insert(recorded.stream_id.clone(), recorded.stream_version);
        moved.insert(recorded.stream_id.clone(), recorded.stream_version as i64);
        let healed = changes.len();
        changes.push(change((*recorded).clone(), event));
        outcomes.push(Outcome::Applied { changes, healed });
    }
    if !moved.is_empty() {
        let moved: Vec<(String, i64)> = moved.into_iter().collect();
        writes
            .save_positions(&moved)
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
    log: &dyn EventLog,
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
