//! Hostile message contents, `client_msg_id`s and `Idempotency-Key`s, sent
//! over REST and over the socket: stored ones come back byte-equal from the
//! history API and in `message` frames; over-limit ones are refused with the
//! §6 error and append nothing.

use crate::http;
use crate::server::{self, marker};
use crate::strings::{hostile, of_chars};
use crate::ws;
use serde_json::json;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_contents_round_trip_over_rest_and_the_socket() {
    let server = server::server().await;
    let sender = server.user("content").await;
    let channel = server.channel(&sender, "contents").await;
    let m = marker();
    let mut socket = ws::Client::new(ws::connect(server.port, &sender.token).await);
    socket.next_of("welcome").await;
    socket
        .send(&json!({"type": "subscribe", "channel_id": channel}))
        .await;
    socket.next_of("subscribed").await;

    let mut contents: Vec<(String, String)> = hostile(&m)
        .into_iter()
        .map(|(what, text)| (what.to_owned(), text))
        .collect();
    contents.push((
        "newlines and tabs".into(),
        format!("{m}\r\nline two\n\ttabbed\u{b}\u{c}"),
    ));
    contents.push(("4000 characters of 4 bytes".into(), of_chars(&m, 4000)));
    contents.push(("leading and trailing spaces".into(), format!("  {m}  ")));

    // Over REST, then the same over the socket's `send`.
    let mut sent: HashMap<u64, (String, String)> = HashMap::new();
    for (what, content) in &contents {
        let reply = server
            .post_message(&sender, channel, &json!({"content": content}))
            .await;
        assert_eq!(reply.status, 201, "REST {what}: {}", reply.text());
        let seq = reply.json()["seq"].as_u64().expect("seq");
        sent.insert(seq, (format!("REST {what}"), content.clone()));
    }
    for (i, (what, content)) in contents.iter().enumerate() {
        let frame = json!({"type": "send", "id": i, "channel_id": channel, "content": content, "client_msg_id": format!("c{i}")});
        socket.send(&frame).await;
        let ack = socket.next_of("ack").await;
        assert_eq!(
            ack["client_msg_id"],
            json!(format!("c{i}")),
            "WS {what}: {ack}"
        );
        let seq = ack["seq"].as_u64().expect("seq");
        sent.insert(seq, (format!("WS {what}"), content.clone()));
    }
    let last = sent.keys().copied().max().expect("something was sent");

    // Every `message` frame carries its content byte-equal.
    let mut pushed: HashMap<u64, String> = HashMap::new();
    while pushed.len() < sent.len() {
        let frame = socket.next_of("message").await;
        let seq = frame["seq"].as_u64().expect("seq");
        pushed.insert(
            seq,
            frame["content"].as_str().unwrap_or_default().to_owned(),
        );
    }
    // And so does the history.
    let history: HashMap<u64, String> = server
        .messages_up_to(&sender, channel, last)
        .await
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap_or(0),
                m["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (seq, (what, content)) in &sent {
        assert_eq!(
            pushed.get(seq).map(String::as_bytes),
            Some(content.as_bytes()),
            "pushed {what}"
        );
        assert_eq!(
            history.get(seq).map(String::as_bytes),
            Some(content.as_bytes()),
            "history {what}"
        );
    }

    // An edit with hostile text is stored as sent too.
    let edited = format!("'; UPDATE events SET data = '{{}}'; -- {m} 😀");
    let message_id = server
        .messages_up_to(&sender, channel, last)
        .await
        .first()
        .and_then(|m| m["message_id"].as_str().map(String::from))
        .expect("a message id");
    let reply = server
        .send(
            &http::Request::new(
                "PATCH",
                &format!("/api/channels/{channel}/messages/{message_id}"),
            )
            .json(&json!({"content": edited}))
            .token(&sender.token),
        )
        .await;
    assert_eq!(reply.status, 200, "edit: {}", reply.text());
    let frame = socket.next_of("message_edited").await;
    assert_eq!(
        frame["content"].as_str().map(str::as_bytes),
        Some(edited.as_bytes())
    );

    // Over the limit, empty or blank: 422 over REST, an error frame over the
    // socket, and nothing appended either way.
    let before = server.events_by(sender.id).await;
    for (what, content) in [
        ("4001 characters", of_chars(&m, 4001)),
        ("empty", String::new()),
        ("blank", " \n\t ".to_owned()),
    ] {
        let reply = server
            .post_message(&sender, channel, &json!({"content": content}))
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (422, "validation_failed"),
            "REST {what}: {}",
            reply.text()
        );
        let frame = json!({"type": "send", "id": what, "channel_id": channel, "content": content, "client_msg_id": what});
        socket.send(&frame).await;
        let error = socket.next_of("error").await;
        assert_eq!(
            (error["code"].as_str(), &error["id"]),
            (Some("validation_failed"), &json!(what)),
            "WS {what}"
        );
    }
    assert_eq!(
        server.events_by(sender.id).await,
        before,
        "a refused message was appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_client_msg_ids_name_one_message_each() {
    let server = server::server().await;
    let sender = server.user("cmid").await;
    let channel = server.channel(&sender, "client ids").await;
    let m = marker();
    let mut socket = ws::Client::new(ws::connect(server.port, &sender.token).await);
    socket.next_of("welcome").await;
    let mut ids: Vec<(String, String)> = hostile(&m)
        .into_iter()
        .map(|(what, text)| (what.to_owned(), text))
        .collect();
    ids.push(("200 characters of 4 bytes".into(), of_chars(&m, 200)));
    ids.push(("a newline".into(), format!("{m}\nx")));
    for (what, id) in &ids {
        let body = json!({"content": "first", "client_msg_id": id});
        let first = server.post_message(&sender, channel, &body).await;
        assert_eq!(first.status, 201, "{what}: {}", first.text());
        let before = server.events_by(sender.id).await;
        // A retry over REST or the socket answers the first result, appending nothing.
        let again = server
            .post_message(
                &sender,
                channel,
                &json!({"content": "other", "client_msg_id": id}),
            )
            .await;
        assert_eq!(again.status, 201, "{what}: {}", again.text());
        assert_eq!(
            again.json()["message_id"],
            first.json()["message_id"],
            "{what}"
        );
        socket.send(&json!({"type": "send", "channel_id": channel, "content": "ws", "client_msg_id": id})).await;
        let ack = socket.next_of("ack").await;
        assert_eq!(
            ack["client_msg_id"].as_str().map(str::as_bytes),
            Some(id.as_bytes()),
            "{what}"
        );
        assert_eq!(ack["message_id"], first.json()["message_id"], "{what}");
        assert_eq!(
            server.events_by(sender.id).await,
            before,
            "{what}: a retry appended"
        );
    }
    let before = server.events_by(sender.id).await;
    for (what, id) in [
        ("201 characters", of_chars(&m, 201)),
        ("empty", String::new()),
    ] {
        let reply = server
            .post_message(
                &sender,
                channel,
                &json!({"content": "x", "client_msg_id": id}),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (422, "validation_failed"),
            "REST {what}: {}",
            reply.text()
        );
        socket.send(&json!({"type": "send", "id": 5, "channel_id": channel, "content": "x", "client_msg_id": id})).await;
        let error = socket.next_of("error").await;
        assert_eq!(error["code"], "validation_failed", "WS {what}: {error}");
    }
    assert_eq!(server.events_by(sender.id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_idempotency_keys_replay_or_are_refused() {
    let server = server::server().await;
    let user = server.user("idem").await;
    let m = marker();
    let send = |key: Vec<u8>, name: String| {
        let server = server.clone();
        let token = user.token.clone();
        async move {
            server
                .send(
                    &http::post("/api/channels", &json!({"name": name, "kind": "public"}))
                        .token(&token)
                        .header("Idempotency-Key", key),
                )
                .await
        }
    };
    // 1 to 200 visible ASCII characters, whatever they mean to SQL or LIKE.
    for key in [
        format!("';DROP_TABLE_events;--{m}"),
        format!("\"OR\"1\"=\"1\"--{m}"),
        format!("\\\\{m}\\"),
        format!("$1{m}$2"),
        "%".to_owned(),
        "_".to_owned(),
        format!("{m}{}", "x".repeat(200 - m.len())),
    ] {
        let first = send(key.clone().into_bytes(), format!("{m} idem")).await;
        assert_eq!(first.status, 201, "{key:?}: {}", first.text());
        let before = server.events_by(user.id).await;
        let again = send(key.clone().into_bytes(), format!("{m} idem")).await;
        assert_eq!(again.status, 201, "{key:?}: {}", again.text());
        assert_eq!(
            again.json()["channel_id"],
            first.json()["channel_id"],
            "{key:?}"
        );
        assert_eq!(
            server.events_by(user.id).await,
            before,
            "{key:?}: the replay appended"
        );
        // The same key for another body is the draft's 422.
        let other = send(key.clone().into_bytes(), format!("{m} other")).await;
        assert_eq!(
            (other.status, other.code().as_str()),
            (422, "idempotency_key_reused"),
            "{key:?}: {}",
            other.text()
        );
    }
    let before = server.events_by(user.id).await;
    for (what, key) in [
        (
            "201 characters",
            format!("{m}{}", "x".repeat(201 - m.len())).into_bytes(),
        ),
        ("a space", format!("{m} x").into_bytes()),
        ("a tab", format!("{m}\tx").into_bytes()),
        ("UTF-8", format!("{m}😀").into_bytes()),
        ("Latin-1", b"mk\xe9t\xe9".to_vec()),
        ("empty", Vec::new()),
    ] {
        let reply = send(key, format!("{m} refused")).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, "invalid_idempotency_key"),
            "{what}: {}",
            reply.text()
        );
    }
    assert_eq!(
        server.events_by(user.id).await,
        before,
        "a refused key appended"
    );
}
