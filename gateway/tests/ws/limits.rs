//! Heartbeats, slow consumers and send rate limits.

use crate::helpers::*;
use crate::input::{close_code, wait_until};
use domain::{ChannelKind, UserId};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_socket_is_closed_with_4002() {
    let stack = Stack::new().await;
    let (addr, gateway) = stack
        .gateway(|c| {
            c.heartbeat = Duration::from_millis(200);
            c.client_timeout = Duration::from_millis(700);
        })
        .await;
    let mut client = Client::connect(&addr, UserId::new()).await;
    // Reading nothing means answering no pings.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(close_code(&mut client).await, Some(4002));
    wait_until(|| gateway.sockets() == 0).await;
}

/// A reader that stops reading is cut off with 4001 once its bounded queue is
/// full; the server keeps no more than that queue for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_reader_is_disconnected_with_4001() {
    let stack = Stack::new().await;
    let (addr, gateway) = stack.gateway(|c| c.outbound_capacity = 8).await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;
    let mut slow = Client::connect(&addr, bob).await;
    slow.subscribe(channel, None).await;
    // Large messages fill the socket buffers quickly; the client reads nothing.
    let big = "x".repeat(3900);
    for _ in 0..2000 {
        stack.send(ann, channel, &big).await;
        if gateway.sockets() == 0 {
            break;
        }
    }
    wait_until(|| gateway.sockets() == 0).await;
    // Reading again, the client drains what was queued and then sees why it was cut off.
    assert_eq!(close_code(&mut slow).await, Some(4001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_beyond_the_rate_limit_get_rate_limited() {
    let stack = Stack::with_limits(1, 3).await;
    let (addr, _) = stack.gateway(|_| {}).await;
    let ann = UserId::new();
    let channel = stack.channel(ann, ChannelKind::Public, &[]).await;
    let mut client = Client::connect(&addr, ann).await;
    let mut codes = Vec::new();
    for n in 0..5 {
        client.send_json(json!({"type": "send", "id": n, "channel_id": channel.0, "content": "x", "client_msg_id": format!("r{n}")})).await;
        let frame = loop {
            let f = client.next_frame().await;
            if f["id"] == json!(n) {
                break f;
            }
        };
        codes.push(if frame["type"] == "ack" {
            "ack".to_owned()
        } else {
            frame["code"].as_str().unwrap_or_default().to_owned()
        });
    }
    assert_eq!(
        codes,
        vec!["ack", "ack", "ack", "rate_limited", "rate_limited"]
    );
}
