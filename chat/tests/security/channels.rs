//! Hostile channel names (at most 100 characters, no control characters,
//! trimmed) come back byte-equal from the channel and the directory; the
//! directory's search text is a literal, whatever SQL or LIKE it holds.

use crate::http::{self, encode};
use crate::server::{self, Server, User, marker};
use crate::strings::{hostile, of_chars};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The directory's answer for `q` once it lists `expect` channels, or at the deadline.
async fn search(server: &Server, user: &User, q: &str, expect: usize) -> Vec<Value> {
    let target = format!("/api/channels/public?limit=100&q={}", encode(q));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = server.send(&http::get(&target).token(&user.token)).await;
        assert_eq!(reply.status, 200, "q={q:?}: {}", reply.text());
        let channels = reply.json()["channels"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if channels.len() >= expect || Instant::now() > deadline {
            return channels;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_channel_names_are_stored_verbatim() {
    let server = server::server().await;
    let owner = server.user("names").await;
    let m = marker();
    let mut names: Vec<(String, String)> = hostile(&m)
        .into_iter()
        .map(|(what, text)| (what.to_owned(), text))
        .collect();
    names.push(("100 characters of 4 bytes".into(), of_chars(&m, 100)));
    let mut created: Vec<(String, String, Uuid)> = Vec::new();
    for (what, name) in names {
        let id = server.channel(&owner, &name).await;
        created.push((what, name, id));
    }
    for (what, name, id) in &created {
        let deadline = Instant::now() + Duration::from_secs(30);
        let reply = loop {
            let reply = server
                .send(&http::get(&format!("/api/channels/{id}")).token(&owner.token))
                .await;
            if reply.status == 200 || Instant::now() > deadline {
                break reply;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(reply.status, 200, "{what}: {}", reply.text());
        let shown = reply.json()["name"].as_str().unwrap_or_default().to_owned();
        assert_eq!(shown.as_bytes(), name.as_bytes(), "{what}");
    }
    // The directory lists every one of them, byte-equal.
    let listed = search(&server, &owner, &m, created.len()).await;
    for (what, name, id) in &created {
        let entry = listed
            .iter()
            .find(|c| c["channel_id"] == json!(id))
            .unwrap_or_else(|| panic!("{what}: not in the directory"));
        assert_eq!(
            entry["name"].as_str().map(str::as_bytes),
            Some(name.as_bytes()),
            "{what}"
        );
    }

    // Over the limit or with control characters: 422, nothing appended.
    let before = server.events_by(owner.id).await;
    for (what, name) in [
        ("101 characters", of_chars(&m, 101)),
        ("a newline", format!("{m}\nx")),
        ("a tab", format!("{m}\tx")),
        ("a carriage return", format!("{m}\rx")),
        ("an escape sequence", format!("{m}\u{1b}[2J")),
        ("DEL", format!("{m}\u{7f}")),
        ("C1 control", format!("{m}\u{9b}")),
        ("only spaces", "   ".to_owned()),
    ] {
        let body = json!({"name": name, "kind": "public"});
        let reply = server
            .send(&http::post("/api/channels", &body).token(&owner.token))
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (422, "validation_failed"),
            "{what}: {}",
            reply.text()
        );
    }
    assert_eq!(
        server.events_by(owner.id).await,
        before,
        "a refused name was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_search_is_a_literal() {
    let server = server::server().await;
    let owner = server.user("search").await;
    let m = marker();
    let percent = server.channel(&owner, &format!("{m} 100% off")).await;
    let underscore = server.channel(&owner, &format!("{m} a_b")).await;
    let backslash = server.channel(&owner, &format!("{m} back\\slash")).await;
    let plain = server.channel(&owner, &format!("{m} plain abc")).await;
    let quote = server.channel(&owner, &format!("{m} it's")).await;
    let emoji = server.channel(&owner, &format!("{m} 👨‍👩‍👧‍👦 family")).await;
    let all = [percent, underscore, backslash, plain, quote, emoji];
    assert_eq!(
        search(&server, &owner, &m, all.len()).await.len(),
        all.len()
    );

    let ids = |channels: Vec<Value>| -> Vec<Uuid> {
        channels
            .iter()
            .filter_map(|c| c["channel_id"].as_str()?.parse().ok())
            .filter(|id| all.contains(id))
            .collect()
    };
    for (q, expect) in [
        (format!("{m} 100%"), vec![percent]),
        (format!("{m} a_b"), vec![underscore]),
        (format!("{m} a_"), vec![underscore]),
        (format!("{m} _"), vec![]),
        (format!("{m} %"), vec![]),
        (format!("{m} back\\"), vec![backslash]),
        (format!("{m} \\"), vec![]),
        (format!("{m} it'"), vec![quote]),
        (format!("{m} 👨‍👩‍👧‍👦"), vec![emoji]),
        (format!("{m}' OR 1=1 --"), vec![]),
        (format!("{m}'; DROP TABLE events; --"), vec![]),
        (format!("{m} $1"), vec![]),
        (format!("{m} PLAIN"), vec![plain]),
    ] {
        let found = ids(search(&server, &owner, &q, expect.len()).await);
        assert_eq!(found, expect, "q={q:?}");
    }
    // Metacharacters alone match only names that contain them literally.
    for q in ["%", "_", "\\", "%%", "' OR '1'='1"] {
        for channel in search(&server, &owner, q, 0).await {
            let name = channel["name"].as_str().unwrap_or_default();
            assert!(
                name.to_lowercase().contains(&q.to_lowercase()),
                "q={q:?} listed {name:?}"
            );
        }
    }

    // The length limit (100 characters as sent) and U+0000.
    let reply_for = |q: String| {
        let server = server.clone();
        let token = owner.token.clone();
        async move {
            server
                .send(&http::get(&format!("/api/channels/public?q={}", encode(&q))).token(&token))
                .await
        }
    };
    let reply = reply_for(of_chars(&m, 100)).await;
    assert_eq!(reply.status, 200, "100 characters: {}", reply.text());
    for (what, q) in [
        ("101 characters", of_chars(&m, 101)),
        ("U+0000", format!("{m}\0")),
    ] {
        let reply = reply_for(q).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, "invalid_query"),
            "{what}: {}",
            reply.text()
        );
    }
    // Bytes that are not UTF-8 are never a 500.
    let reply = server
        .send(&http::get("/api/channels/public?q=%FF%FE%C3").token(&owner.token))
        .await;
    assert!([200, 400].contains(&reply.status), "{}", reply.text());
}
