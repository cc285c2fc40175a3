//! The server's log never holds a token, a password or a message's content
//! (DESIGN.md §7), also for refused requests and `?access_token=` URLs.

use crate::http;
use crate::server::{self, SECRET, marker};
use crate::ws;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_holds_no_token_password_or_content() {
    let server = server::server().await;
    let m = marker();
    let password = format!("pw-{m}-secret");
    let user = server.register_as(&format!("{m}log"), &password).await;
    let channel = server.channel(&user, "logged").await;
    let content = format!("content-{m}-private");
    let reply = server
        .post_message(&user, channel, &json!({"content": content}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let mut socket = ws::Client::new(ws::connect(server.port, &user.token).await);
    socket.next_of("welcome").await;
    socket
        .send(&json!({"type": "send", "channel_id": channel, "content": content, "client_msg_id": "x"}))
        .await;
    socket.next_of("ack").await;
    // Refusals that carry secrets: a wrong password, a tampered token.
    let wrong = json!({"username": user.username, "password": format!("{password}!")});
    assert_eq!(
        server
            .send(&http::post("/api/auth/token", &wrong))
            .await
            .status,
        401
    );
    let tampered = format!("{}x", user.token);
    let reply = ws::handshake(
        server.port,
        &ws::upgrade(&format!("/ws?access_token={tampered}")),
    )
    .await;
    assert_eq!(reply.status, 401);
    let reply = server
        .send(&http::get("/api/channels").token(&tampered))
        .await;
    assert_eq!(reply.status, 401);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log = server.log();
    assert!(
        log.contains("chat is up"),
        "the log is being captured: {log}"
    );
    let signature = user.token.rsplit('.').next().unwrap_or_default();
    for (what, secret) in [
        ("the password", password.as_str()),
        ("the content", content.as_str()),
        ("the token's signature", signature),
        ("the JWT secret", SECRET),
    ] {
        assert!(!log.contains(secret), "the log holds {what}");
    }
}
