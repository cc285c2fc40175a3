//! Bad tokens, malformed and oversized frames, private channels, kicks.

use crate::helpers::*;
use domain::{ChannelCommand, ChannelKind, UserId};
use futures_util::SinkExt;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let stack = Stack::new().await;
    let (addr, _) = stack.gateway(|_| {}).await;
    let user = UserId::new();
    let forged = auth::JwtConfig::new(b"another-secret-another-secret-xxxx", "chat", "chat", 60)
        .expect("jwt")
        .issue(user.0, "x")
        .access_token;
    let expired = jwt()
        .issue_at(user.0, "x", chrono::Utc::now().timestamp() - 7200)
        .access_token;
    for url in [
        format!("ws://{addr}/ws"),
        format!("ws://{addr}/ws?access_token=garbage"),
        format!("ws://{addr}/ws?access_token={forged}"),
        format!("ws://{addr}/ws?access_token={expired}"),
    ] {
        let err = tokio_tungstenite::connect_async(url.into_client_request().expect("req"))
            .await
            .expect_err("refused");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status().as_u16(), 401)
            }
            other => panic!("expected an HTTP 401, got {other:?}"),
        }
    }
    // The query-string token works (browsers cannot set headers).
    let ok = format!("ws://{addr}/ws?access_token={}", token(user));
    assert!(tokio_tungstenite::connect_async(ok).await.is_ok());
    // A foreign browser origin is refused.
    let mut request = format!("ws://{addr}/ws?access_token={}", token(user))
        .into_client_request()
        .expect("req");
    request
        .headers_mut()
        .insert("Origin", "https://evil.example".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_oversized_frames_get_error_frames() {
    let stack = Stack::new().await;
    let (addr, gateway) = stack.gateway(|_| {}).await;
    let mut client = Client::connect(&addr, UserId::new()).await;
    client
        .socket
        .send(Message::text("{not json"))
        .await
        .expect("send");
    assert_eq!(client.next_frame().await["code"], "malformed_frame");
    client.send_json(json!({"type": "warp", "id": 9})).await;
    let frame = client.next_frame().await;
    assert_eq!(
        (frame["code"].clone(), frame["id"].clone()),
        (json!("unknown_frame_type"), json!(9))
    );
    client
        .send_json(json!({"type": "subscribe", "id": "x", "channel_id": 42}))
        .await;
    assert_eq!(client.next_frame().await["code"], "invalid_frame");
    client
        .send_json(json!({"type": "subscribe", "channel_id": uuid::Uuid::new_v4()}))
        .await;
    assert_eq!(client.next_frame().await["code"], "channel_not_found");
    client.send_json(json!({"type": "ping", "id": 3})).await;
    assert_eq!(client.next_frame().await, json!({"type": "pong", "id": 3}));

    client
        .socket
        .send(Message::text("x".repeat(70 * 1024)))
        .await
        .expect("send");
    let frame = client.next_frame().await;
    assert_eq!(frame["code"], "frame_too_large");
    let close = close_code(&mut client).await;
    assert_eq!(close, Some(4004));
    wait_until(|| gateway.sockets() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_channels_and_kicked_members() {
    let stack = Stack::new().await;
    let (addr, _) = stack.gateway(|_| {}).await;
    let (owner, bob, eve) = (UserId::new(), UserId::new(), UserId::new());
    let channel = stack.channel(owner, ChannelKind::Private, &[bob]).await;

    let mut intruder = Client::connect(&addr, eve).await;
    intruder
        .send_json(json!({"type": "subscribe", "id": 1, "channel_id": channel.0}))
        .await;
    let refused = intruder.next_frame().await;
    assert_eq!(
        (refused["code"].clone(), refused["id"].clone()),
        (json!("not_a_member"), json!(1))
    );
    intruder.send_json(json!({"type": "send", "channel_id": channel.0, "content": "let me in", "client_msg_id": "e1"})).await;
    assert_eq!(intruder.until("error").await.0["code"], "not_a_member");

    let mut member = Client::connect(&addr, bob).await;
    member.subscribe(channel, None).await;
    stack.send(owner, channel, "before the kick").await;
    assert_eq!(
        member.until("message").await.0["content"],
        "before the kick"
    );

    stack
        .command(owner, channel, ChannelCommand::Kick { user_id: bob })
        .await;
    let (evicted, _) = member.until("unsubscribed").await;
    assert_eq!(
        (evicted["reason"].clone(), evicted["channel_id"].clone()),
        (json!("kicked"), json!(channel.0))
    );
    stack.send(owner, channel, "after the kick").await;
    stack.wait_seq(channel, 2).await;
    while let Some(frame) = member.try_next_frame(Duration::from_millis(500)).await {
        assert_ne!(frame["type"], "message", "a kicked member received {frame}");
    }
}

pub async fn close_code(client: &mut Client) -> Option<u16> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, client.socket.next()).await {
        match message {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

pub async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met in 10 s");
}

/// The server's own origin is configured (`CHAT_PUBLIC_URL`), never taken
/// from the client's `Host` header: a DNS-rebinding page that sends a `Host`
/// matching its own origin is refused, and so is the right host on the
/// wrong scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_own_origin_comes_from_configuration_not_from_the_host_header() {
    let stack = Stack::new().await;
    let (addr, _) = stack
        .gateway(|c| c.own_origins = vec!["https://chat.example".into()])
        .await;
    let user = UserId::new();
    let attempt = |origin: &'static str, host: Option<&'static str>| {
        let mut request = format!("ws://{addr}/ws?access_token={}", token(user))
            .into_client_request()
            .expect("req");
        request
            .headers_mut()
            .insert("Origin", origin.parse().expect("header"));
        if let Some(host) = host {
            request
                .headers_mut()
                .insert("Host", host.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(request)
    };
    let status = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP answer, got {other:?}"),
    };
    assert_eq!(status(attempt("https://chat.example", None).await), 101);
    assert_eq!(
        status(attempt("http://evil.example:8080", Some("evil.example:8080")).await),
        403,
        "a Host header the client chose does not make its origin ours"
    );
    assert_eq!(
        status(attempt("http://chat.example", Some("chat.example")).await),
        403,
        "the scheme is part of the origin"
    );
}
