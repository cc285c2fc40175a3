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

use crate::LIVE_PROJECTION;
use event_store::{Cursor, PgEventStore, RecordedEvent};
use sqlx::{PgConnection, PgPool};

/// Where the live projection stands (the start if it never applied anything).
pub async fn load(read: &PgPool, log: &PgEventStore) -> Result<Cursor, sqlx::Error> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT transaction_id, global_position FROM rm.checkpoints WHERE projection = $1",
    )
    .bind(LIVE_PROJECTION)
    .fetch_optional(read)
    .await?;
    match row {
        None => Ok(Cursor::START),
        Some((0, position)) if position > 0 => {
            // Written before the cursor was kept: read its transaction back.
            Ok(log
                .latest_cursor_of(&[position])
                .await?
                .unwrap_or(Cursor::START))
        }
        Some((tx, position)) => Ok(Cursor {
            transaction_id: tx.max(0) as u64,
            global_position: position,
        }),
    }
}

/// The commit-order cursor of the latest of `batch` (None: the log did not
/// answer, or holds none of them).
pub(crate) async fn cursor_of(log: &PgEventStore, batch: &[&RecordedEvent]) -> Option<Cursor> {
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

/// Moves the checkpoint to `cursor` (never back), inside the batch's transaction.
pub(crate) async fn save(
    tx: &mut PgConnection,
    cursor: Option<Cursor>,
    last: &RecordedEvent,
) -> Result<(), sqlx::Error> {
    let (tx_id, position) = match cursor {
        Some(c) => (
            i64::try_from(c.transaction_id).unwrap_or(i64::MAX),
            c.global_position,
        ),
        // Unknown: leave the cursor where it is (0-0 never wins the comparison).
        None => (0, 0),
    };
    sqlx::query(
        "INSERT INTO rm.checkpoints (projection, global_position, recorded_at, applied_at, transaction_id) \
         VALUES ($1, $2, $3, now(), $4) \
         ON CONFLICT (projection) DO UPDATE SET \
         global_position = CASE WHEN (rm.checkpoints.transaction_id, rm.checkpoints.global_position) \
             < (excluded.transaction_id, excluded.global_position) \
             THEN excluded.global_position ELSE rm.checkpoints.global_position END, \
         transaction_id = CASE WHEN (rm.checkpoints.transaction_id, rm.checkpoints.global_position) \
             < (excluded.transaction_id, excluded.global_position) \
             THEN excluded.transaction_id ELSE rm.checkpoints.transaction_id END, \
         recorded_at = greatest(rm.checkpoints.recorded_at, excluded.recorded_at), applied_at = now()",
    )
    .bind(LIVE_PROJECTION)
    .bind(position)
    .bind(last.recorded_at)
    .bind(tx_id)
    .execute(tx)
    .await?;
    Ok(())
}

/// Sets `projector_lag_seconds` from the oldest event after `cursor`.
pub(crate) async fn record_lag(log: &PgEventStore, cursor: Cursor) {
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
