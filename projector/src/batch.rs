//! One batch of deliveries applied to the read model, as the consuming loop
//! does it, without the broker: long gaps healed ahead (short transactions
//! of their own), then every event in one transaction that also moves the
//! checkpoint. The transaction is left open for the caller to commit (and
//! then ack) or to drop (a crash before the commit: it rolls back, and the
//! broker redelivers).

use crate::apply::{AppliedChange, ApplyError, Outcome, apply_batch};
use domain::Event;
use event_store::{Cursor, EventLog, RecordedEvent};
use read_model::{ReadModel, ReadTransaction};

/// A batch applied inside its open transaction.
pub struct PendingBatch {
    tx: Box<dyn ReadTransaction>,
    /// Every change, the healed ones first, in the order applied; the ones
    /// healed ahead are committed already.
    pub changes: Vec<AppliedChange>,
    /// Where the checkpoint moves with the commit (None: the log did not say).
    pub cursor: Option<Cursor>,
    /// Events of the batch that were applied before (nothing changed).
    pub duplicates: u64,
}

impl PendingBatch {
    /// Commits the batch's transaction (and with it the checkpoint).
    pub async fn commit(self) -> Result<(Vec<AppliedChange>, Option<Cursor>), sqlx::Error> {
        self.tx.commit().await?;
        Ok((self.changes, self.cursor))
    }
}

/// Applies `items` (decoded deliveries, in delivery order) to the live read
/// model: what the consuming loop does with a batch, up to its commit. An
/// error names the event it is due to when it is that event's fault (the log
/// cannot heal it, or it cannot be decoded): that one goes to the dead letters.
pub async fn apply_deliveries(
    read: &dyn ReadModel,
    log: &dyn EventLog,
    items: &[(&RecordedEvent, &Event)],
) -> Result<PendingBatch, (Option<usize>, ApplyError)> {
    let schema = read_model::LIVE_SCHEMA;
    let records: Vec<&RecordedEvent> = items.iter().map(|(r, _)| *r).collect();
    // Long gaps are read from the log and applied before the batch's
    // transaction opens, so it never sits idle during a log read.
    let mut changes = crate::heal::heal_ahead(read, schema, log, &records).await;
    let cursor = crate::checkpoint::cursor_of(log, &records).await;
    let mut tx = read.begin(schema).await.map_err(|e| (None, e.into()))?;
    let outcomes = apply_batch(&mut *tx, log, items)
        .await
        .map_err(|(index, e)| match e {
            e @ (ApplyError::Unhealable { .. } | ApplyError::Corrupt(..)) => (index, e),
            e => (None, e),
        })?;
    let mut duplicates = 0u64;
    for outcome in outcomes {
        match outcome {
            Outcome::Applied { changes: c, .. } => changes.extend(c),
            Outcome::Duplicate => duplicates += 1,
        }
    }
    if let Some(last) = records.iter().max_by_key(|r| r.recorded_at) {
        // The checkpoint moves in the batch's transaction (never back).
        tx.save_checkpoint(crate::LIVE_PROJECTION, cursor, last.recorded_at)
            .await
            .map_err(|e| (None, e.into()))?;
    }
    Ok(PendingBatch {
        tx,
        changes,
        cursor,
        duplicates,
    })
}
