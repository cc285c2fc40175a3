//! The consuming loop: batches whatever deliveries are ready, applies them in
//! one read-model transaction, acks after the commit, then announces.
//! Reconnects to RabbitMQ with backoff; retries database failures in place so
//! events are never reordered or dropped.

use crate::EventSchemas;
use crate::apply::{AppliedChange, ApplyError};
use crate::decode::{Poison, decode_delivery};
use broker::lapin::message::Delivery;
use broker::lapin::options::ConfirmSelectOptions;
use broker::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
};
use broker::lapin::types::{AMQPValue, FieldTable, LongString};
use broker::lapin::{BasicProperties, Channel};
use domain::Event;
use event_store::{Cursor, EventLog, RecordedEvent};
use futures_util::{FutureExt, StreamExt};
use read_model::ReadModel;
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
}

impl ProjectorConfig {
    pub fn new(amqp_url: impl Into<String>) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            presence: None,
            // No more in flight than one batch: every delivery in flight when
            // the projector dies counts towards the queue's delivery limit.
            prefetch: 256,
            max_batch: 256,
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
        broker::declare_events(&channel).await?;
        broker::declare_projections(&channel).await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let announcer = connection.create_channel().await?;
        announcer
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let tag = format!("projector-{}", uuid::Uuid::now_v7());
        let mut consumer = channel
            .basic_consume(
                broker::PROJECTOR_QUEUE.into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!("projector consuming {}", broker::PROJECTOR_QUEUE);
        match crate::checkpoint::load(self.read.as_ref(), self.log.as_ref()).await {
            Ok(cursor) => self.set_applied(cursor),
            Err(e) => {
                tracing::warn!(error = %e, "projector checkpoint unreadable; lag measured from the start")
            }
        }
        let mut lag_timer = tokio::time::interval(LAG_INTERVAL);
        lag_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                next = consumer.next() => next,
                _ = lag_timer.tick() => {
                    crate::checkpoint::record_lag(self.log.as_ref(), self.applied()).await;
                    continue;
                }
                _ = shutdown.changed() => return Ok(()),
            };
            let mut batch = vec![first.ok_or(ConsumeError::Cancelled)??];
            while batch.len() < config.max_batch {
                match consumer.next().now_or_never() {
                    Some(Some(delivery)) => batch.push(delivery?),
                    _ => break,
                }
            }
            self.process(batch, &announcer, &dead_letters, shutdown)
                .await?;
        }
    }

    /// Applies a batch: poison to the dead letters, the rest in one transaction.
    async fn process(
        &self,
        batch: Vec<Delivery>,
        announcer: &Channel,
        dead_letters: &Channel,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), ConsumeError> {
        metrics::histogram!("projector_batch_size").record(batch.len() as f64);
        let mut good: Vec<(Delivery, RecordedEvent, Event)> = Vec::with_capacity(batch.len());
        for delivery in batch {
            match decode_delivery(&delivery.data, &self.schemas) {
                Ok((recorded, event)) => good.push((delivery, recorded, event)),
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
        if let Some((last, _, _)) = good.last() {
            last.acker.ack(BasicAckOptions { multiple: true }).await?;
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
            for change in &messages {
                notify_offline_members(read.as_ref(), presence.as_ref(), &announcer, change).await;
            }
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
        crate::checkpoint::record_lag(self.log.as_ref(), self.applied()).await;
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

/// Sends a message that can never apply to the dead letters, with the reason
/// (`x-chat-reason`) and its original routing key (`x-chat-routing-key`) as
/// headers for operators, and acks it only once RabbitMQ confirmed the copy.
async fn dead_letter(
    dead_letters: &Channel,
    delivery: &Delivery,
    poison: &Poison,
) -> Result<(), ConsumeError> {
    metrics::counter!("projector_dead_lettered_total").increment(1);
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    tracing::error!(%message_id, reason = %poison, "dead-lettering an event that cannot be applied");
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-chat-reason".into(),
        AMQPValue::LongString(LongString::from(poison.0.as_str())),
    );
    headers.insert(
        "x-chat-routing-key".into(),
        AMQPValue::LongString(LongString::from(delivery.routing_key.as_str())),
    );
    headers.insert(
        "x-chat-failed-at".into(),
        AMQPValue::LongString(LongString::from(chrono::Utc::now().to_rfc3339())),
    );
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirm = dead_letters
        .basic_publish(
            broker::DEAD_LETTER_EXCHANGE.into(),
            delivery.routing_key.clone(),
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await?
        .await?;
    if confirm.is_ack() {
        delivery.acker.ack(BasicAckOptions::default()).await?;
    } else {
        // Not stored: let the queue's own dead-lettering take it.
        delivery
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await?;
    }
    Ok(())
}

/// How long a notification's publisher confirm is awaited.
const NOTIFICATION_CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Publishes `chat.user.{id}.notification` for a new message to every member
/// who is not online in the channel and has not muted it. Best effort.
async fn notify_offline_members(
    read: &dyn ReadModel,
    presence: &dyn live_state::PresenceStore,
    channel: &Channel,
    change: &AppliedChange,
) {
    let Some(channel_id) = change.channel_id else {
        return;
    };
    if change.event.event_type != "MessageSent" {
        return;
    }
    let data = &change.event.data;
    let sender = data
        .get("sender_id")
        .and_then(|s| s.as_str())
        .and_then(|s| s.parse::<uuid::Uuid>().ok());
    let members = match read
        .unmuted_members_except(channel_id, sender.unwrap_or_default())
        .await
    {
        Ok(members) => members,
        Err(e) => return tracing::warn!(error = %e, "notification recipients unavailable"),
    };
    if members.is_empty() {
        return;
    }
    let online = match presence.online_users(channel_id).await {
        Ok(online) => online,
        Err(e) => {
            return tracing::warn!(error = %e, "presence unavailable; notifications skipped");
        }
    };
    let preview: String = data
        .get("content")
        .and_then(|c| c.as_str())
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect();
    // Every confirm is awaited: lapin keeps a dropped one until someone waits
    // for the channel's confirms, which here nobody does (it was a leak of
    // ~300 bytes per notification).
    let mut confirms = Vec::new();
    for user in members.into_iter().filter(|u| !online.contains(u)) {
        let body = serde_json::json!({
            "user_id": user,
            "channel_id": channel_id,
            "message_id": data.get("message_id"),
            "seq": data.get("seq"),
            "sender_id": data.get("sender_id"),
            "preview": preview,
        });
        let properties = BasicProperties::default()
            .with_message_id(format!("{}:{user}", change.event.event_id).into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let published = channel
            .basic_publish(
                broker::EVENTS_EXCHANGE.into(),
                format!("chat.user.{user}.notification").into(),
                BasicPublishOptions::default(),
                body.to_string().as_bytes(),
                properties,
            )
            .await;
        match published {
            Ok(confirm) => confirms.push(confirm),
            Err(e) => tracing::warn!(error = %e, "notification not published"),
        }
    }
    // Bounded: a confirm on a connection that just died may never resolve,
    // and a notification task that hangs holds one of the few permits the
    // consuming loop waits for (a torture run stalled the projector so).
    for confirm in confirms {
        match tokio::time::timeout(NOTIFICATION_CONFIRM_WAIT, confirm).await {
            Ok(Ok(confirmation)) if confirmation.is_ack() => {
                metrics::counter!("projector_notifications_total").increment(1)
            }
            Ok(Ok(_)) => tracing::warn!("a notification was not confirmed by the broker"),
            Ok(Err(e)) => tracing::warn!(error = %e, "a notification was not confirmed"),
            Err(_) => {
                tracing::warn!("notification confirms not heard in time; giving up on them");
                return;
            }
        }
    }
}

/// Tells the gateways a change is committed, on a channel with publisher
/// confirms (the caller awaits them). Still not the record: a client that
/// misses a push sees a `seq` gap and catches up from the read model, and
/// gateways enforce membership from the log.
async fn announce(
    channel: &Channel,
    change: &AppliedChange,
) -> Option<broker::lapin::PublisherConfirm> {
    let channel_id = change.channel_id?;
    let body = serde_json::to_vec(&crate::announcement::announcement(change)?).ok()?;
    let published = channel
        .basic_publish(
            broker::PROJECTIONS_EXCHANGE.into(),
            format!("channel.{channel_id}").into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default()
                .with_message_id(change.event.event_id.to_string().into())
                .with_content_type("application/json".into()),
        )
        .await;
    match published {
        Ok(confirm) => Some(confirm),
        Err(e) => {
            tracing::warn!(error = %e, "could not announce a projection change");
            None
        }
    }
}
