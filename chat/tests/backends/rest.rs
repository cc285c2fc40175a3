//! The HTTP contract (DESIGN §6) on either backend: what `chat up` says at
//! start, a conversation and its paged history, idempotent retries, and the
//! refusals with their statuses.

use crate::api::{Shown, User};
use crate::http;
use crate::server::{Backend, Server};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

both!(
    startup_names_the_backend_and_why,
    history_pages_through_a_thousand_and_one_concurrent_sends,
    retries_answer_the_first_result,
    refusals_have_their_status,
);

async fn startup_names_the_backend_and_why(backend: Backend) {
    let server = Server::start(backend).await;
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix:?} in: {log}"))
    };
    let (said, data, open) = (
        at("chat: backend "),
        at("chat: data in "),
        at("chat: open "),
    );
    assert!(said < data && data < open, "in order: {log}");
    let why = match backend {
        Backend::Embedded => {
            "chat: backend embedded (none of CHAT_DATABASE_URL, CHAT_READ_DATABASE_URL, CHAT_AMQP_URL, CHAT_REDIS_URL is set)"
        }
        Backend::Services => "chat: backend services (CHAT_DATABASE_URL is set)",
    };
    assert_eq!(lines[said], why);
    match backend {
        Backend::Embedded => assert_eq!(
            lines[data],
            format!("chat: data in {}", server.data_dir().display())
        ),
        Backend::Services => {
            let (log_db, read_db, _) = server.database_names();
            assert!(
                lines[data].contains(&log_db) && lines[data].contains(&read_db),
                "{}",
                lines[data]
            );
        }
    }
    assert_eq!(
        lines[open],
        format!("chat: open http://127.0.0.1:{}/", server.port)
    );
}

async fn history_pages_through_a_thousand_and_one_concurrent_sends(backend: Backend) {
    const MESSAGES: u64 = 1001;
    const TASKS: u64 = 8;
    let server = Server::start(backend).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let channel = server.channel(&alice, "public").await;
    server.join(&bob, channel).await;

    let senders: Vec<_> = (0..TASKS)
        .map(|task| {
            let user = if task % 2 == 0 { &alice } else { &bob }.clone();
            let port = server.port;
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in (task..MESSAGES).step_by(TASKS as usize) {
                    let content = format!("message {n}");
                    let reply =
                        http::send(port, &Server::post_request(&user, channel, &content)).await;
                    assert_eq!(reply.status, 201, "send {n}: {}", reply.text());
                    let body = reply.json();
                    acked.push((
                        body["seq"].as_u64().expect("seq"),
                        (
                            body["message_id"].as_str().expect("message_id").to_owned(),
                            content,
                            user.id,
                        ),
                    ));
                }
                acked
            })
        })
        .collect();
    let mut acked = BTreeMap::new();
    for sender in senders {
        for (seq, message) in sender.await.expect("a sender") {
            assert!(
                acked.insert(seq, message).is_none(),
                "seq {seq} given twice"
            );
        }
    }
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (1..=MESSAGES).collect::<Vec<_>>(),
        "the channel's seqs are 1..=1001"
    );

    server.wait_for_seq(&bob, channel, MESSAGES).await;
    let history = server.history(&bob, channel).await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=MESSAGES).rev().collect::<Vec<_>>(),
        "each seq once, newest first"
    );
    for shown in &history {
        let (id, content, sender) = &acked[&shown.seq];
        assert_eq!(
            shown,
            &Shown {
                message_id: id.clone(),
                seq: shown.seq,
                sender_id: sender.to_string(),
                content: Some(content.clone()),
                edited: false,
                deleted: false,
            }
        );
    }

    // The edges of the cursors and the clamp.
    let (page, has_more) = server.page(&bob, channel, "limit=1000").await;
    assert_eq!(
        (page.len(), has_more),
        (100, true),
        "limit is clamped to 100"
    );
    let (page, has_more) = server.page(&bob, channel, "").await;
    assert_eq!((page.len(), has_more), (50, true), "limit defaults to 50");
    let (page, has_more) = server.page(&bob, channel, "before=2").await;
    assert_eq!(page.len(), 1);
    assert_eq!((page[0]["seq"].as_u64(), has_more), (Some(1), false));
    let (page, _) = server.page(&bob, channel, "after=999").await;
    let newest: Vec<_> = page.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(newest, vec![1001, 1000], "after is exclusive, newest first");
}

async fn retries_answer_the_first_result(backend: Backend) {
    let server = Server::start(backend).await;
    let alice = server.user("alice").await;
    let channel = server.channel(&alice, "public").await;
    let (_, first) = server.post(&alice, channel, "before the retries").await;

    let keyed = Server::post_request(&alice, channel, "keyed").header("Idempotency-Key", "key-1");
    let (once, again) = (server.send(&keyed).await, server.send(&keyed).await);
    assert_eq!(once.status, 201, "{}", once.text());
    assert_eq!(
        (again.status, &again.body, again.header("etag")),
        (once.status, &once.body, once.header("etag")),
        "the same Idempotency-Key answers the first result"
    );

    let path = format!("/api/channels/{channel}/messages");
    let by_client_id = |content: &str| {
        http::post(
            &path,
            &json!({"content": content, "type": "text", "client_msg_id": "client-1"}),
        )
        .token(&alice.token)
    };
    let once = server.send(&by_client_id("first")).await;
    let again = server.send(&by_client_id("whatever the content")).await;
    assert_eq!(once.status, 201, "{}", once.text());
    assert_eq!(
        (again.status, &again.body),
        (once.status, &once.body),
        "the same client_msg_id answers the first result"
    );

    // Nothing was appended by the retries: the next message is the fourth.
    let (_, next) = server.post(&alice, channel, "after the retries").await;
    assert_eq!(next, first + 3);
    server.wait_for_seq(&alice, channel, next).await;
    let contents: Vec<Option<String>> = server
        .history(&alice, channel)
        .await
        .into_iter()
        .map(|m| m.content)
        .collect();
    let expected = ["after the retries", "first", "keyed", "before the retries"];
    assert_eq!(contents, expected.map(|c| Some(c.to_owned())));
}

async fn refusals_have_their_status(backend: Backend) {
    let server = Server::start(backend).await;
    let (alice, mallory) = (server.user("alice").await, server.user("mallory").await);
    let channel = server.channel(&alice, "public").await;
    let private = server.channel(&alice, "private").await;

    // If-Match with an ETag the channel has moved past.
    let sent = server
        .send(&Server::post_request(&alice, channel, "one"))
        .await;
    assert_eq!(sent.status, 201, "{}", sent.text());
    let stale = sent.header("etag").expect("an ETag").to_owned();
    server.post(&alice, channel, "two").await;
    let pinned = Server::post_request(&alice, channel, "three").header("If-Match", &stale);
    let reply = server.send(&pinned).await;
    assert_eq!(
        (reply.status, reply.code()),
        (409, "version_conflict".into()),
        "{}",
        reply.text()
    );
    // The current one still applies.
    let current = server
        .send(&Server::post_request(&alice, channel, "four"))
        .await;
    let etag = current.header("etag").expect("an ETag").to_owned();
    let pinned = Server::post_request(&alice, channel, "five").header("If-Match", &etag);
    assert_eq!(server.send(&pinned).await.status, 201);

    let unknown = Uuid::new_v4();
    let reply = server
        .send(&Server::post_request(&alice, unknown, "hello"))
        .await;
    assert_eq!(
        reply.status,
        404,
        "send to an unknown channel: {}",
        reply.text()
    );
    let reply = server
        .send(&http::get(&format!("/api/channels/{unknown}/messages")).token(&alice.token))
        .await;
    assert_eq!(
        reply.status,
        404,
        "history of an unknown channel: {}",
        reply.text()
    );

    let reply = server
        .send(&Server::post_request(&mallory, private, "let me in"))
        .await;
    assert_eq!(
        reply.status,
        403,
        "a non-member posting privately: {}",
        reply.text()
    );

    let forged = User {
        token: format!("{}x", alice.token),
        ..alice.clone()
    };
    let reply = server
        .send(&Server::post_request(&forged, channel, "hi"))
        .await;
    assert_eq!(reply.status, 401, "a bad token: {}", reply.text());
    let reply = server
        .send(&http::get("/api/channels").token("not-a-jwt"))
        .await;
    assert_eq!(reply.status, 401, "a bad token: {}", reply.text());

    let reply = server
        .send(
            &http::Request::new("POST", &format!("/api/channels/{channel}/messages"))
                .token(&alice.token)
                .raw_body(b"{\"content\": \"unterminated".to_vec()),
        )
        .await;
    assert_eq!(reply.status, 400, "malformed JSON: {}", reply.text());

    // None of the refused sends reached the log: had one, it would show
    // before this last one, sent after them all.
    server.post(&alice, channel, "last").await;
    let admin = server.admin().await;
    let is_last = |e: &serde_json::Value| e["data"]["content"] == "last";
    let sent: BTreeSet<String> = server
        .events_showing(&admin, |events| events.iter().any(is_last))
        .await
        .iter()
        .filter(|e| e["event_type"] == "MessageSent")
        .filter_map(|e| e["data"]["content"].as_str().map(str::to_owned))
        .collect();
    let expected: BTreeSet<String> = ["one", "two", "four", "five", "last"]
        .map(String::from)
        .into();
    assert_eq!(sent, expected);
}
