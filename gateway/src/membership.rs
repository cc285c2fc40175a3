//! Membership enforced from the log, whatever the broker did: every
//! `membership_interval` the gateway reads the `MemberLeft`, `MemberKicked`
//! and `MemberBanned` events committed since its last look (in commit order,
//! from a cursor, like every reader of the whole log) and ends the matching
//! subscriptions with `unsubscribed {channel_id, reason}`. The projector's
//! announcement usually gets there first; this makes it certain within the
//! interval, also when an announcement was lost or the feed was reconnecting.

use crate::Gateway;
use crate::frames::{ServerFrame, UnsubscribeReason};
use event_store::{Cursor, LogFilter};
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// Events read per look.
const BATCH: i64 = 1000;

/// Polls the log until `shutdown`.
pub(crate) async fn watch(gateway: Arc<Gateway>, mut shutdown: watch::Receiver<bool>) {
    let filter = LogFilter {
        stream_id: None,
        event_types: ["MemberLeft", "MemberKicked", "MemberBanned"]
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
            match head(&gateway).await {
                Ok(head) => cursor = Some(head),
                Err(e) => {
                    tracing::warn!(error = %e, "membership watch cannot read the log; retrying")
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
                    let user = event
                        .data
                        .get("user_id")
                        .and_then(|u| u.as_str())
                        .and_then(|u| u.parse::<Uuid>().ok());
                    if let (Some(channel), Some(user), Some(reason)) = (
                        channel,
                        user,
                        UnsubscribeReason::of_event(&event.event_type),
                    ) {
                        end_subscriptions(&gateway, channel, user, event.stream_version, reason);
                    }
                }
                if events.len() as i64 == BATCH {
                    tick.reset_immediately();
                }
            }
            Err(e) => tracing::warn!(error = %e, "membership watch cannot read the log; retrying"),
        }
    }
}

/// The log's last visible position: removals before the gateway started
/// concern no subscription of it.
async fn head(gateway: &Gateway) -> Result<Cursor, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events \
         WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_optional(gateway.commands.store().pool())
    .await?;
    Ok(row
        .and_then(|(xid, position)| {
            Some(Cursor {
                transaction_id: xid.parse().ok()?,
                global_position: position,
            })
        })
        .unwrap_or(Cursor::START))
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
