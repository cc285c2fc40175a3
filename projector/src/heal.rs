//! Healing a batch's gaps before its transaction opens.
//!
//! An event beyond a stream's next version needs the versions in between from
//! the log. Read inside the batch's transaction, a long gap would keep that
//! transaction idle (holding its position locks, against
//! `idle_in_transaction_session_timeout`) for as long as the log read takes.
//! So before the batch begins, each stream's leading gap is read a page at a
//! time with no read-model transaction open, and each page is applied in a
//! short transaction of its own. Applying is idempotent and in stream order,
//! so a page that commits before a failure is simply a head start; whatever
//! is left (a gap between two events of the batch, or one that opened
//! meanwhile) is healed inside the batch, as before, through the same bounded
//! range read.

use crate::apply::{AppliedChange, HEAL_PAGE, Outcome, apply_batch};
use crate::decode::decode_recorded;
use domain::Event;
use event_store::{EventLog, RecordedEvent};
use read_model::ReadModel;
use std::collections::BTreeMap;

/// Applies the log's events that precede each stream's first new event in
/// `batch`, page by page; returns the changes it committed. Best effort: on
/// any error it stops and leaves the rest to the batch (which reports it).
pub async fn heal_ahead(
    read: &dyn ReadModel,
    schema: &str,
    log: &dyn EventLog,
    batch: &[&RecordedEvent],
) -> Vec<AppliedChange> {
    let streams: Vec<String> = batch
        .iter()
        .map(|r| r.stream_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let positions = match read.stream_positions(schema, &streams).await {
        Ok(positions) => positions,
        Err(_) => return Vec::new(),
    };
    // The lowest version of each stream that is not applied yet.
    let mut first_new: BTreeMap<&str, u64> = BTreeMap::new();
    for r in batch {
        let applied = positions.get(&r.stream_id).copied().unwrap_or(0);
        if r.stream_version > applied {
            let first = first_new.entry(r.stream_id.as_str()).or_insert(u64::MAX);
            *first = (*first).min(r.stream_version);
        }
    }
    let mut changes = Vec::new();
    for (stream, first) in first_new {
        let mut applied = positions.get(stream).copied().unwrap_or(0);
        while applied + 1 < first {
            match heal_page(read, schema, log, stream, applied, first).await {
                Ok((reached, page)) if reached > applied => {
                    metrics::counter!("projector_healed_gap_events_total")
                        .increment(page.len() as u64);
                    changes.extend(page);
                    applied = reached;
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, %stream, "healing ahead of the batch stopped; the batch heals the rest");
                    break;
                }
            }
        }
    }
    changes
}

#[derive(Debug, thiserror::Error)]
enum HealError {
    #[error("reading the log: {0}")]
    Log(sqlx::Error),
    #[error("read database: {0}")]
    Read(#[from] sqlx::Error),
    #[error("event {0} in the log cannot be decoded: {1}")]
    Corrupt(uuid::Uuid, String),
    #[error("applying: {0}")]
    Apply(crate::ApplyError),
}

/// Reads one page of the gap (no transaction open), then applies it in one
/// short transaction. Returns the version reached (unchanged: nothing to do).
async fn heal_page(
    read: &dyn ReadModel,
    schema: &str,
    log: &dyn EventLog,
    stream: &str,
    applied: u64,
    before: u64,
) -> Result<(u64, Vec<AppliedChange>), HealError> {
    let page = log
        .read_stream_range(stream, applied, before, HEAL_PAGE)
        .await
        .map_err(HealError::Log)?;
    let Some(reached) = page.last().map(|e| e.stream_version) else {
        return Ok((applied, Vec::new()));
    };
    if page[0].stream_version != applied + 1 {
        // A hole in the log itself: the batch reports it as unhealable.
        return Ok((applied, Vec::new()));
    }
    let decoded: Vec<Event> = page
        .iter()
        .map(|r| decode_recorded(r).map_err(|e| HealError::Corrupt(r.event_id, e)))
        .collect::<Result<_, _>>()?;
    let items: Vec<(&RecordedEvent, &Event)> = page.iter().zip(decoded.iter()).collect();
    let mut tx = read.begin(schema).await?;
    let outcomes = apply_batch(&mut *tx, log, &items)
        .await
        .map_err(|(_, e)| HealError::Apply(e))?;
    tx.commit().await?;
    let changes = outcomes
        .into_iter()
        .flat_map(|o| match o {
            Outcome::Applied { changes, .. } => changes,
            Outcome::Duplicate => Vec::new(),
        })
        .collect();
    Ok((reached, changes))
}
