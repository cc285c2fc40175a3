//! Resume with `after_seq` while messages keep coming: the client ends with
//! every message exactly once, in seq order.

use crate::helpers::*;
use domain::{ChannelKind, UserId};
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnecting_with_after_seq_misses_nothing_and_repeats_nothing() {
    const TOTAL: u64 = 150;
    let stack = Stack::new().await;
    let (addr, _) = stack.gateway(|_| {}).await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;

    let writer = {
        let commands = stack.commands.clone();
        tokio::spawn(async move {
            for n in 0..TOTAL {
                let ctx = command_service::CommandContext {
                    actor: ann,
                    correlation_id: uuid::Uuid::now_v7(),
                    expected_version: None,
                    idempotency_key: None,
                    request_fingerprint: None,
                };
                let command = domain::ChannelCommand::SendMessage {
                    message_id: domain::MessageId::new(),
                    content: format!("m{n}"),
                    message_type: "text".into(),
                    client_msg_id: None,
                };
                commands
                    .execute(
                        channel,
                        command_service::Intent::Command(command),
                        &ctx,
                        "MessageSent",
                    )
                    .await
                    .expect("send");
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };

    let mut received: Vec<u64> = Vec::new();
    // The first session asks for everything (the writer may be ahead already).
    let mut last = Some(0);
    // Three sessions, each cut off after a few messages, the last one reads to the end.
    for session in 0..4 {
        let mut client = Client::connect(&addr, bob).await;
        let subscribed = client.subscribe(channel, last).await;
        assert_eq!(subscribed["recovered"], true);
        let quota = if session < 3 { 20 } else { usize::MAX };
        let mut got = 0;
        while got < quota && received.last().copied().unwrap_or(0) < TOTAL {
            let frame = client.next_frame().await;
            if frame["type"] == "message" {
                let seq = frame["seq"].as_u64().expect("seq");
                received.push(seq);
                last = Some(seq);
                got += 1;
            }
        }
        drop(client);
        if session < 3 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }
    writer.await.expect("writer");
    let expected: Vec<u64> = (1..=TOTAL).collect();
    assert_eq!(received, expected, "every message exactly once, in order");
    assert_eq!(
        received.iter().collect::<BTreeSet<_>>().len(),
        received.len()
    );
}

/// A client 5,000 messages behind gets all of them, in order, once, at the
/// pace it reads (a queue of 256 frames never overflows), then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_of_5000_missed_messages_replays_all_in_order_then_live() {
    const MISSED: u64 = 5000;
    let stack = Stack::new().await;
    let (addr, gateway) = stack.gateway(|_| {}).await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;
    for n in 0..MISSED {
        stack.send(ann, channel, &format!("m{n}")).await;
    }
    stack.wait_seq(channel, MISSED).await;

    let mut client = Client::connect(&addr, bob).await;
    let subscribed = client.subscribe(channel, Some(0)).await;
    assert_eq!(
        (
            subscribed["recovered"].clone(),
            subscribed["last_seq"].clone()
        ),
        (serde_json::json!(true), serde_json::json!(MISSED))
    );
    let mut seqs = Vec::new();
    while seqs.len() < MISSED as usize {
        let frame = client.next_frame().await;
        if frame["type"] == "message" {
            seqs.push(frame["seq"].as_u64().expect("seq"));
        }
    }
    let expected: Vec<u64> = (1..=MISSED).collect();
    assert_eq!(seqs, expected, "every missed message once, in order");
    stack.send(ann, channel, "live").await;
    let (live, _) = client.until("message").await;
    assert_eq!(
        (live["seq"].clone(), live["content"].clone()),
        (serde_json::json!(MISSED + 1), serde_json::json!("live"))
    );
    assert_eq!(gateway.sockets(), 1, "the reader was never closed");
}

/// Further behind than the recovery window: `recovered: false`, nothing
/// replayed, live from the current seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_past_the_window_replays_nothing_and_goes_live() {
    const WINDOW: u64 = 50;
    let stack = Stack::new().await;
    let (addr, _) = stack.gateway(|c| c.recovery_limit = WINDOW).await;
    let ann = UserId::new();
    let channel = stack.channel(ann, ChannelKind::Public, &[]).await;
    for _ in 0..(WINDOW + 10) {
        stack.send(ann, channel, "x").await;
    }
    stack.wait_seq(channel, WINDOW + 10).await;
    let mut client = Client::connect(&addr, ann).await;
    let subscribed = client.subscribe(channel, Some(5)).await;
    assert_eq!(
        subscribed["recovered"], false,
        "the client must refetch over REST"
    );
    assert_eq!(subscribed["last_seq"], WINDOW + 10);
    // Exactly at the window's edge it is still recovered (on another socket).
    let mut edge = Client::connect(&addr, ann).await;
    assert_eq!(edge.subscribe(channel, Some(10)).await["recovered"], true);
    assert!(
        client
            .try_next_frame(Duration::from_millis(300))
            .await
            .is_none_or(|f| f["type"] != "message"),
        "nothing is replayed"
    );
    stack.send(ann, channel, "live").await;
    let (live, _) = client.until("message").await;
    assert_eq!(live["seq"], WINDOW + 11);
}

/// The read model lacks a seq that the log has (a dead-lettered event, a
/// replica behind): the replay stops before the hole and tells the client to
/// re-fetch with an unsolicited `subscribed {recovered: false}`, never a
/// silent skip; then the subscription is live.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hole_in_the_read_model_is_announced_not_skipped() {
    let stack = Stack::new().await;
    let (addr, _) = stack.gateway(|_| {}).await;
    let ann = UserId::new();
    let channel = stack.channel(ann, ChannelKind::Public, &[]).await;
    for n in 1..=5 {
        stack.send(ann, channel, &format!("m{n}")).await;
    }
    stack.wait_seq(channel, 5).await;
    sqlx::query("DELETE FROM rm.messages WHERE channel_id = $1 AND seq = 3")
        .bind(channel.0)
        .execute(&stack.read.pool)
        .await
        .expect("make a hole");
    let mut client = Client::connect(&addr, ann).await;
    assert_eq!(client.subscribe(channel, Some(0)).await["recovered"], true);
    let mut seqs = Vec::new();
    let resync = loop {
        let frame = client.next_frame().await;
        match frame["type"].as_str() {
            Some("message") => seqs.push(frame["seq"].as_u64().expect("seq")),
            Some("subscribed") => break frame,
            _ => {}
        }
    };
    assert_eq!(seqs, vec![1, 2], "nothing past the hole is replayed");
    assert_eq!(
        (resync["recovered"].clone(), resync["last_seq"].clone()),
        (serde_json::json!(false), serde_json::json!(5))
    );
    assert!(resync.get("id").is_none(), "unsolicited");
    stack.send(ann, channel, "live").await;
    assert_eq!(client.until("message").await.0["seq"], 6);
}
