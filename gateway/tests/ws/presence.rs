//! Presence at the sizes users reach: one `subscribed` frame says who is
//! online however many are, `presence` frames are changes only, and presence
//! heals by itself when Redis loses its keys.

use crate::helpers::*;
use domain::{ChannelKind, UserId};
use redis_store::Presence;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

const ONLINE: usize = 1000;

/// 1,000 users online through another instance and a subscriber here; a
/// newcomer gets one `subscribed` with `online_users` (at most the limit) and
/// `online_count`, not one frame per user, and stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_newcomer_to_a_channel_with_1000_online_gets_one_subscribed_frame() {
    let stack = Stack::new().await;
    let (first, _) = stack.gateway(|_| {}).await;
    let (second, gateway) = stack.gateway(|_| {}).await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[]).await;
    // 1,000 subscribers of a third gateway, as that gateway records them.
    let presence = Presence::new(stack.redis.clone());
    for _ in 0..ONLINE {
        presence
            .join(channel.0, uuid::Uuid::now_v7(), uuid::Uuid::now_v7())
            .await
            .expect("presence");
    }
    let mut a = Client::connect(&first, ann).await;
    let seen = a.subscribe(channel, None).await;
    assert_eq!(seen["online_count"], ONLINE);

    let mut newcomer = Client::connect(&second, bob).await;
    let subscribed = newcomer.subscribe(channel, None).await;
    let users: BTreeSet<String> = subscribed["online_users"]
        .as_array()
        .expect("online_users")
        .iter()
        .map(|u| u.as_str().expect("a uuid").to_owned())
        .collect();
    assert_eq!(subscribed["online_count"], ONLINE + 1, "the 1,000 and ann");
    assert_eq!(
        users.len(),
        ONLINE,
        "capped at CHAT_WS_PRESENCE_LIMIT, no repeats"
    );

    // Afterwards only changes (ann's and the newcomer's own arrival, however
    // late Redis relays them), nothing per online user.
    let mut presence_frames = Vec::new();
    while let Some(frame) = newcomer.try_next_frame(Duration::from_millis(500)).await {
        if frame["type"] == "presence" {
            presence_frames.push(frame);
        }
    }
    assert!(
        presence_frames.len() <= 2
            && presence_frames
                .iter()
                .all(|f| f["user_id"] == json!(bob.0) || f["user_id"] == json!(ann.0)),
        "only changes follow: {presence_frames:?}"
    );
    // Ann hears of bob once.
    let (frame, _) = loop {
        let (frame, before) = a.until("presence").await;
        if frame["user_id"] == json!(bob.0) {
            break (frame, before);
        }
    };
    assert_eq!(frame["online"], true);
    newcomer.send_json(json!({"type": "ping", "id": 1})).await;
    assert_eq!(newcomer.until("pong").await.0["id"], 1);
    assert_eq!(gateway.sockets(), 1);
}

/// Redis loses every key of this test (what FLUSHALL does, limited to the
/// test's own prefix because Redis is shared): within a heartbeat the
/// connected users are online again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_heals_after_redis_loses_its_keys() {
    let stack = Stack::new().await;
    let (addr, _) = stack
        .gateway(|c| c.heartbeat = Duration::from_millis(200))
        .await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[]).await;
    let mut a = Client::connect(&addr, ann).await;
    a.subscribe(channel, None).await;
    let presence = Presence::new(stack.redis.clone());
    assert!(
        presence
            .online_users(channel.0)
            .await
            .expect("read")
            .contains(&ann.0)
    );

    let mut redis = stack.redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", stack.redis.prefix()))
        .query_async(&mut redis)
        .await
        .expect("keys");
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut redis)
        .await
        .expect("del");
    assert!(
        presence
            .online_users(channel.0)
            .await
            .expect("read")
            .is_empty()
    );

    // Keep reading (so pongs flow) while a few heartbeats pass.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1000);
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        let _ = a.try_next_frame(left).await;
    }
    let online = presence.online_users(channel.0).await.expect("read");
    assert!(online.contains(&ann.0), "ann is online again: {online:?}");
    // A newcomer sees her.
    let mut b = Client::connect(&addr, bob).await;
    let subscribed = b.subscribe(channel, None).await;
    assert_eq!(subscribed["online_users"], json!([ann.0]));
    assert_eq!(subscribed["online_count"], 1);
}
