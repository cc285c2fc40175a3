//! Slowloris: connections that send a request head (or a body, or a
//! WebSocket handshake) one byte a second. The server closes each within its
//! configured time (`CHAT_HTTP_HEAD_TIMEOUT_SECS`, `CHAT_HTTP_BODY_TIMEOUT_SECS`,
//! set to a few seconds here) while other clients keep being answered. Every
//! slow client stops by itself after 30 s, so a server that never closes
//! fails the test instead of hanging it.

use crate::http::{self, read_reply};
use crate::server::{self, BODY_TIMEOUT, HEAD_TIMEOUT, KEEP_ALIVE, Server};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a slow client keeps going before it gives up.
const GIVE_UP: Duration = Duration::from_secs(30);
/// Scheduling slack on a loaded 2-core machine, beyond the configured time.
const SLACK: Duration = Duration::from_secs(4);

/// How a slow client ended.
#[derive(Debug)]
struct Ended {
    /// From connecting to the server's close; None: still open at `GIVE_UP`.
    closed_after: Option<Duration>,
    /// What the server said before closing.
    answer: Vec<u8>,
}

/// Writes `prefix` at once, then `drip` one byte a second, on `stream`,
/// until the server closes it or `GIVE_UP` passes.
async fn drip(stream: TcpStream, prefix: Vec<u8>, drip: Vec<u8>, started: Instant) -> Ended {
    let (mut reader, mut writer) = stream.into_split();
    let read = async move {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        answer
    };
    let write = async move {
        if writer.write_all(&prefix).await.is_err() {
            return std::future::pending::<()>().await;
        }
        for byte in drip.iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Writes fail once the server is gone: leave the verdict to the reader.
        std::future::pending::<()>().await
    };
    tokio::select! {
        answer = read => Ended { closed_after: Some(started.elapsed()), answer },
        () = write => Ended { closed_after: None, answer: Vec::new() },
        () = tokio::time::sleep(GIVE_UP) => Ended { closed_after: None, answer: Vec::new() },
    }
}

/// Starts `count` slow clients, each from `setup` (which may send a first,
/// fast request on its connection) and then dripping `drip`.
fn slow_clients(
    server: &Server,
    count: usize,
    prefix: Vec<u8>,
    drip_bytes: Vec<u8>,
) -> Vec<tokio::task::JoinHandle<Ended>> {
    (0..count)
        .map(|_| {
            let (port, prefix, drip_bytes) = (server.port, prefix.clone(), drip_bytes.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let stream = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                drip(stream, prefix, drip_bytes, started).await
            })
        })
        .collect()
}

/// Every client was closed within `limit`; the slowest close, for the report.
async fn all_closed_within(
    what: &str,
    clients: Vec<tokio::task::JoinHandle<Ended>>,
    limit: Duration,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for client in clients {
        let ended = client.await.expect("a slow client");
        let closed = ended
            .closed_after
            .unwrap_or_else(|| panic!("{what}: still open after {GIVE_UP:?}"));
        assert!(
            closed <= limit,
            "{what}: closed only after {closed:?} (limit {limit:?})"
        );
        slowest = slowest.max(closed);
    }
    eprintln!("{what}: the slowest was closed after {slowest:?}");
    slowest
}

/// `count` requests from a normal client all succeed while the slow ones wait.
async fn others_are_served(server: &Server, token: &str, count: usize) {
    let served = tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..count {
            let reply = server.send(&http::get("/api/channels").token(token)).await;
            assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "{count} requests were not all answered within 60 s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_closed_while_others_are_served() {
    let server = server::server().await;
    let user = server.user("slowloris").await;
    let head = b"GET /api/channels HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec();
    let slow = slow_clients(&server, 50, Vec::new(), [head, vec![b'a'; 64]].concat());
    let silent = slow_clients(&server, 10, Vec::new(), Vec::new());
    others_are_served(&server, &user.token, 20).await;
    all_closed_within("50 heads at a byte a second", slow, HEAD_TIMEOUT + SLACK).await;
    all_closed_within("10 silent connections", silent, HEAD_TIMEOUT + SLACK).await;
    others_are_served(&server, &user.token, 5).await;
}

/// The head of a second request on a kept-alive connection is bounded too:
/// it must be in within keep-alive plus the head timeout of the first answer
/// (actix itself bounds only a connection's first head).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_second_request_on_a_kept_alive_connection_is_closed() {
    let server = server::server().await;
    let user = server.user("keepalive").await;
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let (port, token) = (server.port, user.token.clone());
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                let first = format!(
                    "GET /api/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
                );
                stream
                    .write_all(first.as_bytes())
                    .await
                    .expect("first request");
                let reply = read_reply(&mut stream).await.expect("the first answer");
                assert_eq!(reply.status, 200, "{}", reply.text());
                let started = Instant::now();
                let next = [
                    b"GET /api/channels HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec(),
                    vec![b'a'; 64],
                ]
                .concat();
                drip(stream, Vec::new(), next, started).await
            })
        })
        .collect();
    others_are_served(&server, &user.token, 20).await;
    all_closed_within(
        "a slow second head",
        clients,
        KEEP_ALIVE + HEAD_TIMEOUT + SLACK,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_and_appends_nothing() {
    let server = server::server().await;
    let user = server.user("slowbody").await;
    let channel = server.channel(&user, "slow bodies").await;
    let before = server.events_by(user.id).await;
    let body = json!({"content": "x".repeat(900)}).to_string();
    // Half of them ask for the connection to close after the answer, half
    // would keep it alive.
    let head = |connection: &str| {
        format!(
            "POST /api/channels/{channel}/messages HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            user.token,
            body.len()
        )
        .into_bytes()
    };
    let mut slow = slow_clients(&server, 5, head("close"), body.clone().into_bytes());
    slow.extend(slow_clients(
        &server,
        5,
        head("keep-alive"),
        body.into_bytes(),
    ));
    // The join route reads its body itself: the same deadline, the same answer.
    let join = format!(
        "POST /api/channels/{channel}/members HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        user.token
    );
    slow.extend(slow_clients(
        &server,
        3,
        join.into_bytes(),
        b" ".repeat(100),
    ));
    others_are_served(&server, &user.token, 20).await;
    let mut answers = Vec::new();
    let mut slowest = Duration::ZERO;
    for client in slow {
        let ended = client.await.expect("a slow client");
        let closed = ended
            .closed_after
            .unwrap_or_else(|| panic!("a slow body: still open after {GIVE_UP:?}"));
        assert!(
            closed <= BODY_TIMEOUT + SLACK,
            "a slow body: closed only after {closed:?}"
        );
        slowest = slowest.max(closed);
        answers.push(ended.answer);
    }
    eprintln!("a slow body: the slowest was closed after {slowest:?}");
    for answer in answers {
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 408"),
            "a slow body was answered {text:?}"
        );
        assert!(text.contains("request_timeout"), "{text}");
    }
    assert_eq!(
        server.events_by(user.id).await,
        before,
        "a cut-off body appended"
    );

    // A body no handler reads: answered at once, then the trickle that
    // follows is cut off like a slow next request.
    let head = format!(
        "GET /api/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 1000\r\n\r\n",
        user.token
    );
    let unread = slow_clients(&server, 5, head.into_bytes(), vec![b'x'; 64]);
    for client in unread {
        let ended = client.await.expect("a slow client");
        let closed = ended
            .closed_after
            .unwrap_or_else(|| panic!("an unread slow body: still open after {GIVE_UP:?}"));
        assert!(
            closed <= KEEP_ALIVE + HEAD_TIMEOUT + SLACK,
            "an unread slow body: closed only after {closed:?}"
        );
        let text = String::from_utf8_lossy(&ended.answer);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_websocket_handshake_is_closed() {
    let server = server::server().await;
    let user = server.user("slowws").await;
    let handshake = format!(
        "GET /ws?access_token={} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Slow: ",
        user.token
    );
    // The first part at once, the rest a byte a second, never finished.
    let slow = slow_clients(&server, 20, handshake.into_bytes(), vec![b'a'; 64]);
    others_are_served(&server, &user.token, 20).await;
    all_closed_within("20 slow handshakes", slow, HEAD_TIMEOUT + SLACK).await;
    // A complete handshake still opens a socket.
    let reply =
        crate::ws::handshake(server.port, &crate::ws::upgrade("/ws").token(&user.token)).await;
    assert_eq!(reply.status, 101, "{}", reply.text());
}
