//! What feeds the hub: the projector's announcements through this instance's
//! exclusive queue on `chat.projections`, presence and typing from Redis
//! pub/sub, and periodic housekeeping (expired presence, socket counts).

use crate::Gateway;
use crate::commands::{Announced, live_frame};
use crate::frames::ServerFrame;
use crate::hub::Live;
use crate::log_watch::end_subscriptions;
use broker::lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use broker::lapin::types::FieldTable;
use futures_util::StreamExt;
use redis_store::LiveEvent;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Consumes `chat.projections`, reconnecting with backoff (or, on the
/// embedded backend, the in-process bus that stands in for it).
pub(crate) async fn projections(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    if let Some(bus) = gateway.config.local_feed.clone() {
        return consume_local(&gateway, &bus, &mut shutdown).await;
    }
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        let result = consume_projections(&gateway, &mut shutdown).await;
        gateway.feed_up.store(false, Ordering::Relaxed);
        match result {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "gateway feed interrupted; reconnecting"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn consume_projections(
    gateway: &Arc<Gateway>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), broker::BrokerError> {
    let connection = broker::connect(
        &gateway.config.amqp_url,
        &format!("chat-gateway-{}", gateway.instance_id),
    )
    .await?;
    let channel = connection.create_channel().await?;
    broker::declare_projections(&channel).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            broker::PROJECTIONS_EXCHANGE.into(),
            "channel.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "gateway".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %queue.name(), "gateway consuming chat.projections");
    gateway.feed_up.store(true, Ordering::Relaxed);
    // Whatever was announced while the queue did not exist is lost to it:
    // bring every subscription up to the read model's head.
    tokio::spawn(repair_gaps(gateway.clone()));
    loop {
        let delivery = tokio::select! {
            next = consumer.next() => next,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(delivery) = delivery else {
            return Err(broker::BrokerError::ConsumerEnded);
        };
        let delivery = delivery?;
        let Ok(body) = serde_json::from_slice::<Value>(&delivery.data) else {
            continue;
        };
        dispatch_announcement(gateway, &body);
    }
}

/// The embedded backend's feed: the projector's announcements in process.
/// Falling behind loses some, as a dropped broker queue does, and is
/// repaired the same way: every subscription catches up from the read model
/// (edits, deletions and removals come from the log watch).
async fn consume_local(
    gateway: &Arc<Gateway>,
    bus: &local_bus::Announcements,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut subscriber = bus.subscribe();
    tracing::info!("gateway consuming the in-process projections bus");
    gateway.feed_up.store(true, Ordering::Relaxed);
    tokio::spawn(repair_gaps(gateway.clone()));
    loop {
        let received = tokio::select! {
            received = subscriber.next() => received,
            _ = shutdown.changed() => break,
        };
        match received {
            local_bus::Received::Announcement(body) => dispatch_announcement(gateway, &body),
            local_bus::Received::Lagged(lost) => {
                metrics::counter!("ws_feed_lagged_announcements_total").increment(lost);
                tracing::warn!(
                    lost,
                    "gateway fell behind the projections bus; repairing from the read model"
                );
                tokio::spawn(repair_gaps(gateway.clone()));
            }
            local_bus::Received::Closed => break,
        }
    }
    gateway.feed_up.store(false, Ordering::Relaxed);
}

fn dispatch_announcement(gateway: &Arc<Gateway>, body: &Value) {
    let Some(channel_id) = body
        .get("channel_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Uuid>().ok())
    else {
        return;
    };
    let event = &body["event"];
    let event_type = event
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let recorded_at = event
        .get("recorded_at")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = event.get("stream_version").and_then(Value::as_u64);
    match live_frame(event_type, channel_id, &event["data"], recorded_at) {
        None => {}
        Some(Announced::Live(live)) => {
            gateway.hub.dispatch(channel_id, &live, None);
            if event_type == "MessageSent" {
                record_push_latency(recorded_at);
            }
        }
        Some(Announced::Change { message_id, live }) => {
            // Without its version it cannot be ordered against the log
            // watch's copy, which brings it anyway.
            if let Some(version) = version {
                gateway
                    .hub
                    .dispatch_change(channel_id, message_id, version, &live);
            }
        }
        Some(Announced::Evict { user, reason }) => {
            let version = version.unwrap_or(u64::MAX);
            end_subscriptions(gateway, channel_id, user, version, reason);
        }
    }
}

/// Send-to-push latency: from the message's commit in the log (its
/// `recorded_at`) to its fan-out to this instance's sockets, through relay,
/// broker and projector. Clock skew between hosts shows here too, which is
/// why it is a histogram of what operators see, not a correctness check.
fn record_push_latency(recorded_at: &str) {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(recorded_at) {
        let elapsed = chrono::Utc::now().signed_duration_since(at.with_timezone(&chrono::Utc));
        let seconds = elapsed.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        metrics::histogram!("ws_push_latency_seconds").record(seconds.max(0.0));
    }
}

/// After a (re)connect of the feed: every subscription catches up to its
/// channel's head in the read model (`Hub::repair_gaps`).
async fn repair_gaps(gateway: Arc<Gateway>) {
    gateway.hub.repair_gaps().await;
}

/// A live feed that hears nothing for this long (not even its own probes,
/// sent every third of it) is taken for dead and resubscribed.
const LIVE_SILENCE: Duration = Duration::from_secs(15);

/// Delivers presence and typing from Redis pub/sub, resubscribing on failure
/// or when the subscription goes silent (B4: a half-open connection).
pub(crate) async fn live_events(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match gateway.presence.subscribe().await {
            Ok(stream) => {
                let mut stream = std::pin::pin!(stream);
                let mut probe = tokio::time::interval(LIVE_SILENCE / 3);
                let mut heard = tokio::time::Instant::now();
                loop {
                    let event = tokio::select! {
                        e = stream.next() => e,
                        _ = probe.tick() => {
                            if heard.elapsed() > LIVE_SILENCE {
                                tracing::warn!("Redis live feed silent; resubscribing");
                                break;
                            }
                            let presence = gateway.presence.clone();
                            tokio::spawn(async move { presence.probe().await });
                            continue;
                        }
                        _ = shutdown.changed() => return,
                    };
                    let Some(event) = event else { break };
                    heard = tokio::time::Instant::now();
                    let Some(event) = event else { continue };
                    let (frame, except) = match event {
                        LiveEvent::Presence {
                            channel_id,
                            user_id,
                            online,
                        } => (
                            ServerFrame::Presence {
                                channel_id,
                                user_id,
                                online,
                            },
                            None,
                        ),
                        LiveEvent::Typing {
                            channel_id,
                            user_id,
                        } => (
                            ServerFrame::Typing {
                                channel_id,
                                user_id,
                            },
                            Some(user_id),
                        ),
                    };
                    let channel_id = match &frame {
                        ServerFrame::Presence { channel_id, .. }
                        | ServerFrame::Typing { channel_id, .. } => *channel_id,
                        _ => continue,
                    };
                    gateway
                        .hub
                        .dispatch(channel_id, &Live::new(None, &frame), except);
                }
            }
            Err(e) => tracing::warn!(error = %e, "Redis live feed unavailable; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Sweeps expired presence of the channels this instance serves and reports
/// its socket count, every few seconds.
pub(crate) async fn housekeeping(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        for channel in gateway.hub.channels() {
            if let Err(e) = gateway.presence.sweep(channel).await {
                tracing::warn!(error = %e, "presence sweep failed");
                break;
            }
        }
        let instance = gateway.instance_id.to_string();
        if let Err(e) = gateway.census.report(&instance, gateway.sockets()).await {
            tracing::warn!(error = %e, "socket count not reported");
        }
    }
}
