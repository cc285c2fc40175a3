//! The WebSocket contract (DESIGN §7) on either backend: welcome, live
//! messages, resume by `after_seq` with no gap and no duplicate, sends with
//! acks, edits and deletes, and a kick ending the subscription.

use crate::api::User;
use crate::http;
use crate::server::{Backend, Server};
use crate::ws::{self, Client};
use serde_json::{Value, json};
use uuid::Uuid;

both!(
    welcome_then_live_messages_from_another_user,
    resume_replays_exactly_the_missed_then_lives,
    send_over_the_socket_is_acked_once,
    edits_and_deletes_arrive,
    a_kicked_member_is_unsubscribed,
);

/// A socket as `user`, past its `welcome`.
async fn connect(server: &Server, user: &User) -> Client {
    let mut client = Client::new(ws::connect(server.port, &user.token).await);
    let welcome = client.next_of("welcome").await;
    assert_eq!(welcome["user_id"], user.id.to_string(), "{welcome}");
    assert!(
        welcome["heartbeat_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms < 60_000),
        "{welcome}"
    );
    client
}

/// Subscribes `client` to `channel` (from `after_seq` if given): the `subscribed` frame.
async fn subscribe(client: &mut Client, channel: Uuid, after_seq: Option<u64>) -> Value {
    let mut frame = json!({"type": "subscribe", "id": "sub", "channel_id": channel});
    if let Some(seq) = after_seq {
        frame["after_seq"] = json!(seq);
    }
    client.send(&frame).await;
    let subscribed = client.next_of("subscribed").await;
    assert_eq!(
        subscribed["channel_id"],
        channel.to_string(),
        "{subscribed}"
    );
    subscribed
}

/// The next `message` frame's seq, checked to be of `channel`.
async fn next_seq(client: &mut Client, channel: Uuid) -> u64 {
    let message = client.next_of("message").await;
    assert_eq!(message["channel_id"], channel.to_string(), "{message}");
    message["seq"].as_u64().expect("seq")
}

async fn welcome_then_live_messages_from_another_user(backend: Backend) {
    let server = Server::start(backend).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let channel = server.channel(&alice, "public").await;
    server.join(&bob, channel).await;
    let mut client = connect(&server, &alice).await;
    let subscribed = subscribe(&mut client, channel, None).await;
    assert_eq!(subscribed["recovered"], false, "{subscribed}");

    for n in 1..=3u64 {
        let (id, seq) = server.post(&bob, channel, &format!("live {n}")).await;
        let message = client.next_of("message").await;
        assert_eq!(
            (
                &message["channel_id"],
                &message["seq"],
                &message["message_id"],
                &message["sender_id"],
                &message["content"],
                &message["message_type"],
            ),
            (
                &json!(channel),
                &json!(seq),
                &json!(id),
                &json!(bob.id),
                &json!(format!("live {n}")),
                &json!("text"),
            ),
            "{message}"
        );
        assert!(message["created_at"].is_string(), "{message}");
    }
}

async fn resume_replays_exactly_the_missed_then_lives(backend: Backend) {
    const SEEN: u64 = 5;
    const MISSED: u64 = 300;
    const LIVE: u64 = 20;
    let server = Server::start(backend).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let channel = server.channel(&alice, "public").await;
    server.join(&bob, channel).await;

    let mut client = connect(&server, &alice).await;
    subscribe(&mut client, channel, None).await;
    for n in 1..=SEEN {
        server.post(&bob, channel, &format!("seen {n}")).await;
        assert_eq!(next_seq(&mut client, channel).await, n);
    }
    drop(client);

    // Missed while away, from several senders at once.
    let port = server.port;
    let senders: Vec<_> = (0..4)
        .map(|task| {
            let bob = bob.clone();
            tokio::spawn(async move {
                for n in (task..MISSED).step_by(4) {
                    let request = Server::post_request(&bob, channel, &format!("missed {n}"));
                    assert_eq!(http::send(port, &request).await.status, 201);
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("a sender");
    }

    // Live sends race the replay: the boundary between them must not show.
    let mut client = connect(&server, &alice).await;
    let live = {
        let bob = bob.clone();
        tokio::spawn(async move {
            for n in 0..LIVE {
                let request = Server::post_request(&bob, channel, &format!("live {n}"));
                assert_eq!(http::send(port, &request).await.status, 201);
            }
        })
    };
    let subscribed = subscribe(&mut client, channel, Some(SEEN)).await;
    assert_eq!(subscribed["recovered"], true, "{subscribed}");
    let last = SEEN + MISSED + LIVE;
    let mut seqs = Vec::new();
    while seqs.last().is_none_or(|&seq| seq < last) {
        seqs.push(next_seq(&mut client, channel).await);
    }
    assert_eq!(
        seqs,
        (SEEN + 1..=last).collect::<Vec<_>>(),
        "no gap, no duplicate, in order"
    );
    live.await.expect("the live sender");

    // A duplicate of anything already delivered would come before this one.
    let (_, sentinel) = server.post(&bob, channel, "sentinel").await;
    assert_eq!(sentinel, last + 1);
    assert_eq!(next_seq(&mut client, channel).await, sentinel);
}

async fn send_over_the_socket_is_acked_once(backend: Backend) {
    let server = Server::start(backend).await;
    let alice = server.user("alice").await;
    let channel = server.channel(&alice, "public").await;
    let mut client = connect(&server, &alice).await;
    subscribe(&mut client, channel, None).await;

    let send = json!({
        "type": "send", "id": "s1", "channel_id": channel,
        "content": "over the socket", "client_msg_id": "socket-1",
    });
    client.send(&send).await;
    let ack = client.next_of("ack").await;
    assert_eq!(
        (&ack["id"], &ack["client_msg_id"], &ack["seq"]),
        (&json!("s1"), &json!("socket-1"), &json!(1)),
        "{ack}"
    );
    assert!(ack["message_id"].is_string(), "{ack}");
    let pushed = client.next_of("message").await;
    assert_eq!(
        (&pushed["message_id"], &pushed["content"]),
        (&ack["message_id"], &json!("over the socket"))
    );

    // A retry answers the first ack and sends nothing.
    client
        .send(&json!({
            "type": "send", "id": "s2", "channel_id": channel,
            "content": "retried", "client_msg_id": "socket-1",
        }))
        .await;
    let again = client.next_of("ack").await;
    assert_eq!(
        (&again["message_id"], &again["seq"]),
        (&ack["message_id"], &ack["seq"]),
        "{again}"
    );
    let (_, next) = server.post(&alice, channel, "next").await;
    assert_eq!(next, 2, "the retry appended nothing");
    assert_eq!(
        next_seq(&mut client, channel).await,
        2,
        "no second push of the retried send"
    );
}

async fn edits_and_deletes_arrive(backend: Backend) {
    let server = Server::start(backend).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let channel = server.channel(&alice, "public").await;
    server.join(&bob, channel).await;
    let mut watcher = connect(&server, &alice).await;
    subscribe(&mut watcher, channel, None).await;
    let (id, seq) = server.post(&bob, channel, "typo").await;
    assert_eq!(next_seq(&mut watcher, channel).await, seq);

    // Bob edits over his socket, then deletes over HTTP.
    let mut editor = connect(&server, &bob).await;
    editor
        .send(&json!({"type": "edit", "id": "e1", "channel_id": channel, "message_id": id, "content": "fixed"}))
        .await;
    let ack = editor.next_of("ack").await;
    assert_eq!(ack["id"], "e1", "{ack}");
    let edited = watcher.next_of("message_edited").await;
    assert_eq!(
        (
            &edited["channel_id"],
            &edited["message_id"],
            &edited["seq"],
            &edited["content"]
        ),
        (&json!(channel), &json!(id), &json!(seq), &json!("fixed")),
        "{edited}"
    );
    assert!(edited["edited_at"].is_string(), "{edited}");

    let reply = server
        .send(
            &http::Request::new("DELETE", &format!("/api/channels/{channel}/messages/{id}"))
                .token(&bob.token),
        )
        .await;
    assert!(
        [200, 204].contains(&reply.status),
        "delete: {}",
        reply.text()
    );
    let deleted = watcher.next_of("message_deleted").await;
    assert_eq!(
        (
            &deleted["channel_id"],
            &deleted["message_id"],
            &deleted["seq"]
        ),
        (&json!(channel), &json!(id), &json!(seq)),
        "{deleted}"
    );
    let history = server.history(&alice, channel).await;
    assert!(
        history[0].deleted && history[0].content.is_none(),
        "a tombstone: {history:?}"
    );
}

async fn a_kicked_member_is_unsubscribed(backend: Backend) {
    let server = Server::start(backend).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let channel = server.channel(&alice, "public").await;
    server.join(&bob, channel).await;
    let mut client = connect(&server, &bob).await;
    subscribe(&mut client, channel, None).await;

    let reply = server
        .send(
            &http::Request::new(
                "DELETE",
                &format!("/api/channels/{channel}/members/{}", bob.id),
            )
            .token(&alice.token),
        )
        .await;
    assert!([200, 204].contains(&reply.status), "kick: {}", reply.text());
    let unsubscribed = client.next_of("unsubscribed").await;
    assert_eq!(
        (&unsubscribed["channel_id"], &unsubscribed["reason"]),
        (&json!(channel), &json!("kicked")),
        "{unsubscribed}"
    );
    // Nor can he send there any more.
    client
        .send(&json!({
            "type": "send", "id": "after-kick", "channel_id": channel,
            "content": "still here?", "client_msg_id": "after-kick",
        }))
        .await;
    let refused = client.next_of("error").await;
    assert_eq!(refused["id"], "after-kick", "{refused}");
}
