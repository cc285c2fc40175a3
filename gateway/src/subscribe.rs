//! `subscribe`: gap-free resume with who is online, authorized against the log.

use crate::Gateway;
use crate::commands::{UNAVAILABLE, unavailable};
use crate::connection::Connection;
use crate::frames::ServerFrame;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Subscribes with gap-free resume: register (noting live frames), check
/// access against the log, answer `subscribed` with who is online, then
/// replay what the client missed at its own pace in a task of its own and go
/// live. Registering before the check means a removal committed after the
/// check is caught by the membership watch.
pub(crate) async fn subscribe(
    gateway: &Arc<Gateway>,
    connection: &Arc<Connection>,
    channel_id: Uuid,
    after_seq: Option<u64>,
    id: Option<Value>,
) -> Option<ServerFrame> {
    let resubscribe = gateway.hub.is_subscribed(connection.id, channel_id);
    if !resubscribe
        && gateway.hub.subscription_count(connection.id) >= gateway.config.max_subscriptions
    {
        return Some(ServerFrame::Error {
            code: "too_many_subscriptions".into(),
            message: format!(
                "at most {} subscriptions per socket",
                gateway.config.max_subscriptions
            ),
            id,
            channel_id: Some(channel_id),
        });
    }
    // A re-subscribe keeps the old subscription until the new one is allowed.
    let pending = (!resubscribe).then(|| gateway.hub.subscribe(connection, channel_id));
    let refused = |code: &str, message: &str, id| {
        if pending.is_some() {
            gateway.hub.unsubscribe(connection.id, channel_id);
        }
        Some(ServerFrame::Error {
            code: code.into(),
            message: message.into(),
            id,
            channel_id: Some(channel_id),
        })
    };
    let stream = format!("channel-{channel_id}");
    // Read before the state: removals at or before it are in the state.
    let version = match gateway.commands.store().stream_version(&stream).await {
        Ok(version) => version,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check access");
            return refused("unavailable", UNAVAILABLE, id);
        }
    };
    // No such stream: refused without loading (and caching) a state for it,
    // so random ids cannot crowd real channels out of the command cache (A10).
    if version == 0 {
        return refused("channel_not_found", "channel not found", id);
    }
    // Authorized against the log, which is authoritative: the read model may
    // not have a channel created a moment ago yet.
    match gateway.commands.channel_state(channel_id.into()).await {
        Err(e) => {
            tracing::warn!(error = %e, "cannot check access");
            return refused("unavailable", UNAVAILABLE, id);
        }
        Ok(None) => return refused("channel_not_found", "channel not found", id),
        Ok(Some(channel)) => {
            let user = connection.user_id.into();
            if channel.banned.contains(&user) {
                return refused("banned", "you are banned from this channel", id);
            }
            if channel.kind == domain::ChannelKind::Private && !channel.members.contains_key(&user)
            {
                return refused(
                    "not_a_member",
                    "this channel is private: only members may subscribe",
                    id,
                );
            }
        }
    }
    let sub = pending.unwrap_or_else(|| gateway.hub.subscribe(connection, channel_id));
    sub.authorized_version
        .store(version, std::sync::atomic::Ordering::SeqCst);
    if !sub.is_active() {
        // Removed while being checked: the client got `unsubscribed` already.
        return None;
    }
    let last_seq = match gateway.hub.history.last_seq(channel_id).await {
        Ok(last_seq) => last_seq,
        Err(e) => {
            tracing::warn!(error = %e, "read model unavailable");
            gateway.hub.unsubscribe(connection.id, channel_id);
            return Some(unavailable(id));
        }
    };
    let (from, recovered) = resume_point(after_seq, last_seq, gateway.config.recovery_limit);
    let online = gateway
        .presence
        .snapshot(channel_id, gateway.config.presence_limit)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "presence read failed");
            redis_store::OnlineSnapshot::default()
        });
    connection.push(
        ServerFrame::Subscribed {
            id,
            channel_id,
            last_seq,
            recovered,
            online_users: online.users,
            online_count: online.count,
        }
        .to_text()
        .into(),
    );
    if sub.is_active()
        && let Err(e) = gateway
            .presence
            .join(channel_id, connection.user_id, connection.id)
            .await
    {
        tracing::warn!(error = %e, "presence join failed");
    }
    gateway.hub.replay(&sub, last_seq, from);
    None
}

/// Where a subscription's replay starts, and whether that recovers the
/// client's position (`recovered`), given its `after_seq` and the read
/// model's head: from `after_seq` within the recovery window, else live from
/// the head.
pub(crate) fn resume_point(
    after_seq: Option<u64>,
    last_seq: u64,
    recovery_limit: u64,
) -> (u64, bool) {
    match after_seq {
        // The client has more than the read model (its own ack came first).
        Some(after) if after >= last_seq => (after, true),
        Some(after) if last_seq - after <= recovery_limit => (after, true),
        _ => (last_seq, false),
    }
}
