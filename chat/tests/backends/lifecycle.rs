//! What outlives one `chat up` on either backend: the data and the sessions
//! across a graceful restart, and the operators' and analysts' tools on the
//! same data, with the server up and after it stopped.

use crate::api::{self, User};
use crate::http;
use crate::server::{Backend, Server};
use crate::ws::{self, Client};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

both!(
    a_graceful_restart_keeps_history_and_sessions,
    without_a_configured_secret_sessions_last_as_long_as_the_secret,
    the_tools_read_the_same_data,
);

async fn a_graceful_restart_keeps_history_and_sessions(backend: Backend) {
    const BEFORE: u64 = 30;
    let mut server = Server::start(backend).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let channel = server.channel(&alice, "public").await;
    server.join(&bob, channel).await;
    for n in 1..=BEFORE {
        let sender = if n % 2 == 0 { &alice } else { &bob };
        server.post(sender, channel, &format!("before {n}")).await;
    }
    server.wait_for_seq(&bob, channel, BEFORE).await;
    let before = server.history(&bob, channel).await;

    server.stop().await;
    if backend == Backend::Embedded {
        // No CHAT_JWT_SECRET: the one made at first start is kept beside the data.
        assert!(
            server.data_dir().join("jwt-secret").is_file(),
            "the secret is kept in the data directory"
        );
    }
    server.launch().await;

    // The tokens issued before the restart still work, for reads and writes.
    assert_eq!(
        server.history(&bob, channel).await,
        before,
        "history survives"
    );
    let reply = server
        .send(&http::get("/api/channels").token(&alice.token))
        .await;
    assert_eq!(
        reply.status,
        200,
        "a token from before the restart: {}",
        reply.text()
    );
    let mine = reply.json();
    assert!(
        mine.to_string().contains(&channel.to_string()),
        "alice's channels still hold hers: {mine}"
    );
    let (_, seq) = server.post(&alice, channel, "after the restart").await;
    assert_eq!(seq, BEFORE + 1, "seqs continue where they stopped");

    // So does a socket resuming from before the restart.
    let mut client = Client::new(ws::connect(server.port, &bob.token).await);
    client.next_of("welcome").await;
    client
        .send(&json!({"type": "subscribe", "channel_id": channel, "after_seq": BEFORE}))
        .await;
    let message = client.next_of("message").await;
    assert_eq!(
        (&message["seq"], &message["content"]),
        (&json!(BEFORE + 1), &json!("after the restart"))
    );
    // And the credentials: a fresh login.
    assert!(!server.login(&bob.username).await.is_empty());
}

async fn without_a_configured_secret_sessions_last_as_long_as_the_secret(backend: Backend) {
    let mut server = Server::prepare(backend).without_jwt_secret();
    server.launch().await;
    let alice = server.user("alice").await;
    let reply = server
        .send(&http::get("/api/channels").token(&alice.token))
        .await;
    assert_eq!(
        reply.status,
        200,
        "a token of the made-up secret: {}",
        reply.text()
    );
    if backend == Backend::Services {
        assert!(
            server.log().contains("CHAT_JWT_SECRET is not set"),
            "a services server says it made up a secret: {}",
            server.log()
        );
    }

    server.stop().await;
    server.launch().await;
    let reply = server
        .send(&http::get("/api/channels").token(&alice.token))
        .await;
    let expected = match backend {
        // The secret was kept in the data directory.
        Backend::Embedded => 200,
        // The made-up secret died with the process, as its warning said.
        Backend::Services => 401,
    };
    assert_eq!(
        reply.status,
        expected,
        "a token from before the restart: {}",
        reply.text()
    );
    let fresh = server.login(&alice.username).await;
    let reply = server.send(&http::get("/api/channels").token(&fresh)).await;
    assert_eq!(reply.status, 200, "a fresh token: {}", reply.text());
}

/// A small history with an edit and a delete: (admin, channel).
async fn some_history(server: &Server) -> (User, Uuid) {
    let admin = server.admin().await;
    let alice = server.user("alice").await;
    let channel = server.channel(&alice, "public").await;
    server.join(&admin, channel).await;
    let mut last = (Uuid::nil(), 0);
    for n in 1..=10 {
        last = server.post(&alice, channel, &format!("tool {n}")).await;
    }
    let (id, seq) = last;
    let edit = http::Request::new("PATCH", &format!("/api/channels/{channel}/messages/{id}"))
        .token(&alice.token)
        .json(&json!({"content": "edited"}));
    let reply = server.send(&edit).await;
    assert!([200, 204].contains(&reply.status), "edit: {}", reply.text());
    let delete = http::Request::new("DELETE", &format!("/api/channels/{channel}/messages/{id}"))
        .token(&alice.token);
    let reply = server.send(&delete).await;
    assert!(
        [200, 204].contains(&reply.status),
        "delete: {}",
        reply.text()
    );
    server.wait_for_seq(&alice, channel, seq).await;
    (admin, channel)
}

fn event_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

/// `chat status --json` (which must print a JSON object) and `chat events`
/// on the server's data: the events listed.
async fn run_tools(server: &Server) -> Vec<Value> {
    let status = server.tool(&["status", "--json"]).await;
    assert!(
        status.status.success(),
        "chat status --json: {}: {}",
        status.status,
        String::from_utf8_lossy(&status.stderr)
    );
    let parsed: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|e| {
        panic!(
            "chat status --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&status.stdout)
        )
    });
    assert!(parsed.is_object(), "chat status --json: {parsed}");
    let events = server.tool(&["events"]).await;
    assert!(
        events.status.success(),
        "chat events: {}: {}",
        events.status,
        String::from_utf8_lossy(&events.stderr)
    );
    api::ndjson(&events.stdout)
}

/// `chat events` once it lists the events of `served`, in their order (it
/// reads the log as `/api/events` does, so it may lag as that does).
async fn tool_events_matching(server: &Server, served: &[Value]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = run_tools(server).await;
        if event_ids(&listed) == event_ids(served) || Instant::now() >= deadline {
            assert_eq!(
                event_ids(&listed),
                event_ids(served),
                "chat events lists every event, in order"
            );
            return listed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn the_tools_read_the_same_data(backend: Backend) {
    let mut server = Server::start(backend).await;
    let (admin, channel) = some_history(&server).await;

    let outsider = server.user("outsider").await;
    let reply = server
        .send(&http::get("/api/events").token(&outsider.token))
        .await;
    assert_eq!(
        reply.status,
        403,
        "/api/events is for admins: {}",
        reply.text()
    );

    let served = server
        .events_showing(&admin, |events| {
            let registered = events
                .iter()
                .filter(|e| e["event_type"] == "UserRegistered");
            registered.count() == 3 && events.iter().any(|e| e["event_type"] == "MessageDeleted")
        })
        .await;
    let types: Vec<&str> = served
        .iter()
        .filter(|e| e["data"]["channel_id"] == channel.to_string().as_str())
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    let mut expected = vec!["ChannelCreated", "MemberJoined"];
    expected.extend(["MessageSent"; 10]);
    expected.extend(["MessageEdited", "MessageDeleted"]);
    assert_eq!(types, expected, "the channel's events in order");
    assert_eq!(
        served
            .iter()
            .filter(|e| e["event_type"] == "UserRegistered")
            .count(),
        3,
        "three users registered"
    );
    assert!(
        served.iter().all(|e| e["cursor"].is_string()),
        "each line has its cursor"
    );

    let listed = tool_events_matching(&server, &served).await;
    assert_eq!(listed, served, "the same envelopes as GET /api/events");

    // And with chat up stopped.
    server.stop().await;
    tool_events_matching(&server, &served).await;
}
