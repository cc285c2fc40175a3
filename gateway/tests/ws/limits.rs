//! Heartbeats, slow consumers and send rate limits.

use crate::helpers::*;
use crate::input::{close_code, wait_until};
use domain::{ChannelKind, UserId};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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
    let (addr, gateway) = stack
        .gateway(|c| {
            c.outbound_capacity = 8;
            // Only the full queue may close it, however slowly the sends go.
            c.client_timeout = Duration::from_secs(600);
        })
        .await;
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

/// A client that stops reading is closed within heartbeat + grace, however
/// roomy its queue: its writer blocks, never the loop that keeps the heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_closed_after_the_heartbeat() {
    let stack = Stack::new().await;
    let (addr, gateway) = stack
        .gateway(|c| {
            c.outbound_capacity = 100_000;
            c.heartbeat = Duration::from_millis(200);
            c.client_timeout = Duration::from_secs(1);
        })
        .await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;
    let mut stuck = Client::connect(&addr, bob).await;
    stuck.subscribe(channel, None).await;
    let big = "x".repeat(3900);
    for _ in 0..3000 {
        stack.send(ann, channel, &big).await;
        if gateway.sockets() == 0 {
            break;
        }
    }
    wait_until(|| gateway.sockets() == 0).await;
}

/// The same with a client that keeps sending (pings) but never reads: it is
/// not silent, yet its writer is stuck, and that closes it as a slow consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_writes_but_never_reads_is_closed_as_a_slow_consumer() {
    let stack = Stack::new().await;
    let (addr, gateway) = stack
        .gateway(|c| {
            c.outbound_capacity = 100_000;
            c.heartbeat = Duration::from_millis(200);
            c.client_timeout = Duration::from_secs(1);
        })
        .await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;
    let mut stuck = Client::connect(&addr, bob).await;
    stuck.subscribe(channel, None).await;
    use futures_util::{SinkExt, StreamExt};
    let (mut sink, mut stream) = stuck.socket.split();
    let pinger = tokio::spawn(async move {
        let ping = json!({"type": "ping"}).to_string();
        while sink.send(Message::text(ping.clone())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let big = "x".repeat(3900);
    for _ in 0..3000 {
        stack.send(ann, channel, &big).await;
        if gateway.sockets() == 0 {
            break;
        }
    }
    wait_until(|| gateway.sockets() == 0).await;
    pinger.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let code = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => break None,
        }
    };
    assert_eq!(code, Some(4001));
}

/// One client floods `typing` and `subscribe`: it is throttled, told
/// `rate_limited`, then closed with 4008; the other subscriber gets at most
/// one typing frame per 2 s from it and stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_flooding_typing_and_subscribe_affects_no_one_else() {
    let stack = Stack::new().await;
    let (addr, gateway) = stack
        .gateway(|c| {
            c.outbound_capacity = 64;
            c.frames_per_sec = 20;
            c.frames_burst = 40;
        })
        .await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;
    let mut calm = Client::connect(&addr, ann).await;
    calm.subscribe(channel, None).await;
    let mut flood = Client::connect(&addr, bob).await;
    flood.subscribe(channel, None).await;

    let typing = json!({"type": "typing", "channel_id": channel.0}).to_string();
    let subscribe = json!({"type": "subscribe", "channel_id": channel.0}).to_string();
    let started = tokio::time::Instant::now();
    for n in 0..5000 {
        let frame = if n % 20 == 19 { &subscribe } else { &typing };
        use futures_util::SinkExt;
        if flood
            .socket
            .send(tokio_tungstenite::tungstenite::Message::text(frame.clone()))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut codes = Vec::new();
    let closed = loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(Duration::from_secs(10), flood.socket.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) => {
                let frame: serde_json::Value = serde_json::from_str(&text).expect("json");
                check_schema(&frame);
                if frame["type"] == "error" {
                    codes.push(frame["code"].as_str().unwrap_or_default().to_owned());
                }
            }
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => {
                break frame.map(|f| u16::from(f.code));
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(closed, Some(4008));
    assert!(codes.iter().any(|c| c == "rate_limited"), "{codes:?}");

    let mut typing_frames = 0;
    while let Some(frame) = calm.try_next_frame(Duration::from_millis(500)).await {
        if frame["type"] == "typing" {
            typing_frames += 1;
        }
    }
    // One typing frame per 2 s at most, however long the flood lasted.
    let allowed = 1 + started.elapsed().as_secs() / 2;
    assert!(
        typing_frames <= allowed,
        "{typing_frames} typing frames in {:?}",
        started.elapsed()
    );
    stack.send(bob, channel, "still here?").await;
    assert_eq!(calm.until("message").await.0["content"], "still here?");
    wait_until(|| gateway.sockets() == 1).await;
}

/// At most `max_subscriptions` per socket; at most `max_sockets_per_user`
/// sockets per user across both instances (the next one is closed with 4005).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscriptions_per_socket_and_sockets_per_user_are_capped() {
    let stack = Stack::new().await;
    let tune = |c: &mut gateway::GatewayConfig| {
        c.max_subscriptions = 3;
        c.max_sockets_per_user = 2;
    };
    let (first, _) = stack.gateway(tune).await;
    let (second, _) = stack.gateway(tune).await;
    let ann = UserId::new();
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(stack.channel(ann, ChannelKind::Public, &[]).await);
    }
    let mut a = Client::connect(&first, ann).await;
    for channel in &channels[..3] {
        assert_eq!(a.subscribe(*channel, None).await["type"], "subscribed");
    }
    // Re-subscribing to one already held is not a new subscription.
    assert_eq!(
        a.subscribe(channels[0], Some(0)).await["type"],
        "subscribed"
    );
    a.send_json(json!({"type": "subscribe", "id": 4, "channel_id": channels[3].0}))
        .await;
    let (refused, _) = a.until("error").await;
    assert_eq!(
        (refused["code"].clone(), refused["id"].clone()),
        (json!("too_many_subscriptions"), json!(4))
    );

    let _b = Client::connect(&second, ann).await;
    let mut request = format!("ws://{first}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", token(ann)).parse().expect("header"),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade itself succeeds");
    let mut third = Client { socket };
    assert_eq!(close_code(&mut third).await, Some(4005));
}

/// A message sent in fragments that add up past the frame limit is refused
/// like an oversized frame: an `error` frame, then close 4004.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fragmented_100_kib_message_is_refused_with_4004() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let stack = Stack::new().await;
    let (addr, gateway) = stack.gateway(|_| {}).await;
    let mut client = Client::connect(&addr, UserId::new()).await;
    let half = "x".repeat(50 * 1024);
    client
        .socket
        .send(Message::Frame(Frame::message(
            half.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .expect("first fragment");
    client
        .socket
        .send(Message::Frame(Frame::message(
            half,
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .expect("last fragment");
    let frame = client.next_frame().await;
    assert_eq!(frame["code"], "frame_too_large");
    assert_eq!(close_code(&mut client).await, Some(4004));
    wait_until(|| gateway.sockets() == 0).await;
}

/// Token expiry still closes a socket whose client stopped reading (its
/// writer is stuck; the loop that watches the expiry is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_expiry_closes_a_socket_that_stopped_reading() {
    let stack = Stack::new().await;
    let (addr, gateway) = stack
        .gateway(|c| {
            c.outbound_capacity = 100_000;
            c.heartbeat = Duration::from_millis(200);
            c.client_timeout = Duration::from_secs(60);
        })
        .await;
    let (ann, bob) = (UserId::new(), UserId::new());
    let channel = stack.channel(ann, ChannelKind::Public, &[bob]).await;
    let short = auth::JwtConfig::new(SECRET, "chat", "chat", 4)
        .expect("jwt")
        .issue(bob.0, "bob")
        .access_token;
    let request = format!("ws://{addr}/ws?access_token={short}")
        .into_client_request()
        .expect("request");
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    let mut stuck = Client { socket };
    assert_eq!(stuck.next_frame().await["type"], "welcome");
    stuck.subscribe(channel, None).await;
    // Fill every buffer between the server and this client, which reads nothing.
    let big = "x".repeat(3900);
    for _ in 0..3000 {
        stack.send(ann, channel, &big).await;
        if gateway.sockets() == 0 {
            break;
        }
    }
    wait_until(|| gateway.sockets() == 0).await;
}
