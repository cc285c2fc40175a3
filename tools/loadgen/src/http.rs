//! A minimal HTTP/1.1 client over one keep-alive TCP connection, enough for
//! the load generators (no extra crates in the build).

use anyhow::{Context, bail};
use serde_json::Value;
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `http://host:port` → `host:port`.
pub fn authority(base: &str) -> anyhow::Result<String> {
    let rest = base
        .strip_prefix("http://")
        .context("the base URL must start with http://")?
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        bail!("the base URL must be http://host:port");
    }
    Ok(if rest.ends_with(']') || !rest.contains(':') {
        format!("{rest}:80")
    } else {
        rest.to_owned()
    })
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<u64>,
}

impl Response {
    pub fn json(&self) -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The JSON body if the status is `want`, else an error naming both.
    pub fn expect(&self, want: u16, what: &str) -> anyhow::Result<Value> {
        if self.status != want {
            bail!(
                "{what}: HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            );
        }
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        self.json()
    }
}

pub struct Client {
    authority: String,
    conn: Option<BufReader<TcpStream>>,
}

enum Failure {
    /// Nothing of a response arrived: safe to retry on a fresh connection
    /// when the old one was a reused keep-alive connection.
    BeforeResponse(anyhow::Error),
    During(anyhow::Error),
}

impl Client {
    pub fn new(authority: &str) -> Client {
        Client {
            authority: authority.to_owned(),
            conn: None,
        }
    }

    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        self.request_with(method, path, token, body, &[]).await
    }

    /// `request` with extra headers (e.g. `Idempotency-Key`).
    pub async fn request_with(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut message = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n",
            self.authority
        );
        if let Some(token) = token {
            message.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            message.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            message.push_str("Content-Type: application/json\r\n");
        }
        if !body.is_empty() || method != "GET" {
            message.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        message.push_str("\r\n");
        message.push_str(&body);
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            let conn = match &mut self.conn {
                Some(conn) => conn,
                empty => {
                    let stream = TcpStream::connect(&self.authority)
                        .await
                        .with_context(|| format!("connect to {}", self.authority))?;
                    stream.set_nodelay(true)?;
                    empty.insert(BufReader::with_capacity(8 * 1024, stream))
                }
            };
            match exchange(conn, message.as_bytes(), method == "HEAD").await {
                Ok((response, keep_alive)) => {
                    if !keep_alive {
                        self.conn = None;
                    }
                    return Ok(response);
                }
                Err(Failure::BeforeResponse(_)) if reused && attempt == 0 => {
                    self.conn = None;
                }
                Err(Failure::BeforeResponse(e) | Failure::During(e)) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        bail!("{method} {path}: the connection closed twice")
    }
}

async fn exchange(
    conn: &mut BufReader<TcpStream>,
    message: &[u8],
    head_only: bool,
) -> Result<(Response, bool), Failure> {
    let before = |e: std::io::Error| Failure::BeforeResponse(e.into());
    conn.get_mut().write_all(message).await.map_err(before)?;
    let mut line = String::new();
    if conn.read_line(&mut line).await.map_err(before)? == 0 {
        return Err(Failure::BeforeResponse(anyhow::anyhow!(
            "connection closed before a response"
        )));
    }
    read_rest(conn, &line, head_only)
        .await
        .map_err(Failure::During)
}

async fn read_rest(
    conn: &mut BufReader<TcpStream>,
    status_line: &str,
    head_only: bool,
) -> anyhow::Result<(Response, bool)> {
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut keep_alive = version == "HTTP/1.1";
    let (mut length, mut chunked) = (None::<usize>, false);
    let mut retry_after = None;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            bail!("connection closed in the headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse().context("Content-Length")?),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "retry-after" => retry_after = value.parse().ok(),
            "connection" => {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    keep_alive = false;
                } else if value.contains("keep-alive") {
                    keep_alive = true;
                }
            }
            _ => {}
        }
    }
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
    } else if chunked {
        loop {
            let mut size = String::new();
            conn.read_line(&mut size).await?;
            let size = size.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16).context("chunk size")?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut trailer = String::new();
                    if conn.read_line(&mut trailer).await? == 0 || trailer.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let at = body.len();
            body.resize(at + size, 0);
            conn.read_exact(&mut body[at..]).await?;
            let mut crlf = [0u8; 2];
            conn.read_exact(&mut crlf).await?;
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        conn.read_exact(&mut body).await?;
    } else {
        conn.read_to_end(&mut body).await?;
        keep_alive = false;
    }
    Ok((
        Response {
            status,
            body,
            retry_after,
        },
        keep_alive,
    ))
}

/// Idle keep-alive connections for concurrent tasks.
pub struct Pool {
    authority: String,
    idle: Mutex<Vec<Client>>,
}

impl Pool {
    pub fn new(authority: &str) -> Pool {
        Pool {
            authority: authority.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn take(&self) -> Client {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Client::new(&self.authority))
    }

    pub fn put(&self, client: Client) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(client);
    }
}

/// Registers `username` and returns an access token for it.
pub async fn register(
    client: &mut Client,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let body = serde_json::json!({ "username": username, "password": password });
    patiently(client, "POST", "/api/users", Some(&body))
        .await?
        .0
        .expect(201, "register")?;
    let token = patiently(client, "POST", "/api/auth/token", Some(&body))
        .await?
        .0
        .expect(200, "token")?;
    token["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("token response without access_token")
}

/// Sends an unauthenticated request again, after its `Retry-After`, while the
/// server answers 429 (throttled) or 503 (e.g. its password hashing queue is
/// full), up to 20 times; returns the last answer and how many were refused.
pub async fn patiently(
    client: &mut Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(Response, u32)> {
    let mut refused = 0;
    loop {
        let response = client.request(method, path, None, body).await?;
        if !matches!(response.status, 429 | 503) || refused == 20 {
            return Ok((response, refused));
        }
        refused += 1;
        let wait = response.retry_after.unwrap_or(1).clamp(1, 60);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
}
