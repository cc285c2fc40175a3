//! U+0000 in every field a client sets (DESIGN.md §6: refused with a 400 or
//! 422 before anything reaches a database — a fixed defect that must stay
//! fixed), JSON no database can store, and hostile cursor and paging
//! parameters: always the error contract, never a 500, nothing appended.

use crate::http::{self, encode};
use crate::server::{self, marker};
use crate::ws;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_is_refused_in_every_field_and_appends_nothing() {
    let server = server::server().await;
    let user = server.user("nul").await;
    let channel = server.channel(&user, "nul target").await;
    let sent = server
        .post_message(&user, channel, &json!({"content": "to edit"}))
        .await;
    let message = sent.json()["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let m = marker();
    let nul = format!("{m}\0x");
    let before = (
        server.events_by(user.id).await,
        server.events_mentioning(&m).await,
    );
    let password = "correct horse battery";
    let cases = [
        (
            "register: username",
            http::post(
                "/api/users",
                &json!({"username": nul, "password": password}),
            ),
        ),
        (
            "register: password",
            http::post(
                "/api/users",
                &json!({"username": m, "password": format!("{password}\0")}),
            ),
        ),
        (
            "register: display_name",
            http::post(
                "/api/users",
                &json!({"username": m, "password": password, "display_name": nul}),
            ),
        ),
        (
            "login: username",
            http::post(
                "/api/auth/token",
                &json!({"username": nul, "password": password}),
            ),
        ),
        (
            "login: password",
            http::post(
                "/api/auth/token",
                &json!({"username": user.username, "password": format!("{password}\0")}),
            ),
        ),
        (
            "channel name",
            http::post("/api/channels", &json!({"name": nul, "kind": "public"})).token(&user.token),
        ),
        (
            "channel kind",
            http::post("/api/channels", &json!({"name": m, "kind": "public\0"})).token(&user.token),
        ),
        (
            "message content",
            http::post(
                &format!("/api/channels/{channel}/messages"),
                &json!({"content": nul}),
            )
            .token(&user.token),
        ),
        (
            "message type",
            http::post(
                &format!("/api/channels/{channel}/messages"),
                &json!({"content": m, "type": "text\0"}),
            )
            .token(&user.token),
        ),
        (
            "client_msg_id",
            http::post(
                &format!("/api/channels/{channel}/messages"),
                &json!({"content": m, "client_msg_id": nul}),
            )
            .token(&user.token),
        ),
        (
            "edit content",
            http::Request::new(
                "PATCH",
                &format!("/api/channels/{channel}/messages/{message}"),
            )
            .json(&json!({"content": nul}))
            .token(&user.token),
        ),
        (
            "invite user_id",
            http::post(
                &format!("/api/channels/{channel}/members"),
                &json!({"user_id": nul}),
            )
            .token(&user.token),
        ),
        (
            "role",
            http::Request::new(
                "PUT",
                &format!("/api/channels/{channel}/members/{}/role", user.id),
            )
            .json(&json!({"role": "owner\0"}))
            .token(&user.token),
        ),
        (
            "a key holding U+0000",
            http::post(
                &format!("/api/channels/{channel}/messages"),
                &json!({"content\u{0}": m}),
            )
            .token(&user.token),
        ),
    ];
    for (what, request) in cases {
        let reply = server.send(&request).await;
        assert!(
            [400, 422].contains(&reply.status) && reply.is_error_contract(),
            "{what}: {}",
            reply.text()
        );
    }
    // Query parameters and path segments.
    for (what, target, status, code) in [
        (
            "directory q",
            "/api/channels/public?q=a%00b".to_owned(),
            400,
            "invalid_query",
        ),
        (
            "history before",
            format!("/api/channels/{channel}/messages?before=1%00"),
            400,
            "invalid_query",
        ),
        (
            "history after",
            format!("/api/channels/{channel}/messages?after=%00"),
            400,
            "invalid_query",
        ),
        (
            "history limit",
            format!("/api/channels/{channel}/messages?limit=%001"),
            400,
            "invalid_query",
        ),
        (
            "channel id",
            "/api/channels/%00".to_owned(),
            404,
            "channel_not_found",
        ),
        (
            "channel id with a NUL after it",
            format!("/api/channels/{channel}%00"),
            404,
            "channel_not_found",
        ),
    ] {
        let reply = server.send(&http::get(&target).token(&user.token)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{what}: {}",
            reply.text()
        );
    }
    let admin = server.admin().await;
    for (what, target, code) in [
        ("events after", "/api/events?after=%00", "invalid_cursor"),
        (
            "events stream",
            "/api/events?stream=channel-%00",
            "invalid_query",
        ),
        (
            "events type",
            "/api/events?type=MessageSent%00",
            "invalid_query",
        ),
        ("events limit", "/api/events?limit=%00", "invalid_query"),
    ] {
        let reply = server.send(&http::get(target).token(&admin.token)).await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, code),
            "{what}: {}",
            reply.text()
        );
    }
    // Over the socket.
    let mut socket = ws::Client::new(ws::connect(server.port, &user.token).await);
    socket.next_of("welcome").await;
    for (what, frame) in [
        (
            "send content",
            json!({"type": "send", "id": 1, "channel_id": channel, "content": nul, "client_msg_id": m}),
        ),
        (
            "send client_msg_id",
            json!({"type": "send", "id": 2, "channel_id": channel, "content": m, "client_msg_id": nul}),
        ),
        (
            "send message_type",
            json!({"type": "send", "id": 3, "channel_id": channel, "content": m, "client_msg_id": "t", "message_type": "text\0"}),
        ),
        (
            "edit content",
            json!({"type": "edit", "id": 4, "channel_id": channel, "message_id": message, "content": nul}),
        ),
        ("frame type", json!({"type": "ping\0", "id": 5})),
    ] {
        socket.send(&frame).await;
        let error = socket.next_of("error").await;
        assert!(error["code"].is_string(), "{what}: {error}");
        assert_eq!(error["id"], frame["id"], "{what}: {error}");
    }
    // A raw NUL byte in a header is refused by the HTTP parser itself.
    let mut bytes = http::post(
        &format!("/api/channels/{channel}/messages"),
        &json!({"content": m}),
    )
    .token(&user.token)
    .bytes(server.port);
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
    bytes.splice(at..at, b"\r\nIdempotency-Key: a\0b".iter().copied());
    let reply = http::exchange(server.port, &bytes)
        .await
        .expect("an answer");
    assert_eq!(reply.status, 400, "a NUL in a header: {}", reply.text());
    // The connection was refused, not the server: it still answers.
    assert_eq!(server.send(&http::get("/health")).await.status, 200);
    assert_eq!(
        (
            server.events_by(user.id).await,
            server.events_mentioning(&m).await
        ),
        before,
        "something with U+0000 was appended"
    );
}

/// JSON that parses in some libraries but no database can store, or that
/// is not JSON at all: a 400 in the error contract, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_json_is_a_400() {
    let server = server::server().await;
    let user = server.user("json").await;
    let channel = server.channel(&user, "json target").await;
    let before = server.events_by(user.id).await;
    let target = format!("/api/channels/{channel}/messages");
    for (what, body) in [
        (
            "a lone high surrogate",
            br#"{"content": "a\ud800b"}"#.to_vec(),
        ),
        (
            "a lone low surrogate",
            br#"{"content": "a\udc00b"}"#.to_vec(),
        ),
        ("a raw NUL in a string", b"{\"content\": \"a\0b\"}".to_vec()),
        (
            "a raw newline in a string",
            b"{\"content\": \"a\nb\"}".to_vec(),
        ),
        ("invalid UTF-8", b"{\"content\": \"a\xff\xfeb\"}".to_vec()),
        (
            "overlong UTF-8 NUL",
            b"{\"content\": \"a\xc0\x80b\"}".to_vec(),
        ),
        (
            "UTF-8 surrogate",
            b"{\"content\": \"a\xed\xa0\x80b\"}".to_vec(),
        ),
        (
            "a UTF-16 body",
            "{\"content\": \"x\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
        ),
        (
            "deeply nested",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
        (
            "a number too large",
            br#"{"content": "x", "client_msg_id": 1e999}"#.to_vec(),
        ),
        (
            "trailing garbage",
            br#"{"content": "x"} {"content": "y"}"#.to_vec(),
        ),
        ("not an object", br#""content""#.to_vec()),
        (
            "duplicate keys",
            br#"{"content": "x", "content": "y"}"#.to_vec(),
        ),
    ] {
        let reply = server
            .send(
                &http::Request::new("POST", &target)
                    .raw_body(body)
                    .token(&user.token),
            )
            .await;
        assert!(
            reply.status == 400
                && ["malformed_json", "invalid_body"].contains(&reply.code().as_str()),
            "{what}: {}",
            reply.text()
        );
    }
    assert_eq!(
        server.events_by(user.id).await,
        before,
        "undecodable JSON appended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_cursor_and_paging_parameters() {
    let server = server::server().await;
    let user = server.user("cursor").await;
    let channel = server.channel(&user, "cursors").await;
    for i in 0..3 {
        let reply = server
            .post_message(&user, channel, &json!({"content": format!("m{i}")}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
    }
    server.messages_up_to(&user, channel, 3).await;
    let history = |query: String| {
        let server = server.clone();
        let token = user.token.clone();
        async move {
            server
                .send(
                    &http::get(&format!("/api/channels/{channel}/messages?{query}")).token(&token),
                )
                .await
        }
    };
    let hostile = [
        "'; DROP TABLE events; --",
        "\" OR 1=1 --",
        "\\",
        "$1",
        "%",
        "_",
        "1;DELETE FROM events",
        "1 OR 1=1",
        "0x10",
        "1e3",
        "1.5",
        "١٢",
        "--1",
        "NaN",
    ];
    for param in ["before", "after", "limit"] {
        for value in hostile {
            let reply = history(format!("{param}={}", encode(value))).await;
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (400, "invalid_query"),
                "{param}={value:?}: {}",
                reply.text()
            );
        }
    }
    // Out-of-range numbers saturate and clamp; they are never refused.
    for query in [
        "before=99999999999999999999999999",
        "after=-99999999999999999999999999",
        "limit=99999999999999999999999999",
        "limit=-5",
        "limit=0",
        "before=0",
        "after=9223372036854775807",
        "before=&after=&limit=",
    ] {
        let reply = history(query.to_owned()).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text());
        let count = reply.json()["messages"]
            .as_array()
            .map_or(usize::MAX, Vec::len);
        assert!(count <= 3, "{query}: {count} messages");
    }
    // The event log's cursor, stream and type filters (for an admin).
    let admin = server.admin().await;
    for value in hostile.iter().chain(&[
        "0:0:0",
        "18446744073709551616-1",
        "1-9223372036854775808",
        "1--1",
        "1-2-3",
        " - ",
    ]) {
        let reply = server
            .send(&http::get(&format!("/api/events?after={}", encode(value))).token(&admin.token))
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (400, "invalid_cursor"),
            "after={value:?}: {}",
            reply.text()
        );
    }
    for value in hostile {
        for param in ["stream", "type"] {
            let reply = server
                .send(
                    &http::get(&format!("/api/events?{param}={}&limit=5", encode(value)))
                        .token(&admin.token),
                )
                .await;
            assert_eq!(reply.status, 200, "{param}={value:?}: {}", reply.text());
            assert!(
                reply.body.is_empty(),
                "{param}={value:?} matched events: {}",
                reply.text()
            );
        }
    }
    // Not an admin: 403, whatever the cursor.
    let reply = server
        .send(&http::get("/api/events?after=%27%3B").token(&user.token))
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (403, "forbidden"),
        "{}",
        reply.text()
    );
}
