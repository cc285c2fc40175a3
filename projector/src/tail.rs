//! The embedded backend's projector feed: no broker between the log and the
//! projector, so it reads the log itself, in commit order, from its own
//! checkpoint in the read model.
//!
//! That is the same delivery as on RabbitMQ, at least once from a durable
//! checkpoint to an idempotent consumer, with one hop less: the checkpoint
//! moves in the transaction that applies the batch, so a crash anywhere
//! re-reads from the last commit and the stream positions make every replayed
//! event a duplicate. Batches, validation, decoding, gap healing and the
//! dead-letter rule are the broker consumer's: an event that can never apply
//! (it fails its schema, or the log cannot heal the gap before it) is stored
//! in the dead-letter table and the checkpoint steps past it, in one
//! transaction, after everything before it is applied.

use crate::EventSchemas;
use crate::announcement::announcement;
use crate::apply::{AppliedChange, ApplyError};
use crate::decode::{Poison, decode_logged};
use domain::Event;
use event_store::{Cursor, EventLog, LogFilter, RecordedEvent};
use read_model::ReadModel;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where the embedded projector keeps what can never apply.
#[async_trait::async_trait]
pub trait DeadLetterTable: Send + Sync {
    /// Stores `recorded` with `reason` and moves the live checkpoint to its
    /// cursor, in one transaction.
    async fn dead_letter(&self, recorded: &RecordedEvent, reason: &str) -> Result<(), sqlx::Error>;
}

/// How the log-tailing projector runs.
#[derive(Debug, Clone)]
pub struct LogTailConfig {
    /// Most events applied in one transaction.
    pub max_batch: i64,
    /// How often to look at the log when no append was announced.
    pub poll_interval: Duration,
}

impl Default for LogTailConfig {
    fn default() -> Self {
        Self {
            max_batch: 256,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Reads the log from the live checkpoint and applies it until `shutdown`
/// turns true; `appended` wakes it when the log grows.
pub async fn run_from_log(
    read: Arc<dyn ReadModel>,
    log: Arc<dyn EventLog>,
    dead_letters: Arc<dyn DeadLetterTable>,
    announcements: local_bus::Announcements,
    mut appended: watch::Receiver<i64>,
    config: LogTailConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let schemas = EventSchemas::load()?;
    let tail = Tail {
        read,
        log,
        dead_letters,
        announcements,
        schemas,
    };
    let mut backoff = Duration::from_millis(50);
    // Where the committed checkpoint stands, known after each step without
    // reading it back; read from the read model at start and after a failure.
    let mut at: Option<Cursor> = None;
    tracing::info!("projector reading the event log from its checkpoint");
    while !*shutdown.borrow() {
        let step = match at {
            Some(cursor) => Ok(cursor),
            None => crate::checkpoint::load(tail.read.as_ref(), tail.log.as_ref())
                .await
                .map_err(ApplyError::from),
        };
        let step = match step {
            Ok(cursor) => tail.step(cursor, config.max_batch).await,
            Err(e) => Err(e),
        };
        at = match &step {
            Ok(Step::Applied(cursor) | Step::CaughtUp(cursor)) => Some(*cursor),
            Err(_) => None,
        };
        match step {
            Ok(Step::Applied(_)) => backoff = Duration::from_millis(50),
            Ok(Step::CaughtUp(cursor)) => {
                crate::checkpoint::record_lag(tail.log.as_ref(), cursor).await;
                tokio::select! {
                    _ = appended.changed() => {}
                    _ = tokio::time::sleep(config.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                metrics::counter!("projector_restarts_total").increment(1);
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "projector interrupted; resuming from its checkpoint");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    Ok(())
}

enum Step {
    /// Something was applied or dead-lettered, and the checkpoint moved
    /// here: look again at once.
    Applied(Cursor),
    /// Nothing after the checkpoint, which stands here.
    CaughtUp(Cursor),
}

struct Tail {
    read: Arc<dyn ReadModel>,
    log: Arc<dyn EventLog>,
    dead_letters: Arc<dyn DeadLetterTable>,
    announcements: local_bus::Announcements,
    schemas: EventSchemas,
}

impl Tail {
    /// One batch after the checkpoint: the events before the first one that
    /// can never apply in one transaction, then that one to the dead letters.
    async fn step(&self, cursor: Cursor, max_batch: i64) -> Result<Step, ApplyError> {
        let batch = self
            .log
            .read_all(cursor, max_batch, &LogFilter::default())
            .await
            .map_err(ApplyError::Log)?;
        if batch.is_empty() {
            return Ok(Step::CaughtUp(cursor));
        }
        metrics::histogram!("projector_batch_size").record(batch.len() as f64);
        // The same schema check as the broker's consumer makes of a delivery.
        let mut good: Vec<(RecordedEvent, Event)> = Vec::with_capacity(batch.len());
        let mut poison: Option<(RecordedEvent, Poison)> = None;
        for recorded in batch {
            match decode_logged(&recorded, &self.schemas) {
                Ok(event) => good.push((recorded, event)),
                Err(why) => {
                    poison = Some((recorded, why));
                    break;
                }
            }
        }
        loop {
            if good.is_empty() {
                break;
            }
            let items: Vec<(&RecordedEvent, &Event)> = good.iter().map(|(r, e)| (r, e)).collect();
            match crate::batch::apply_deliveries(self.read.as_ref(), self.log.as_ref(), &items)
                .await
            {
                Ok(pending) => {
                    let (applied, duplicates) = (pending.changes.len() as u64, pending.duplicates);
                    let (changes, _) = pending.commit().await?;
                    metrics::counter!("projector_applied_total").increment(applied);
                    metrics::counter!("projector_skipped_duplicates_total").increment(duplicates);
                    self.announce(&changes);
                    break;
                }
                Err((Some(index), error)) => {
                    // It can never apply: everything before it first, then it alone.
                    let mut rest = good.split_off(index);
                    let (recorded, _) = rest.swap_remove(0);
                    poison = Some((recorded, Poison(error.to_string())));
                }
                Err((None, error)) => return Err(error),
            }
        }
        // The log's records carry their commit-order cursors: the last one
        // handled is where the checkpoint now stands.
        let mut reached = good.last().map_or(cursor, |(r, _)| r.cursor());
        if let Some((recorded, why)) = poison {
            metrics::counter!("projector_dead_lettered_total").increment(1);
            tracing::error!(event_id = %recorded.event_id, reason = %why, "dead-lettering an event that cannot be applied");
            self.dead_letters.dead_letter(&recorded, &why.0).await?;
            reached = recorded.cursor();
        }
        Ok(Step::Applied(reached))
    }

    fn announce(&self, changes: &[AppliedChange]) {
        for change in changes {
            if let Some(body) = announcement(change) {
                self.announcements.publish(body);
            }
        }
    }
}

#[async_trait::async_trait]
impl DeadLetterTable for read_model::SqliteReadModel {
    async fn dead_letter(&self, recorded: &RecordedEvent, reason: &str) -> Result<(), sqlx::Error> {
        read_model::SqliteReadModel::dead_letter(self, recorded, reason).await
    }
}
