//! The consuming loop: batches whatever deliveries are ready (of every
//! partition this process is active on), applies them in one read-model
//! transaction, acks after the commit, then announces. Reconnects to
//! RabbitMQ with backoff; retries database failures in place so events are
//! never reordered or dropped. With partitions it takes a member slot once
//! subscribed everywhere and rebalances every `MEMBER_CHECK` (`partitions`).

use crate::EventSchemas;
use crate::apply::{AppliedChange, ApplyError};
use crate::decode::{Poison, decode_delivery};
use crate::outbound::{announce, dead_letter, notify_offline_members};
use crate::partitions::{MEMBER_CHECK, PartitionView, RebalanceError, Subscriptions};
use broker::Partitions;
use broker::lapin::Channel;
use broker::lapin::message::Delivery;
use broker::lapin::options::{BasicAckOptions, ConfirmSelectOptions};
use domain::Event;
use event_store::{Cursor, EventLog, RecordedEvent};
use read_model::ReadModel;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How the projector runs.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    pub amqp_url: String,
    /// Presence, to notify members who are offline (None: no notifications).
    pub presence: Option<Arc<dyn live_state::PresenceStore>>,
    /// Unacknowledged deliveries RabbitMQ may send ahead.
    pub prefetch: u16,
    /// Most events applied in one transaction.
    pub max_batch: usize,
    /// The partition queues (`CHAT_PROJECTOR_PARTITIONS`, 1 by default).
    pub partitions: Partitions,
    /// Which partitions this run holds (the gauges, for the embedder).
    pub view: Arc<PartitionView>,
}

impl ProjectorConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            presence: None,
            // No more in flight than one batch per queue: every delivery in
            // flight when the projector dies counts towards the queue's
            // delivery limit.
            prefetch: 256,
            max_batch: 256,
            partitions: Partitions::configured(),
            view: Arc::new(PartitionView::default()),
        }
    }

    /// Notifies offline members of new messages, using `presence`.
    pub fn with_notifications(
        mut self,
        presence: impl live_state::PresenceStore + 'static,
    ) -> Self {
        self.presence = Some(Arc::new(presence));
        self
    }
}

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] broker::lapin::Error),
    #[error("rebalancing partitions: {0}")]
    Rebalance(#[from] RebalanceError),
    #[error("the consumer was cancelled")]
    Cancelled,
}

struct Projector {
    read: Arc<dyn ReadModel>,
    log: Arc<dyn EventLog>,
    schemas: Arc<EventSchemas>,
    presence: Option<Arc<dyn live_state::PresenceStore>>,
    notifying: Arc<tokio::sync::Semaphore>,
    /// The checkpoint's commit-order cursor, as last committed.
    applied: std::sync::Mutex<Cursor>,
}

/// How often the lag gauge is measured when no batch comes (a hold-back).
const LAG_INTERVAL: Duration = Duration::from_millis(500);

/// Runs the projector until `shutdown` turns true.
pub async fn run(
    read: Arc<dyn ReadModel>,
    log: Arc<dyn EventLog>,
    config: ProjectorConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let schemas = Arc::new(EventSchemas::load()?);
    let projector = Projector {
        read,
        log,
        schemas,
        presence: config.presence.clone(),
        notifying: Arc::new(tokio::sync::Semaphore::new(4)),
        applied: std::sync::Mutex::new(Cursor::START),
    };
    let mut backoff = broker::Backoff::reconnect();
    while !*shutdown.borrow() {
        let started = tokio::time::Instant::now();
        let wait = match projector.consume(&config, &mut shutdown).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let wait = backoff.after_term(started.elapsed());
                metrics::counter!("projector_restarts_total").increment(1);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "projector interrupted; unacked events will be redelivered");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    Ok(())
}

impl Projector {
    async fn consume(
        &self,
        config: &ProjectorConfig,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ConsumeError> {
        let connection = broker::connect(&config.amqp_url, "chat-projector").await?;
        let channel = connection.create_channel().await?;
        broker::declare_partitioned(&channel, config.partitions).await?;
        broker::declare_projections(&channel).await?;
        let announcer = connection.create_channel().await?;
        announcer
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut subs = Subscriptions::open(
            &connection,
            config.partitions,
            config.prefetch,
            config.view.clone(),
        )
        .await?;
        // Only once in line on every partition: the others hand over to a
        // member as soon as they see its slot.
        if config.partitions.split() {
            subs.join(&connection).await?;
        }
        self.refresh_checkpoint().await;
        let mut lag_timer = tokio::time::interval(LAG_INTERVAL);
        lag_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut member_timer = tokio::time::interval(MEMBER_CHECK);
        member_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                next = subs.next() => next?,
                _ = lag_timer.tick() => {
                    if config.partitions.split() {
                        // Other processes move the shared checkpoint too.
                        self.refresh_checkpoint().await;
                    }
                    crate::checkpoint::record_lag(self.log.as_ref(), self.applied()).await;
                    continue;
                }
                _ = member_timer.tick(), if config.partitions.split() => {
                    subs.rebalance().await?;
                    continue;
                }
                _ = shutdown.changed() => return Ok(()),
            };
            let mut batch = vec![first];
            while batch.len() < config.max_batch {
                match subs.ready()? {
                    Some(delivery) => batch.push(delivery),
                    None => break,
                }
            }
            self.process(batch, &announcer, &dead_letters, shutdown)
                .await?;
        }
    }

    /// Moves the in-memory cursor up to the stored checkpoint.
    async fn refresh_checkpoint(&self) {
        match crate::checkpoint::load(self.read.as_ref(), self.log.as_ref()).await {
            Ok(cursor) => self.set_applied(cursor),
            Err(e) => {
                tracing::warn!(error = %e, "projector checkpoint unreadable; lag measured from the start")
            }
        }
    }

    /// Applies a batch: poison to the dead letters, the rest in one transaction.
    async fn process(
        &self,
        batch: Vec<(u16, Delivery)>,
        announcer: &Channel,
        dead_letters: &Channel,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), ConsumeError> {
        metrics::histogram!("projector_batch_size").record(batch.len() as f64);
        let mut good: Vec<(Delivery, RecordedEvent, Event)> = Vec::with_capacity(batch.len());
        // The partition of each good delivery: acks are per channel.
        let mut partition_of: Vec<u16> = Vec::with_capacity(batch.len());
        for (partition, delivery) in batch {
            match decode_delivery(&delivery.data, &self.schemas) {
                Ok((recorded, event)) => {
                    partition_of.push(partition);
                    good.push((delivery, recorded, event));
                }
                Err(poison) => dead_letter(dead_letters, &delivery, &poison).await?,
            }
        }
        let mut backoff = Duration::from_millis(50);
        let changes = loop {
            match self.apply_all(&good).await {
                Ok(changes) => break changes,
                Err((Some(index), error)) => {
                    // This event can never apply (the log cannot heal it): dead-letter it alone.
                    let (delivery, _, _) = good.remove(index);
                    dead_letter(dead_letters, &delivery, &Poison(error.to_string())).await?;
                    partition_of.remove(index);
                }
                Err((None, error)) => {
                    if *shutdown.borrow() {
                        return Err(ConsumeError::Cancelled);
                    }
                    tracing::warn!(error = %error, retry_in_ms = backoff.as_millis() as u64, "read model write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        // Each partition's last delivery acks it and every earlier one.
        let last_of: BTreeMap<u16, usize> = partition_of
            .iter()
            .enumerate()
            .map(|(index, p)| (*p, index))
            .collect();
        for index in last_of.into_values() {
            good[index]
                .0
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await?;
        }
        // Published together, then every confirm awaited: one round trip a batch.
        let mut confirms = Vec::with_capacity(changes.len());
        for change in &changes {
            confirms.extend(announce(announcer, change).await);
        }
        for confirm in confirms {
            match confirm.await {
                Ok(confirmation) if confirmation.is_ack() => {}
                Ok(_) => tracing::warn!("the broker refused a projection announcement"),
                Err(e) => tracing::warn!(error = %e, "a projection announcement was not confirmed"),
            }
        }
        self.notify(announcer, changes).await;
        Ok(())
    }

    /// Notifies offline members of the batch's new messages off the consuming
    /// path (a few batches at a time; beyond that the consumer waits).
    async fn notify(&self, announcer: &Channel, changes: Vec<AppliedChange>) {
        let Some(presence) = self.presence.clone() else {
            return;
        };
        let messages: Vec<AppliedChange> = changes
            .into_iter()
            .filter(|c| c.event.event_type == "MessageSent")
            .collect();
        if messages.is_empty() {
            return;
        }
        let Ok(permit) = self.notifying.clone().acquire_owned().await else {
            return;
        };
        let (read, announcer) = (self.read.clone(), announcer.clone());
        tokio::spawn(async move {
            notify_offline_members(read.as_ref(), presence.as_ref(), &announcer, &messages).await;
            drop(permit);
        });
    }

    /// One transaction for the batch; an error names the event it came from when
    /// it is that event's fault.
    async fn apply_all(
        &self,
        good: &[(Delivery, RecordedEvent, Event)],
    ) -> Result<Vec<AppliedChange>, (Option<usize>, ApplyError)> {
        for (_, recorded, _) in good {
            let correlation_id = recorded
                .metadata
                .get("correlation_id")
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            tracing::debug!(
                %correlation_id,
                event_id = %recorded.event_id,
                event_type = %recorded.event_type,
                stream_id = %recorded.stream_id,
                stream_version = recorded.stream_version,
                "applying"
            );
        }
        let items: Vec<(&RecordedEvent, &Event)> = good.iter().map(|(_, r, e)| (r, e)).collect();
        let pending =
            crate::batch::apply_deliveries(self.read.as_ref(), self.log.as_ref(), &items).await?;
        let (applied, duplicates) = (pending.changes.len() as u64, pending.duplicates);
        let (changes, cursor) = pending.commit().await.map_err(|e| (None, e.into()))?;
        metrics::counter!("projector_applied_total").increment(applied);
        metrics::counter!("projector_skipped_duplicates_total").increment(duplicates);
        if let Some(cursor) = cursor {
            self.set_applied(cursor);
        }
        Ok(changes)
    }

    fn applied(&self) -> Cursor {
        *self
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the in-memory cursor forward (never back: redeliveries).
    fn set_applied(&self, cursor: Cursor) {
        let mut applied = self
            .applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *applied = (*applied).max(cursor);
    }
}
