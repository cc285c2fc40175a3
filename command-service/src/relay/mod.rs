//! The outbox relay: reads the event log in commit order from a durable
//! checkpoint and publishes every event to `chat.exchange` with publisher
//! confirms; the checkpoint moves only after RabbitMQ confirmed. Several
//! instances may run: an advisory lock lets one publish at a time, and
//! another takes over when its session ends. Delivery is at least once.

mod checkpoint;
mod leader;
mod publish;

use event_store::{Cursor, LogFilter, PgEventStore, RecordedEvent};
use sqlx::postgres::{PgListener, PgPool};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub use checkpoint::{RELAY_NAME, load_checkpoint};

/// Longest a publishing term goes without proving it still holds the lock.
const LEADER_CHECK: Duration = Duration::from_secs(1);
/// How often `relay_lag_seconds` is measured.
const LAG_INTERVAL: Duration = Duration::from_millis(500);

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub amqp_url: String,
    /// Events read and published per round.
    pub batch_size: i64,
    /// How often to look for events when no notification came (held-back
    /// transactions, a missed notification).
    pub poll_interval: Duration,
    /// The projector's partitions: each event is stamped with its stream's
    /// (`CHAT_PROJECTOR_PARTITIONS`, 1 by default).
    pub partitions: broker::Partitions,
}

impl RelayConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            batch_size: 500,
            poll_interval: Duration::from_millis(200),
            partitions: broker::Partitions::configured(),
        }
    }
}

/// Why one leadership term of the relay ended.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("event log: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] broker::lapin::Error),
    #[error("RabbitMQ refused to confirm event {0}")]
    Nacked(uuid::Uuid),
    #[error(
        "no queue took event {0} (is the projector's queue gone?); declaring the topology again"
    )]
    Unroutable(uuid::Uuid),
    #[error("encoding an event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("lost the relay lock")]
    LostLeadership,
}

/// Runs the relay until `shutdown` turns true, reconnecting to Postgres and
/// RabbitMQ with backoff whenever either fails.
pub async fn run(pool: PgPool, config: RelayConfig, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = broker::Backoff::reconnect();
    while !*shutdown.borrow() {
        let started = tokio::time::Instant::now();
        let wait = match lead(&pool, &config, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                let wait = backoff.after_term(started.elapsed());
                metrics::counter!("relay_restarts_total").increment(1);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "relay interrupted; resuming from its checkpoint");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One term: wait to become the publishing instance, then publish until an error.
async fn lead(
    pool: &PgPool,
    config: &RelayConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let Some(mut lock) = leader::acquire(pool, shutdown).await? else {
        return Ok(());
    };
    tracing::info!("relay is publishing");
    metrics::gauge!("relay_leader").set(1.0);
    let result = publish_loop(pool, config, &mut lock, shutdown).await;
    metrics::gauge!("relay_leader").set(0.0);
    lock.release().await;
    result
}

async fn publish_loop(
    pool: &PgPool,
    config: &RelayConfig,
    lock: &mut leader::RelayLock,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let connection = broker::connect(&config.amqp_url, "chat-relay").await?;
    let mut publisher = publish::Publisher::open(&connection, config.partitions).await?;
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(event_store::NOTIFY_CHANNEL).await?;
    let store = PgEventStore::new(pool.clone());
    let mut cursor = load_checkpoint(pool).await?;
    // `acquire` just proved the lock held, and the gauge starts unmeasured.
    let mut lock_checked = Instant::now();
    let mut lag_measured: Option<Instant> = None;
    let mut ahead = None;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        // Not every round: a relay whose lock session died unnoticed for up
        // to `LEADER_CHECK` publishes beside the new leader. That only sends
        // duplicates (consumers dedupe); nothing is lost, as each term
        // publishes everything after the checkpoint it loaded and moves the
        // checkpoint only forward and only past what it saw confirmed.
        if lock_checked.elapsed() >= LEADER_CHECK {
            lock.confirm_held().await?;
            lock_checked = Instant::now();
        }
        let published;
        (cursor, published) = round(
            pool,
            &store,
            cursor,
            &mut ahead,
            config.batch_size,
            &mut publisher,
        )
        .await?;
        if published > 0 {
            metrics::counter!("relay_published_total").increment(published as u64);
            metrics::gauge!("relay_checkpoint_position").set(cursor.global_position as f64);
        }
        // On a timer, published or not: while an open transaction holds the
        // relay back, nothing is published and the lag must still grow. Not
        // every round: under load that query was one round trip in five.
        if lag_measured.is_none_or(|at| at.elapsed() >= LAG_INTERVAL) {
            let oldest = store.oldest_recorded_after(cursor).await?;
            metrics::gauge!("relay_lag_seconds").set(oldest.map_or(0.0, |at| {
                (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1e3
            }));
            lag_measured = Some(Instant::now());
        }
        if published as i64 == config.batch_size {
            continue;
        }
        // Caught up: sleep until a commit is announced, or poll.
        tokio::select! {
            notified = listener.recv() => { notified?; }
            _ = tokio::time::sleep(config.poll_interval) => {}
            _ = shutdown.changed() => {}
        }
        // Drain notifications that piled up meanwhile: one read serves them all.
        while listener.next_buffered().is_some() {}
    }
}

/// One round: the next batch after `cursor` in commit order (read ahead
/// by the round before, or read now), published with confirms, and only
/// once every confirm came, the checkpoint moved to its last event. Returns
/// where the relay stands and how many it published. Any error leaves the
/// checkpoint where it was: the next term resends.
///
/// A full batch means more is likely waiting, so the batch after it is read
/// while the broker confirms this one (into `ahead`): that read hides behind
/// the broker's round trip. Reading early is as safe as reading late: it
/// takes the rows after this batch's last that were below the snapshot's
/// xmin then, and the round after goes on from its own last one. A read
/// ahead is published only after this batch is confirmed and checkpointed,
/// so the order and the checkpoint rule hold; a failed round drops it.
async fn round(
    pool: &PgPool,
    store: &PgEventStore,
    cursor: Cursor,
    ahead: &mut Option<Vec<RecordedEvent>>,
    batch_size: i64,
    publisher: &mut impl publish::Publish,
) -> Result<(Cursor, usize), RelayError> {
    let batch = match ahead.take() {
        Some(batch) => batch,
        None => {
            store
                .read_all(cursor, batch_size, &LogFilter::default())
                .await?
        }
    };
    let Some(last) = batch.last() else {
        return Ok((cursor, 0));
    };
    let next = last.cursor();
    if batch.len() as i64 >= batch_size {
        let everything = LogFilter::default();
        let (confirmed, read) = tokio::join!(
            publisher.publish_confirmed(&batch),
            store.read_all(next, batch_size, &everything)
        );
        confirmed?;
        checkpoint::save(pool, next).await?;
        *ahead = Some(read?);
    } else {
        publisher.publish_confirmed(&batch).await?;
        checkpoint::save(pool, next).await?;
    }
    Ok((next, batch.len()))
}

/// Where the relay will resume (for status and tests).
pub async fn checkpoint(pool: &PgPool) -> Result<Cursor, sqlx::Error> {
    load_checkpoint(pool).await
}

#[cfg(test)]
mod model_tests;
