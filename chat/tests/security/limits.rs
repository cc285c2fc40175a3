//! Size limits from outside: request bodies (`CHAT_MAX_BODY_BYTES`, 64 KiB
//! by default, 413 `payload_too_large`), request heads (431 or 400, and the
//! server goes on serving), and WebSocket frames beyond the 64 KiB limit in
//! the forms gateway/tests/ws does not send (a length announced but never
//! sent, many small fragments, binary, unmasked, oversized control frames).

use crate::http;
use crate::server::{self, Server};
use crate::ws;
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// `CHAT_MAX_BODY_BYTES` left at its default.
const MAX_BODY: usize = 64 * 1024;

/// `{"content":"…"}` padded with spaces to exactly `size` bytes.
fn body_of(size: usize) -> Vec<u8> {
    let mut body = br#"{"content":"just under the limit"}"#.to_vec();
    body.resize(size, b' ');
    body
}

async fn health(server: &Server, after: &str) {
    let reply = server.send(&http::get("/health")).await;
    assert_eq!(
        reply.status, 200,
        "the server stopped serving after {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_just_over_the_limit_is_413_and_appends_nothing() {
    let server = server::server().await;
    let user = server.user("body").await;
    let channel = server.channel(&user, "bodies").await;
    let target = format!("/api/channels/{channel}/messages");

    let reply = server
        .send(
            &http::Request::new("POST", &target)
                .raw_body(body_of(MAX_BODY))
                .token(&user.token),
        )
        .await;
    assert_eq!(reply.status, 201, "exactly the limit: {}", reply.text());

    let before = server.events_by(user.id).await;
    let over = body_of(MAX_BODY + 1);
    let reply = server
        .send(
            &http::Request::new("POST", &target)
                .raw_body(over.clone())
                .token(&user.token),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (413, "payload_too_large"),
        "one byte over: {}",
        reply.text()
    );
    // Chunked, with no length to refuse up front.
    let mut bytes = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        user.token
    )
    .into_bytes();
    for chunk in over.chunks(4096) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let reply = http::exchange(server.port, &bytes)
        .await
        .expect("an answer");
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (413, "payload_too_large"),
        "chunked, one byte over: {}",
        reply.text()
    );
    // A huge announced length is refused without waiting for the body.
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{",
        user.token
    );
    let reply = http::exchange(server.port, head.as_bytes())
        .await
        .expect("an answer");
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (413, "payload_too_large"),
        "a 100 GB Content-Length: {}",
        reply.text()
    );
    // The public routes have the same limit.
    for public in ["/api/users", "/api/auth/token"] {
        let reply = server
            .send(&http::Request::new("POST", public).raw_body(over.clone()))
            .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (413, "payload_too_large"),
            "{public}: {}",
            reply.text()
        );
    }
    assert_eq!(
        server.events_by(user.id).await,
        before,
        "an oversized body appended"
    );
    health(&server, "oversized bodies").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_or_many_headers_are_refused_and_the_server_keeps_serving() {
    let server = server::server().await;
    let user = server.user("headers").await;
    let with_header = |size: usize| {
        http::get("/api/channels")
            .token(&user.token)
            .header("X-Big", "a".repeat(size))
    };
    // Well under the 128 KiB head buffer: served.
    let reply = server.send(&with_header(16 * 1024)).await;
    assert_eq!(reply.status, 200, "a 16 KiB header: {}", reply.text());
    for size in [200 * 1024, 1024 * 1024] {
        match http::try_send(server.port, &with_header(size)).await {
            Ok(reply) => assert!(
                [400, 431].contains(&reply.status),
                "{size}: {}",
                reply.text()
            ),
            Err(e) => panic!("a {size}-byte header got no answer: {e}"),
        }
        health(&server, &format!("a {size}-byte header")).await;
    }
    for count in [100, 1000] {
        let mut request = http::get("/api/channels").token(&user.token);
        for i in 0..count {
            request = request.header(&format!("X-Many-{i}"), "v");
        }
        let reply = http::try_send(server.port, &request)
            .await
            .expect("an answer");
        assert!(
            [400, 431].contains(&reply.status),
            "{count} headers: {}",
            reply.text()
        );
        health(&server, &format!("{count} headers")).await;
    }
    // One header line of many small values, and a long header name.
    let reply = http::try_send(
        server.port,
        &http::get("/health").header(&"X".repeat(200 * 1024), "v"),
    )
    .await
    .expect("an answer");
    assert!(
        [400, 431].contains(&reply.status),
        "a 200 KiB name: {}",
        reply.text()
    );
    health(&server, "a 200 KiB header name").await;
}

/// A client frame: FIN, opcode, masked with an all-zero key (valid, and the
/// payload is sent as is), announcing `announced` bytes of which `payload`
/// follows.
fn frame(fin: bool, opcode: u8, announced: u64, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    if announced < 126 {
        out.push(mask_bit | announced as u8);
    } else if announced <= u64::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(announced as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&announced.to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out.extend_from_slice(payload);
    out
}

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const PING: u8 = 0x9;

/// Opens a socket, writes `bytes` raw after the handshake, and returns the
/// error frame code (if any) and the close code the server ends it with.
async fn close_after(server: &Server, token: &str, bytes: &[u8]) -> (Option<String>, Option<u16>) {
    let mut socket = ws::connect(server.port, token).await;
    assert_eq!(ws::next_json(&mut socket).await["type"], "welcome");
    // Written raw: tungstenite would refuse to send most of these.
    let _ = socket.get_mut().write_all(bytes).await;
    let _ = socket.get_mut().flush().await;
    let mut error = None;
    let code = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    if value["type"] == "error" {
                        error = value["code"].as_str().map(String::from);
                    }
                }
                Ok(Message::Close(close)) => return close.map(|c| u16::from(c.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the server ends the socket in time");
    (error, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_websocket_frames_close_the_socket_with_4004() {
    let server = server::server().await;
    let user = server.user("frames").await;
    let kib = vec![b'x'; 1024];

    // A length of 1 GiB announced, nothing sent: refused from the header alone.
    let (error, code) =
        close_after(&server, &user.token, &frame(true, TEXT, 1 << 30, b"", true)).await;
    assert_eq!(
        (error.as_deref(), code),
        (Some("frame_too_large"), Some(4004)),
        "1 GiB announced"
    );
    // The largest length a header can carry.
    let (_, code) = close_after(
        &server,
        &user.token,
        &frame(true, TEXT, u64::MAX >> 1, b"", true),
    )
    .await;
    assert_eq!(code, Some(4004), "2^63-1 announced");

    // 80 fragments of 1 KiB: each small, together past the limit.
    let mut fragments = frame(false, TEXT, 1024, &kib, true);
    for _ in 0..79 {
        fragments.extend(frame(false, CONTINUATION, 1024, &kib, true));
    }
    fragments.extend(frame(true, CONTINUATION, 1024, &kib, true));
    let (error, code) = close_after(&server, &user.token, &fragments).await;
    assert_eq!(
        (error.as_deref(), code),
        (Some("frame_too_large"), Some(4004)),
        "80 × 1 KiB fragments"
    );

    // A binary frame over the limit.
    let big = vec![0u8; 70 * 1024];
    let (_, code) = close_after(
        &server,
        &user.token,
        &frame(true, BINARY, big.len() as u64, &big, true),
    )
    .await;
    assert_eq!(code, Some(4004), "70 KiB binary");

    // Protocol violations are a 1002 close, not a crash.
    let (_, code) = close_after(&server, &user.token, &frame(true, TEXT, 2, b"{}", false)).await;
    assert_eq!(code, Some(1002), "an unmasked client frame");
    let (_, code) = close_after(
        &server,
        &user.token,
        &frame(true, PING, 200, &[0u8; 200], true),
    )
    .await;
    assert!(
        code.is_some_and(|c| c == 1002 || c == 4004),
        "a 200-byte ping: {code:?}"
    );

    // Within the limit, fragments are one message.
    let mut socket = ws::connect(server.port, &user.token).await;
    assert_eq!(ws::next_json(&mut socket).await["type"], "welcome");
    let ping = json!({"type": "ping", "id": 42}).to_string();
    let (a, b) = ping.split_at(5);
    let mut bytes = frame(false, TEXT, a.len() as u64, a.as_bytes(), true);
    bytes.extend(frame(
        true,
        CONTINUATION,
        b.len() as u64,
        b.as_bytes(),
        true,
    ));
    socket.get_mut().write_all(&bytes).await.expect("write");
    assert_eq!(
        ws::next_json(&mut socket).await,
        json!({"type": "pong", "id": 42})
    );
    health(&server, "oversized frames").await;
}
