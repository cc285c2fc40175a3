//! A raw HTTP/1.1 client over TCP: the bytes on the wire are exactly what a
//! test wrote (no client library normalises paths, headers or bodies), and
//! the answer is read to its end by `Content-Length` or chunked framing.

use serde_json::Value;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one answer may take before the test calls it hung.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);
/// The longest head this client reads.
const MAX_HEAD: usize = 1 << 20;

/// One request, written out by [`Request::bytes`].
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
}

/// `GET target`.
pub fn get(target: &str) -> Request {
    Request::new("GET", target)
}

/// `POST target` with a JSON body.
pub fn post(target: &str, body: &Value) -> Request {
    Request::new("POST", target).json(body)
}

impl Request {
    pub fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header (raw bytes: tests send what no library would).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// `Authorization: Bearer {token}`.
    pub fn token(self, token: &str) -> Request {
        self.header("Authorization", format!("Bearer {token}"))
    }

    /// A JSON body.
    pub fn json(self, body: &Value) -> Request {
        self.raw_body(body.to_string().into_bytes())
    }

    /// A body of exactly these bytes, as `application/json`.
    pub fn raw_body(mut self, body: Vec<u8>) -> Request {
        self.body = Some(body);
        self.header("Content-Type", "application/json")
    }

    /// The request on the wire, with `Host`, `Connection: close` and the length.
    pub fn bytes(&self, port: u16) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(body) = &self.body {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `error.code` of an error answer, or "".
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let shown: String = text.chars().take(600).collect();
        format!("{} {shown}", self.status)
    }

    /// Whether the body is the error contract's `{"error":{"code","message"}}`.
    pub fn is_error_contract(&self) -> bool {
        let json = self.json();
        json["error"]["code"].is_string() && json["error"]["message"].is_string()
    }
}

/// Sends `request` on a new connection and reads the answer.
pub async fn try_send(port: u16, request: &Request) -> io::Result<Reply> {
    exchange(port, &request.bytes(port)).await
}

/// Sends `request`, which must get an HTTP answer in time.
pub async fn send(port: u16, request: &Request) -> Reply {
    try_send(port, request)
        .await
        .unwrap_or_else(|e| panic!("{} {}: no answer: {e}", request.method, request.target))
}

/// Writes `bytes` on a new connection and reads one answer. A server that
/// answers before it read everything (413, 431) may reset the rest of the
/// write: the answer still counts.
pub async fn exchange(port: u16, bytes: &[u8]) -> io::Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let written = stream.write_all(bytes).await;
    match tokio::time::timeout(ANSWER_WITHIN, read_reply(&mut stream)).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(written.err().unwrap_or(e)),
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
    }
}

/// Reads one answer from `stream`: its head, then its body by its framing.
pub async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Reply> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buffer, b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_HEAD {
            return Err(io::Error::other("answer head too long"));
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "closed before an answer: {:?}",
                    String::from_utf8_lossy(&buffer)
                ),
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut rest = buffer[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line: {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let body = if status == 101 || status == 204 || status == 304 {
        Vec::new()
    } else if value("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(stream, rest).await?
    } else if let Some(length) = value("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while rest.len() < length {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short body"));
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(length);
        rest
    } else {
        stream.read_to_end(&mut rest).await?;
        rest
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn dechunk<S: AsyncRead + Unpin>(stream: &mut S, mut buffer: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = find(&buffer, b"\r\n") {
                break at;
            }
            fill(stream, &mut buffer).await?;
        };
        let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size_text:?}")))?;
        buffer.drain(..line_end + 2);
        while buffer.len() < size + 2 {
            fill(stream, &mut buffer).await?;
        }
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&buffer[..size]);
        buffer.drain(..size + 2);
    }
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed in a chunk",
        ));
    }
    buffer.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
