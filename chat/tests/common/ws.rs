//! WebSocket clients: a raw handshake (to read a refusal's status and body
//! exactly) and a tungstenite socket for what follows an upgrade.

use crate::http::{self, Reply};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Socket = WebSocketStream<TcpStream>;

/// A WebSocket upgrade request for `target` (e.g. `/ws?access_token=…`).
pub fn upgrade(target: &str) -> http::Request {
    http::Request::new("GET", target)
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
}

/// The server's answer to an upgrade request (`Connection: close` is sent
/// too, so the raw request also carries `Connection: upgrade`).
pub async fn handshake(port: u16, request: &http::Request) -> Reply {
    let mut bytes = request.bytes(port);
    // `Connection: close` → `Connection: upgrade`: an upgrade needs it.
    let text =
        String::from_utf8_lossy(&bytes).replacen("Connection: close", "Connection: Upgrade", 1);
    bytes = text.into_bytes();
    http::exchange(port, &bytes)
        .await
        .unwrap_or_else(|e| panic!("{}: no answer to the handshake: {e}", request.target))
}

/// A socket as `token` (in the query string), optionally with an `Origin`.
pub async fn connect(port: u16, token: &str) -> Socket {
    try_connect(port, &format!("/ws?access_token={token}"), &[])
        .await
        .expect("the socket opens")
}

/// Opens a socket on `target` with extra `headers`.
pub async fn try_connect(
    port: u16,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://127.0.0.1:{port}{target}")
        .into_client_request()
        .expect("a request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(http_name(name), value.parse().expect("a header value"));
    }
    let stream = TcpStream::connect(("127.0.0.1", port)).await.expect("tcp");
    let (socket, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("a handshake in time")?;
    Ok(socket)
}

fn http_name(name: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    name.parse().expect("a header name")
}

/// The next text frame as JSON, within ten seconds.
pub async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("a JSON frame");
        }
    }
}

/// A socket whose frames of other types are kept for later, not dropped.
pub struct Client {
    pub socket: Socket,
    backlog: std::collections::VecDeque<Value>,
}

impl Client {
    pub fn new(socket: Socket) -> Client {
        Client {
            socket,
            backlog: std::collections::VecDeque::new(),
        }
    }

    /// The first frame of type `kind`, kept or arriving within 20 s.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        if let Some(at) = self.backlog.iter().position(|f| f["type"] == kind)
            && let Some(frame) = self.backlog.remove(at)
        {
            return frame;
        }
        let socket = &mut self.socket;
        let backlog = &mut self.backlog;
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let frame = next_json(socket).await;
                if frame["type"] == kind {
                    return frame;
                }
                backlog.push_back(frame);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} frame in time"))
    }

    pub async fn send(&mut self, frame: &Value) {
        send_json(&mut self.socket, frame).await;
    }
}

/// Sends a JSON text frame.
pub async fn send_json(socket: &mut Socket, frame: &Value) {
    socket
        .send(Message::text(frame.to_string()))
        .await
        .expect("send a frame");
}
