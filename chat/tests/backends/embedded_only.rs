//! What only the embedded backend has: one `chat up` owns its data
//! directory, and a `kill -9` loses nothing it acknowledged (SQLite with
//! synchronous=FULL, the projector resuming from its checkpoint).

use crate::api::{self, User};
use crate::http;
use crate::server::{Backend, Server, free_port};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_up_on_the_same_directory_is_refused() {
    let server = Server::start(Backend::Embedded).await;
    let mut second = tokio::process::Command::from(server.command(&["up"]));
    second
        .env("CHAT_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), second.output())
        .await
        .expect("the second chat up gives up within 30 s")
        .expect("the second chat up runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    // Past the three lines every start says first, one line: the refusal.
    let rest: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !["chat: backend ", "chat: data in ", "chat: open "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(rest.len(), 1, "one line: {stderr}");
    assert!(rest[0].contains("in use"), "{stderr}");
    assert!(
        rest[0].contains(&server.data_dir().display().to_string()),
        "names the directory: {stderr}"
    );

    // The first one still serves.
    let reply = server.send(&http::get("/ready")).await;
    assert_eq!(reply.status, 200, "the owner is unharmed: {}", reply.text());
}

/// What the senders were told before the kill.
#[derive(Default)]
struct Acknowledged {
    /// seq → (message id, content).
    sent: BTreeMap<u64, (String, String)>,
    edited: BTreeSet<String>,
    deleted: BTreeSet<String>,
    /// Messages an edit or delete was sent for, answered or not: one in
    /// flight at the kill may have committed without its answer arriving.
    touched: BTreeSet<String>,
}

fn note(acked: &Mutex<Acknowledged>) -> MutexGuard<'_, Acknowledged> {
    acked.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sends as `user` until the server goes away, recording every 201 (and,
/// with `churn`, edits every 5th message and deletes every 7th).
async fn send_until_gone(
    port: u16,
    user: User,
    channel: Uuid,
    task: usize,
    churn: bool,
    acked: Arc<Mutex<Acknowledged>>,
    count: Arc<AtomicUsize>,
) {
    for n in 0.. {
        let content = format!("task {task} message {n}");
        let Ok(reply) = http::try_send(port, &Server::post_request(&user, channel, &content)).await
        else {
            return;
        };
        assert_eq!(
            reply.status,
            201,
            "a send before the kill: {}",
            reply.text()
        );
        let body = reply.json();
        let id = body["message_id"].as_str().expect("message_id").to_owned();
        let seq = body["seq"].as_u64().expect("seq");
        let first = note(&acked).sent.insert(seq, (id.clone(), content));
        assert!(first.is_none(), "seq {seq} given twice");
        count.fetch_add(1, Ordering::SeqCst);
        if !churn {
            continue;
        }
        let target = format!("/api/channels/{channel}/messages/{id}");
        if n % 5 == 0 || n % 7 == 0 {
            note(&acked).touched.insert(id.clone());
        }
        if n % 5 == 0 {
            let edit = http::Request::new("PATCH", &target)
                .token(&user.token)
                .json(&json!({"content": format!("edited {n}")}));
            match http::try_send(port, &edit).await {
                Ok(reply) => {
                    assert!(
                        [200, 204].contains(&reply.status),
                        "an edit: {}",
                        reply.text()
                    );
                    note(&acked).edited.insert(id.clone());
                }
                Err(_) => return,
            }
        }
        if n % 7 == 0 {
            let delete = http::Request::new("DELETE", &target).token(&user.token);
            match http::try_send(port, &delete).await {
                Ok(reply) => {
                    assert!(
                        [200, 204].contains(&reply.status),
                        "a delete: {}",
                        reply.text()
                    );
                    note(&acked).deleted.insert(id.clone());
                }
                Err(_) => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_sends_loses_no_acknowledged_message() {
    const TASKS: usize = 6;
    const ACKED_BEFORE_KILL: usize = 400;
    let mut server = Server::start(Backend::Embedded).await;
    let (alice, bob) = (server.user("alice").await, server.user("bob").await);
    let channel = server.channel(&alice, "public").await;
    server.join(&bob, channel).await;

    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let count = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..TASKS)
        .map(|task| {
            let user = if task % 2 == 0 { &alice } else { &bob }.clone();
            tokio::spawn(send_until_gone(
                server.port,
                user,
                channel,
                task,
                task < 2,
                acked.clone(),
                count.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "{ACKED_BEFORE_KILL} sends not acknowledged within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().await;
    for sender in senders {
        sender.await.expect("a sender");
    }
    let acked = Arc::try_unwrap(acked)
        .ok()
        .expect("the senders are done")
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);

    // The same directory: the lock died with the process.
    server.launch().await;
    let admin = server.admin().await;
    let events = server.events(&admin).await;
    let sent: Vec<u64> = events
        .iter()
        .filter(|e| {
            e["event_type"] == "MessageSent"
                && e["data"]["channel_id"] == channel.to_string().as_str()
        })
        .filter_map(|e| e["data"]["seq"].as_u64())
        .collect();
    let last = sent.len() as u64;
    let mut seqs = sent.clone();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=last).collect::<Vec<_>>(),
        "the channel's seqs are 1..=N with no hole"
    );
    assert!(
        last >= acked.sent.len() as u64,
        "at least every acknowledged send is logged"
    );

    server.wait_for_seq(&alice, channel, last).await;
    let history = server.history(&alice, channel).await;
    assert_eq!(
        history,
        api::fold(&events, channel),
        "the read model is the fold of the log"
    );
    let by_seq: BTreeMap<u64, &api::Shown> = history.iter().map(|m| (m.seq, m)).collect();
    for (seq, (id, content)) in &acked.sent {
        let shown = by_seq
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} is lost"));
        assert_eq!(
            &shown.message_id, id,
            "seq {seq} is the acknowledged message"
        );
        if !acked.touched.contains(id) {
            assert_eq!(shown.content.as_ref(), Some(content), "seq {seq}'s content");
        }
        assert_eq!(
            history.iter().filter(|m| &m.message_id == id).count(),
            1,
            "{id} once"
        );
    }
    for id in &acked.edited {
        assert!(
            events
                .iter()
                .any(|e| e["event_type"] == "MessageEdited"
                    && e["data"]["message_id"] == id.as_str()),
            "the acknowledged edit of {id} is logged"
        );
    }
    for id in &acked.deleted {
        assert!(
            history.iter().any(|m| &m.message_id == id && m.deleted),
            "the acknowledged delete of {id} shows"
        );
    }
}
