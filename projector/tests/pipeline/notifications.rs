//! Offline members who have not muted a channel get
//! `chat.user.{id}.notification` for its new messages; online, muted
//! members and the sender do not.

use crate::helpers::Pipeline;
use broker::lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use broker::lapin::types::FieldTable;
use domain::{ChannelCommand, UserId};
use futures_util::StreamExt;
use redis_store::{Presence, RedisStore};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_unmuted_members_are_notified() {
    let mut p = Pipeline::new().await;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let presence = Presence::new(
        RedisStore::connect(&test_support::redis_url(), &prefix)
            .await
            .expect("redis"),
    );
    p.start_relay();
    p.start_projector_with(|c| c.with_notifications(presence.clone()));

    let connection = broker::connect(&p.vhost.amqp_url, "test-notifications")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    broker::declare_events(&channel).await.expect("declare");
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().clone(),
            broker::EVENTS_EXCHANGE.into(),
            "chat.user.*.notification".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "t".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");

    let (owner, online, muted, offline) =
        (UserId::new(), UserId::new(), UserId::new(), UserId::new());
    let chat = p.create_channel(owner).await;
    for member in [online, muted, offline] {
        p.command(member, chat, ChannelCommand::Join).await;
    }
    p.command(muted, chat, ChannelCommand::SetMuted { muted: true })
        .await;
    presence
        .join(chat.0, online.0, uuid::Uuid::new_v4())
        .await
        .expect("presence");
    p.wait_projected().await;
    p.send(owner, chat, "hello everyone").await;

    let mut notified = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while let Ok(Some(Ok(delivery))) = tokio::time::timeout_at(deadline, consumer.next()).await {
        let body: serde_json::Value = serde_json::from_slice(&delivery.data).expect("json");
        assert_eq!(body["preview"], "hello everyone");
        assert_eq!(body["seq"], 1);
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(message_id.ends_with(&format!(
            ":{}",
            body["user_id"].as_str().unwrap_or_default()
        )));
        notified.insert(body["user_id"].as_str().unwrap_or_default().to_owned());
        if !notified.is_empty() {
            // Give any wrong extra notification a moment to show up.
            if tokio::time::timeout(Duration::from_millis(700), consumer.next())
                .await
                .is_err()
            {
                break;
            }
        }
    }
    assert_eq!(notified, BTreeSet::from([offline.0.to_string()]));
}

/// A broker cut while notifications are in flight must not stall the
/// projector: a publisher confirm on a connection that just died may never
/// resolve, and a notification task waiting on it forever held one of the few
/// permits the consuming loop needs (found by torture seed
/// 7937579976466233357 after `rabbitmqctl stop_app`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_cut_during_a_notification_burst_does_not_stall_the_projector() {
    const OFFLINE_MEMBERS: usize = 60;
    const CUTS: usize = 3;
    let mut p = Pipeline::new().await;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let presence = Presence::new(
        RedisStore::connect(&test_support::redis_url(), &prefix)
            .await
            .expect("redis"),
    );
    p.start_relay();
    p.start_projector_with(|c| c.with_notifications(presence.clone()));

    let owner = UserId::new();
    let chat = p.create_channel(owner).await;
    for _ in 0..OFFLINE_MEMBERS {
        p.command(UserId::new(), chat, ChannelCommand::Join).await;
    }
    p.wait_projected().await;

    // Every message fans out to every offline member; cut the vhost's
    // connections (the relay's and the projector's) in the middle of each
    // burst.
    for cut in 0..CUTS {
        for n in 0..40 {
            p.send(owner, chat, &format!("burst {cut}/{n}")).await;
            if n == 20 {
                let out = std::process::Command::new("rabbitmqctl")
                    .args(["-q", "close_all_connections", "-p", &p.vhost.name])
                    .arg("cut during a notification burst")
                    .output()
                    .expect("rabbitmqctl runs");
                assert!(
                    out.status.success(),
                    "close_all_connections: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The projector must come back and apply everything: wait_projected
    // fails after 30 s.
    p.wait_projected().await;
    p.send(owner, chat, "after the cuts").await;
    p.wait_projected().await;
}
