//! The projector's checkpoint and lag.
//!
//! The checkpoint is the commit-order cursor `(transaction_id,
//! global_position)` of the latest event applied, as the relay publishes in
//! that order; positions alone are not in commit order, so a position cannot
//! say what is left. Envelopes carry no transaction id: it is read back from
//! the log for the batch before its transaction opens.
//!
//! `projector_lag_seconds` is the age of the oldest event after the cursor in
//! the log, counting events that are held back (committed, but not readable
//! in commit order yet because an older transaction anywhere in the cluster
//! is still open): measured on every batch and on a timer, so it grows while
//! nothing arrives, which is exactly when it matters.
//!
//! With partitions each batch still moves the one checkpoint row, never
//! back: it is the furthest commit-order cursor any partition reached, not a
//! point below which everything is applied (another partition may be
//! behind). Every event after it is unapplied by everyone, so the lag then
//! measured from it (each process re-reads the shared row on the timer) is a
//! lower bound: it shows a hold-back and a stall of every partition, while
//! one partition falling behind the rest shows as its queue's depth.

use crate::LIVE_PROJECTION;
use event_store::{Cursor, EventLog, RecordedEvent};
use read_model::ReadModel;

/// Where the live projection stands (the start if it never applied anything).
pub async fn load(read: &dyn ReadModel, log: &dyn EventLog) -> Result<Cursor, sqlx::Error> {
    match read.checkpoint(LIVE_PROJECTION).await? {
        None => Ok(Cursor::START),
        Some(Cursor {
            transaction_id: 0,
            global_position,
        }) if global_position > 0 => {
            // Written before the cursor was kept: read its transaction back.
            Ok(log
                .latest_cursor_of(&[global_position])
                .await?
                .unwrap_or(Cursor::START))
        }
        Some(cursor) => Ok(cursor),
    }
}

/// The commit-order cursor of the latest of `batch` (None: the log did not
/// answer, or holds none of them).
pub(crate) async fn cursor_of(log: &dyn EventLog, batch: &[&RecordedEvent]) -> Option<Cursor> {
    let positions: Vec<i64> = batch.iter().map(|r| r.global_position).collect();
    if positions.is_empty() {
        return None;
    }
    match log.latest_cursor_of(&positions).await {
        Ok(cursor) => cursor,
        Err(e) => {
            tracing::warn!(error = %e, "the log did not say where the batch stands; checkpoint cursor kept");
            None
        }
    }
}

/// Sets `projector_lag_seconds` from the oldest event after `cursor`.
pub(crate) async fn record_lag(log: &dyn EventLog, cursor: Cursor) {
    match log.oldest_recorded_after(cursor).await {
        Ok(oldest) => {
            let lag = oldest.map_or(0.0, |at| {
                (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1e3
            });
            metrics::gauge!("projector_lag_seconds").set(lag);
        }
        Err(e) => tracing::debug!(error = %e, "projector lag not measured"),
    }
}
