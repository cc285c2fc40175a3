//! What the gateway must not miss, read from the log whatever the broker
//! did: every `membership_interval` the gateway reads the removals
//! (`MemberLeft`, `MemberKicked`, `MemberBanned`) and the message changes
//! (`MessageEdited`, `MessageDeleted`) committed since its last look, in
//! commit order from a cursor like every reader of the whole log. A removal
//! ends the matching subscriptions with `unsubscribed {channel_id, reason}`;
//! a change is fanned out unless its announcement got there first
//! (`Hub::dispatch_change`). The projector's announcements are usually first;
//! this makes both certain within the interval, also when an announcement
//! was lost or the feed was reconnecting; a change it brings first may
//! reach a socket before the read model shows it over REST. (New messages
//! need no such watch: a missing seq is repaired from the read model.)

use crate::Gateway;
use crate::commands::{Announced, live_frame};
use crate::frames::{ServerFrame, UnsubscribeReason};
use event_store::LogFilter;
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// Events read per look.
const BATCH: i64 = 1000;

/// Polls the log until `shutdown`.
pub(crate) async fn watch(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let filter = LogFilter {
        stream_id: None,
        event_types: [
            "MemberLeft",
            "MemberKicked",
            "MemberBanned",
            "MessageEdited",
            "MessageDeleted",
        ]
        .map(String::from)
        .to_vec(),
    };
    let mut cursor = None;
    let mut tick = tokio::time::interval(gateway.config.membership_interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let Some(after) = cursor else {
            // Removals before the gateway started concern no subscription of it.
            match gateway.commands.store().head().await {
                Ok(head) => cursor = Some(head),
                Err(e) => {
                    tracing::warn!(error = %e, "log watch cannot read the log; retrying")
                }
            }
            continue;
        };
        match gateway
            .commands
            .store()
            .read_all(after, BATCH, &filter)
            .await
        {
            Ok(events) => {
                for event in &events {
                    cursor = Some(event.cursor());
                    let channel = event
                        .stream_id
                        .strip_prefix("channel-")
                        .and_then(|id| id.parse::<Uuid>().ok());
                    let Some(channel) = channel else { continue };
                    let recorded_at = event.recorded_at.to_rfc3339();
                    match live_frame(&event.event_type, channel, &event.data, &recorded_at) {
                        Some(Announced::Evict { user, reason }) => {
                            end_subscriptions(
                                &gateway,
                                channel,
                                user,
                                event.stream_version,
                                reason,
                            );
                        }
                        Some(Announced::Change { message_id, live }) => {
                            gateway.hub.dispatch_change(
                                channel,
                                message_id,
                                event.stream_version,
                                &live,
                            );
                        }
                        Some(Announced::Live(_)) | None => {}
                    }
                }
                if events.len() as i64 == BATCH {
                    tick.reset_immediately();
                }
            }
            Err(e) => tracing::warn!(error = %e, "log watch cannot read the log; retrying"),
        }
    }
}

/// Ends `user`'s subscriptions to `channel` authorized before `version` of
/// its stream, telling each socket why.
pub(crate) fn end_subscriptions(
    gateway: &Arc<Gateway>,
    channel_id: Uuid,
    user: Uuid,
    version: u64,
    reason: UnsubscribeReason,
) {
    for connection in gateway.hub.evict(channel_id, user, version) {
        metrics::counter!("ws_evictions_total").increment(1);
        let frame = ServerFrame::Unsubscribed {
            id: None,
            channel_id,
            reason,
        };
        connection.push(frame.to_text().into());
        let (presence, id) = (gateway.presence.clone(), connection.id);
        tokio::spawn(async move {
            if let Err(e) = presence.leave(channel_id, user, id).await {
                tracing::warn!(error = %e, "presence leave failed");
            }
        });
    }
}
