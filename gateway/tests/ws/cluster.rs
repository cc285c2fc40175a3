//! Two gateway instances over one system: a message sent through one
//! reaches a client on the other, and presence is right on both.

use crate::helpers::*;
use domain::{ChannelKind, UserId};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_sent_on_one_gateway_reaches_the_other_with_presence() {
    let stack = Stack::new().await;
    let (first, _) = stack.gateway(|_| {}).await;
    let (second, _) = stack.gateway(|_| {}).await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;

    let mut a = Client::connect(&first, ann).await;
    let subscribed = a.subscribe(channel, None).await;
    assert_eq!(subscribed["last_seq"], 0);
    let mut b = Client::connect(&second, bob).await;
    b.subscribe(channel, None).await;

    // Ann (on the first gateway) learns that Bob (on the second) came online.
    let (presence, _) = a.until("presence").await;
    let presence = if presence["user_id"] == json!(bob.0) {
        presence
    } else {
        a.until("presence").await.0
    };
    assert_eq!(
        (presence["user_id"].clone(), presence["online"].clone()),
        (json!(bob.0), json!(true))
    );

    a.send_json(json!({"type": "send", "id": 1, "channel_id": channel.0, "content": "hi bob", "client_msg_id": "m1"})).await;
    let (ack, _) = a.until("ack").await;
    assert_eq!(
        (
            ack["id"].clone(),
            ack["seq"].clone(),
            ack["client_msg_id"].clone()
        ),
        (json!(1), json!(1), json!("m1"))
    );

    let (message, _) = b.until("message").await;
    assert_eq!(
        (
            message["seq"].clone(),
            message["content"].clone(),
            message["sender_id"].clone()
        ),
        (json!(1), json!("hi bob"), json!(ann.0))
    );
    let (own, _) = a.until("message").await;
    assert_eq!(own["message_id"], ack["message_id"]);

    // Typing reaches the other side, not the typist.
    b.send_json(json!({"type": "typing", "channel_id": channel.0}))
        .await;
    let (typing, _) = a.until("typing").await;
    assert_eq!(typing["user_id"], json!(bob.0));

    // Bob leaves: Ann sees him go offline.
    drop(b);
    loop {
        let (frame, _) = a.until("presence").await;
        if frame["user_id"] == json!(bob.0) && frame["online"] == json!(false) {
            break;
        }
    }
    assert!(
        a.try_next_frame(Duration::from_millis(300))
            .await
            .is_none_or(|f| f["type"] != "message")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resent_client_msg_id_gets_the_first_ack() {
    let stack = Stack::new().await;
    let (addr, _) = stack.gateway(|_| {}).await;
    let ann = UserId::new();
    let channel = stack.channel(ann, ChannelKind::Public, &[]).await;
    let mut a = Client::connect(&addr, ann).await;
    let send = json!({"type": "send", "channel_id": channel.0, "content": "once", "client_msg_id": "same"});
    a.send_json(send.clone()).await;
    let first = a.until("ack").await.0;
    a.send_json(send).await;
    let second = a.until("ack").await.0;
    assert_eq!(first, second);
    assert_eq!(first["seq"], 1);
}
