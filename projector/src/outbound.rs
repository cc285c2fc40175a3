//! What the projector publishes besides acks: dead letters (with the reason
//! as headers), announcements of committed changes to the gateways, and
//! notifications of new messages to offline members.

use crate::apply::AppliedChange;
use crate::decode::Poison;
use broker::lapin::message::Delivery;
use broker::lapin::options::{BasicAckOptions, BasicPublishOptions, BasicRejectOptions};
use broker::lapin::types::{AMQPValue, LongString};
use broker::lapin::{BasicProperties, Channel};
use futures_util::StreamExt;
use read_model::ReadModel;

/// Sends a message that can never apply to the dead letters, with the reason
/// (`x-chat-reason`) and its original routing key (`x-chat-routing-key`) as
/// headers for operators, and acks it only once RabbitMQ confirmed the copy.
pub(crate) async fn dead_letter(
    dead_letters: &Channel,
    delivery: &Delivery,
    poison: &Poison,
) -> Result<(), broker::lapin::Error> {
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

/// Channels whose offline members are looked up at once, per batch.
const NOTIFY_CHANNELS_AT_ONCE: usize = 8;

/// Publishes `chat.user.{id}.notification` for each new message of a batch
/// to every member who is not online in the channel and has not muted it.
/// Best effort. Recipients and presence are read once per channel of the
/// batch, not once per message: at a thousand messages a second the lookups
/// per message were what held the consuming loop back.
pub(crate) async fn notify_offline_members(
    read: &dyn ReadModel,
    presence: &dyn live_state::PresenceStore,
    channel: &Channel,
    changes: &[AppliedChange],
) {
    let mut by_channel: Vec<(uuid::Uuid, Vec<&AppliedChange>)> = Vec::new();
    for change in changes {
        let Some(channel_id) = change.channel_id else {
            continue;
        };
        if change.event.event_type != "MessageSent" {
            continue;
        }
        match by_channel.iter_mut().find(|(id, _)| *id == channel_id) {
            Some((_, messages)) => messages.push(change),
            None => by_channel.push((channel_id, vec![change])),
        }
    }
    futures_util::stream::iter(by_channel)
        .for_each_concurrent(
            NOTIFY_CHANNELS_AT_ONCE,
            |(channel_id, messages)| async move {
                notify_in_channel(read, presence, channel, channel_id, &messages).await
            },
        )
        .await;
}

async fn notify_in_channel(
    read: &dyn ReadModel,
    presence: &dyn live_state::PresenceStore,
    channel: &Channel,
    channel_id: uuid::Uuid,
    messages: &[&AppliedChange],
) {
    // Every unmuted member (the nil id is nobody); each message's sender is
    // left out below.
    let (members, online) = tokio::join!(
        read.unmuted_members_except(channel_id, uuid::Uuid::nil()),
        presence.online_users(channel_id)
    );
    let members = match members {
        Ok(members) => members,
        Err(e) => return tracing::warn!(error = %e, "notification recipients unavailable"),
    };
    if members.is_empty() {
        return;
    }
    let online = match online {
        Ok(online) => online,
        Err(e) => {
            return tracing::warn!(error = %e, "presence unavailable; notifications skipped");
        }
    };
    let offline: Vec<uuid::Uuid> = members
        .into_iter()
        .filter(|u| !online.contains(u))
        .collect();
    if offline.is_empty() {
        return;
    }
    // Every confirm is awaited: lapin keeps a dropped one until someone waits
    // for the channel's confirms, which here nobody does (it was a leak of
    // ~300 bytes per notification).
    let mut confirms = Vec::new();
    for change in messages {
        let data = &change.event.data;
        let sender = data
            .get("sender_id")
            .and_then(|s| s.as_str())
            .and_then(|s| s.parse::<uuid::Uuid>().ok());
        let preview: String = data
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .chars()
            .take(100)
            .collect();
        for user in offline.iter().filter(|u| Some(**u) != sender) {
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
pub(crate) async fn announce(
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
