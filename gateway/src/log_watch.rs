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
            match head(gateway.commands.store().pool()).await {
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

/// The log's last visible position: removals before the gateway started
/// concern no subscription of it. Ordered by the column: the selected text,
/// named `transaction_id` too, would order 9999 after 10000.
async fn head(log: &sqlx::PgPool) -> Result<Cursor, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events \
         WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1",
    )
    .fetch_optional(log)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The head is the latest in commit order, as numbers: at a digit
    /// boundary the text order took 9999 for later than 10000 (the same
    /// slip as the projector's checkpoint cursor, found by its model test).
    #[tokio::test]
    async fn the_head_is_numeric_across_a_digit_boundary() {
        let db = test_support::TestDb::new_event_log().await;
        let boundary = test_support::settled_digit_boundary(&db.pool, 5).await;
        let mut last = 0;
        for (i, xid) in [boundary, boundary - 1].into_iter().enumerate() {
            last = sqlx::query_scalar(
                "INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, schema_version, data) \
                 VALUES ($1::text::xid8, $2, 1, $3, 'MessageSent', 1, '{}') RETURNING global_position",
            )
            .bind(xid.to_string())
            .bind(format!("s-{i}"))
            .bind(Uuid::new_v4())
            .fetch_one(&db.pool)
            .await
            .expect("insert");
        }
        let head = head(&db.pool).await.expect("head");
        assert_eq!(
            head,
            Cursor {
                transaction_id: boundary,
                global_position: last - 1,
            }
        );
    }
}
