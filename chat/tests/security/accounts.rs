//! Hostile usernames, passwords and display names. Usernames are 3–32 of
//! `[A-Za-z0-9_.-]`, so hostile ones are a 422 that registers nothing;
//! passwords (8 characters to 1024 bytes) are any text and must work byte
//! for byte; display names (at most 64 characters, no control characters)
//! come back exactly as sent.

use crate::http;
use crate::server::{self, marker};
use crate::strings::{hostile, of_chars};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_usernames_are_refused_and_register_nothing() {
    let server = server::server().await;
    let m = marker();
    let mut names: Vec<(String, String)> = hostile(&m)
        .into_iter()
        .map(|(what, text)| (what.to_owned(), text))
        .collect();
    names.push((
        "33 characters".into(),
        format!("{m}{}", "a".repeat(33 - m.len())),
    ));
    names.push(("2 characters".into(), "ab".into()));
    names.push(("a space".into(), format!("{m} x")));
    names.push(("a newline".into(), format!("{m}\nx")));
    names.push(("a slash".into(), format!("{m}/../x")));
    names.push(("fullwidth letters".into(), format!("{m}ＡＢ")));
    for (what, username) in &names {
        let body = json!({"username": username, "password": "correct horse battery"});
        let reply = server.send(&http::post("/api/users", &body)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (422, "validation_failed"),
            "register {what}: {}",
            reply.text()
        );
        let reply = server.send(&http::post("/api/auth/token", &body)).await;
        assert!(
            (reply.status == 401 && reply.code() == "invalid_credentials")
                || (reply.status == 422 && reply.code() == "validation_failed"),
            "log in as {what}: {}",
            reply.text()
        );
    }
    assert_eq!(
        server.events_mentioning(&m).await,
        0,
        "a hostile username was stored"
    );

    // The edges: 3 and 32 characters of every allowed kind register.
    for username in [
        m[..3].to_owned(),
        format!("{m}{}", "_.-".repeat(10))
            .chars()
            .take(32)
            .collect::<String>(),
    ] {
        let user = server.register_as(&username, "correct horse battery").await;
        assert_eq!(user.username, username);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_passwords_work_byte_for_byte() {
    let server = server::server().await;
    let m = marker();
    let mut passwords: Vec<(String, String)> = hostile(&m)
        .into_iter()
        .map(|(what, text)| (what.to_owned(), text))
        .collect();
    passwords.push(("8 characters of 4 bytes".into(), "𝕳".repeat(8)));
    passwords.push(("1024 bytes".into(), "😀".repeat(256)));
    passwords.push(("newlines and tabs".into(), format!("{m}\r\n\t end")));
    for (i, (what, password)) in passwords.iter().enumerate() {
        let username = format!("{m}p{i}");
        let user = server.register_as(&username, password).await;
        // Logging in again with the very same bytes works...
        server.login(&username, password).await;
        // ...and with anything else does not.
        for (variant, other) in [
            ("one byte more", format!("{password}x")),
            (
                "one character less",
                password.chars().skip(1).collect::<String>(),
            ),
            ("upper-cased", password.to_uppercase()),
        ] {
            if other == *password {
                continue;
            }
            let body = json!({"username": username, "password": other});
            let reply = server.send(&http::post("/api/auth/token", &body)).await;
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (401, "invalid_credentials"),
                "{what}, {variant}: {}",
                reply.text()
            );
        }
        assert!(!user.token.is_empty());
    }
    // Combining marks are not normalised: NFD and NFC are two passwords.
    let username = format!("{m}nfd");
    server.register_as(&username, "cafe\u{301} au lait").await;
    let body = json!({"username": username, "password": "caf\u{e9} au lait"});
    let reply = server.send(&http::post("/api/auth/token", &body)).await;
    assert_eq!(
        reply.status,
        401,
        "NFC logged into an NFD password: {}",
        reply.text()
    );

    // Over the limits: a 422 and nothing registered.
    for (what, password) in [
        ("1025 bytes", format!("{}a", "😀".repeat(256))),
        ("7 characters", "1234567".to_owned()),
        ("7 emoji", "😀".repeat(7)),
    ] {
        let username = format!("{m}long");
        let body = json!({"username": username, "password": password});
        let reply = server.send(&http::post("/api/users", &body)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (422, "validation_failed"),
            "{what}: {}",
            reply.text()
        );
    }
    assert_eq!(
        server.events_mentioning(&format!("{m}long")).await,
        0,
        "a refused password registered its user"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_display_names_come_back_verbatim() {
    let server = server::server().await;
    let m = marker();
    let mut names: Vec<(String, String)> = hostile(&m)
        .into_iter()
        .map(|(what, text)| (what.to_owned(), text))
        .collect();
    names.push(("64 characters".into(), of_chars(&m, 64)));
    for (i, (what, display_name)) in names.iter().enumerate() {
        let username = format!("{m}d{i}");
        let body = json!({"username": username, "password": "correct horse battery", "display_name": display_name});
        let reply = server.send(&http::post("/api/users", &body)).await;
        assert_eq!(reply.status, 201, "{what}: {}", reply.text());
        let user = crate::server::User {
            id: reply.json()["user_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user_id"),
            token: server.login(&username, "correct horse battery").await,
            username: username.clone(),
        };
        let channel = server.channel(&user, "display names").await;
        // The member list shows it once the projection has it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let shown = loop {
            let reply = server
                .send(&http::get(&format!("/api/channels/{channel}")).token(&user.token))
                .await;
            let member = reply.json()["members"][0]["display_name"].clone();
            if let Some(name) = member.as_str() {
                break name.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: never shown: {}",
                reply.text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(shown.as_bytes(), display_name.as_bytes(), "{what}");
    }

    for (what, display_name) in [
        ("65 characters", of_chars(&m, 65)),
        ("a newline", format!("{m}\nx")),
        ("a tab", format!("{m}\tx")),
        ("an escape", format!("{m}\u{1b}[31m")),
        ("C1 control", format!("{m}\u{85}")),
    ] {
        let body = json!({"username": format!("{m}bad"), "password": "correct horse battery", "display_name": display_name});
        let reply = server.send(&http::post("/api/users", &body)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (422, "validation_failed"),
            "{what}: {}",
            reply.text()
        );
    }
    assert_eq!(server.events_mentioning(&format!("{m}bad")).await, 0);
}
