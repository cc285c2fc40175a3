//! `chat up` with CHAT_TLS_CERT/CHAT_TLS_KEY serves HTTPS and WSS: a
//! self-signed certificate made here, the real binary started on databases,
//! a vhost and a port of its own, the page and the API fetched over HTTPS and
//! a WebSocket opened over WSS, each trusting only that certificate.

use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The running server, killed when the test ends however it ends.
struct Server {
    child: tokio::process::Child,
    log: std::path::PathBuf,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The next text frame, as JSON, within ten seconds.
async fn text_frame(ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("a JSON frame");
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Client {
    tls: TlsConnector,
    port: u16,
}

impl Client {
    async fn connect(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let name = ServerName::try_from("localhost").expect("a DNS name");
        self.tls.connect(name, tcp).await
    }

    /// One HTTP/1.1 request over TLS: (status, head, body).
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> std::io::Result<(u16, String, String)> {
        let mut stream = self.connect().await?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        match stream.read_to_end(&mut raw).await {
            Ok(_) => {}
            // A peer that closes without close_notify: the answer is complete anyway.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, head.to_lowercase(), body.to_owned()))
    }
}

async fn start(cert_pem: &str, key_pem: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("chat-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key, log) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("chat.log"),
    );
    std::fs::write(&cert, cert_pem).expect("write cert");
    std::fs::write(&key, key_pem).expect("write key");
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"))
        .arg("up")
        .env("CHAT_DATABASE_URL", &LOG_DB.url)
        .env("CHAT_READ_DATABASE_URL", &READ_DB.url)
        .env("CHAT_AMQP_URL", &VHOST.amqp_url)
        .env("CHAT_REDIS_URL", test_support::redis_url())
        .env(
            "CHAT_JWT_SECRET",
            "tls-test-secret-tls-test-secret-tls-test",
        )
        .env("CHAT_HTTP_ADDR", format!("127.0.0.1:{port}"))
        // Other tests register from 127.0.0.1 through the same Redis at once:
        // the per-address login throttle must not make this one flaky.
        .env("CHAT_AUTH_ATTEMPTS_PER_MIN", "100000")
        .env("CHAT_TLS_CERT", &cert)
        .env("CHAT_TLS_KEY", &key)
        .env_remove("CHAT_PUBLIC_URL")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("chat up starts");
    Server { child, log, port }
}

// One set of backing resources for the one test in this binary.
static LOG_DB: std::sync::LazyLock<test_support::ScratchDb> =
    std::sync::LazyLock::new(|| test_support::ScratchDb::new("chat_tls"));
static READ_DB: std::sync::LazyLock<test_support::ScratchDb> =
    std::sync::LazyLock::new(|| test_support::ScratchDb::new("chat_tls_read"));
static VHOST: std::sync::LazyLock<test_support::TestVhost> =
    std::sync::LazyLock::new(test_support::TestVhost::new);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_up_serves_the_page_the_api_and_websockets_over_tls() {
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("a self-signed certificate");
    let cert_pem = generated.cert.pem();
    let mut server = start(&cert_pem, &generated.signing_key.serialize_pem()).await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(generated.cert.der().to_vec()))
        .expect("trust the test certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = Client {
        tls: TlsConnector::from(Arc::new(config)),
        port: server.port,
    };

    // Up within a minute (databases, exchanges and queues are created first).
    let mut healthy = false;
    for _ in 0..120 {
        if let Ok((200, _, _)) = client.request("GET", "/health", None).await {
            healthy = true;
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "chat up exited with {status}: {}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    assert!(healthy, "no HTTPS answer from /health: {log}");
    assert!(log.contains("TLS on"), "the start says TLS is on: {log}");
    assert!(
        log.contains(&format!("https://127.0.0.1:{}/", server.port)),
        "{log}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("tcp");
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "plain HTTP was served"
    );

    // The page, with a policy that lets it open its socket over WSS.
    let (status, head, body) = client.request("GET", "/", None).await.expect("page");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains(&format!("wss://localhost:{}", server.port)),
        "the CSP allows wss to itself: {head}"
    );
    assert!(body.contains("/static/app.js"));

    // The API over HTTPS.
    let username = format!("tls_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let creds = json!({"username": username, "password": "correct horse"});
    let (status, _, body) = client
        .request("POST", "/api/users", Some(creds.clone()))
        .await
        .expect("register");
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = client
        .request("POST", "/api/auth/token", Some(creds))
        .await
        .expect("token");
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).expect("JSON");
    let token = token["access_token"].as_str().expect("access_token");

    // A WebSocket over WSS, from the page's own (https) origin.
    let stream = client.connect().await.expect("TLS for the socket");
    let mut request = format!("wss://localhost:{}/ws?access_token={token}", server.port)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "origin",
        format!("https://localhost:{}", server.port)
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("handshake in time")
    .expect("WSS handshake");
    let welcome = text_frame(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    ws.send(Message::text(json!({"type": "ping", "id": 7}).to_string()))
        .await
        .expect("send ping");
    let pong = text_frame(&mut ws).await;
    assert_eq!((&pong["type"], &pong["id"]), (&json!("pong"), &json!(7)));
    let _ = ws.close(None).await;
}
