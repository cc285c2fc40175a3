//! `chat status` on the embedded backend: the log's head, the live
//! projection's checkpoint and lag, the dead letters in their table. There
//! is no relay and no separate gateway to report on: the report says so
//! (`relay` and `gateways` are None) rather than showing numbers.

use crate::rebuild::PROJECTIONS;
use crate::status::{DeadLetters, Lag, LogHead, ProjectionStatus, StatusReport, Thresholds};
use event_store::{Cursor, EventLog};
use read_model::SqliteReadModel;

/// Where the embedded backend keeps its dead letters (shown as the queue).
pub const DEAD_LETTER_TABLE: &str = "rm.dead_letters";

/// Collects the report and judges it against `thresholds`.
pub async fn gather(
    log: &dyn EventLog,
    read: &SqliteReadModel,
    thresholds: Thresholds,
) -> Result<StatusReport, sqlx::Error> {
    let head = log.head().await?;
    let checkpoints = read.checkpoints().await?;
    let mut projections = Vec::new();
    for p in PROJECTIONS {
        let row = checkpoints.iter().find(|c| c.projection == p.checkpoint);
        let cursor = row.map_or(Cursor::START, |c| c.cursor);
        projections.push(ProjectionStatus {
            name: p.name.to_owned(),
            checkpoint: row.map(|c| c.cursor.global_position),
            checkpoint_recorded_at: row.map(|c| c.recorded_at),
            applied_at: row.map(|c| c.applied_at),
            lag: lag_after(log, head, cursor).await?,
        });
    }
    let dead_letters = read.dead_letters(i64::MAX).await?.len();
    let mut problems = Vec::new();
    for p in &projections {
        problems.extend(thresholds.check(&format!("projection {}", p.name), p.lag));
    }
    Ok(StatusReport {
        log: LogHead {
            head_cursor: (head != Cursor::START)
                .then(|| format!("{}-{}", head.transaction_id, head.global_position)),
            // One writer takes each position as the last one plus one, in
            // commit order: the head's position is the number of events.
            global_position: head.global_position,
            events_estimate: head.global_position,
        },
        relay: None,
        projections,
        dead_letters: DeadLetters {
            queue: DEAD_LETTER_TABLE.to_owned(),
            depth: Some(u32::try_from(dead_letters).unwrap_or(u32::MAX)),
        },
        gateways: None,
        healthy: problems.is_empty(),
        problems,
    })
}

/// Events after `cursor` and the oldest one's age. Positions on SQLite are
/// dense and in commit order, so the count is the difference to the head.
async fn lag_after(log: &dyn EventLog, head: Cursor, cursor: Cursor) -> Result<Lag, sqlx::Error> {
    let oldest = log.oldest_recorded_after(cursor).await?;
    Ok(Lag {
        lag_events: (head.global_position - cursor.global_position).max(0),
        lag_seconds: oldest.map_or(0.0, |at| {
            (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1e3
        }),
    })
}
