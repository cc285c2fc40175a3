//! The browser `Origin` on `/ws` (DESIGN.md §7, OWASP WebSocket cheat
//! sheet): the server's own origins (from its configuration, never from the
//! request's `Host`) and `CHAT_ALLOWED_ORIGINS` open a socket; anything else a
//! browser could send is 403 `origin_not_allowed` before the upgrade; a
//! client that sends no `Origin` (not a browser) is not refused for that.
//!
//! Scheme and host compare without regard to case (RFC 6454 §4 lower-cases
//! both; `HTTP://LOCALHOST:8080` is that origin), and a trailing `/` names the
//! same origin; everything else must match exactly: scheme, host and port.

use crate::server::{self, ALLOWED_ORIGIN};
use crate::ws;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_own_and_allowed_origins_open_a_socket() {
    let server = server::server().await;
    let user = server.user("origin").await;
    let port = server.port;
    let own = format!("http://127.0.0.1:{port}");
    let allowed = |origin: &str| (origin.to_owned(), true);
    let refused = |origin: &str| (origin.to_owned(), false);
    let cases = [
        allowed(&own),
        allowed(&format!("http://localhost:{port}")),
        allowed(&format!("HTTP://127.0.0.1:{port}")),
        allowed(&format!("http://LOCALHOST:{port}")),
        allowed(&format!("{own}/")),
        allowed(ALLOWED_ORIGIN),
        allowed(&ALLOWED_ORIGIN.to_uppercase()),
        refused("null"),
        refused(""),
        refused("*"),
        // Own origin, another scheme or port.
        refused(&format!("https://127.0.0.1:{port}")),
        refused(&format!("ws://127.0.0.1:{port}")),
        refused(&format!("http://127.0.0.1:{}", port.wrapping_add(1))),
        refused("http://127.0.0.1"),
        refused(&format!("http://127.0.0.1:{port}0")),
        refused(&format!("http://[::1]:{port}")),
        // Suffix tricks.
        refused(&format!("http://127.0.0.1:{port}.evil.com")),
        refused(&format!("http://evil.com/127.0.0.1:{port}")),
        refused(&format!("http://127.0.0.1:{port}@evil.com")),
        refused(&format!("{own}/path")),
        refused(&format!("{own} http://evil.com")),
        refused(&format!("{own}, http://evil.com")),
        // Prefix tricks.
        refused(&format!("http://evil.127.0.0.1:{port}")),
        refused(&format!("http://evil.com#{own}")),
        refused(&format!("http://evil.com?{own}")),
        refused(&format!("xhttp://127.0.0.1:{port}")),
        refused(&format!(" {own}x")),
        // The allowed origin, varied.
        refused("http://allowed.example.com"),
        refused("https://allowed.example.com:8443"),
        refused("https://allowed.example.com.evil.com"),
        refused("https://evil-allowed.example.com"),
        refused("https://sub.allowed.example.com"),
        refused("https://allowed.example"),
    ];
    for (origin, ok) in cases {
        let request = ws::upgrade("/ws")
            .token(&user.token)
            .header("Origin", &origin);
        let reply = ws::handshake(port, &request).await;
        if ok {
            assert_eq!(reply.status, 101, "Origin {origin:?}: {}", reply.text());
        } else {
            assert_eq!(
                (reply.status, reply.code().as_str()),
                (403, "origin_not_allowed"),
                "Origin {origin:?}: {}",
                reply.text()
            );
        }
    }

    // No Origin: not a browser, not refused for that.
    let reply = ws::handshake(port, &ws::upgrade("/ws").token(&user.token)).await;
    assert_eq!(reply.status, 101, "no Origin: {}", reply.text());
    // Bytes that are no text at all.
    let request = ws::upgrade("/ws")
        .token(&user.token)
        .header("Origin", b"http://127.0.0.1:\xff\xfe".as_slice());
    let reply = ws::handshake(port, &request).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (403, "origin_not_allowed"),
        "a non-UTF-8 Origin: {}",
        reply.text()
    );
    // The Host header is the client's to choose: it never makes an origin own.
    let request = ws::upgrade("/ws")
        .token(&user.token)
        .header("Origin", "http://evil.example");
    let mut bytes = request.bytes(port);
    let text = String::from_utf8_lossy(&bytes)
        .replacen(&format!("Host: 127.0.0.1:{port}"), "Host: evil.example", 1)
        .replacen("Connection: close", "Connection: Upgrade", 1);
    bytes = text.into_bytes();
    let reply = crate::http::exchange(port, &bytes)
        .await
        .expect("an answer");
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (403, "origin_not_allowed"),
        "Host: evil.example with Origin http://evil.example: {}",
        reply.text()
    );
    // The origin is checked before the token: a refused origin learns nothing.
    let request = ws::upgrade("/ws").header("Origin", "http://evil.example");
    let reply = ws::handshake(port, &request).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
}
