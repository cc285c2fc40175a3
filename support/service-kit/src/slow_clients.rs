//! Bounds on slow clients (slowloris, issue #11) that actix-web leaves to its
//! user. Its `client_request_timeout` bounds the head of a connection's
//! *first* request only, and nothing bounds a body: a client that sent one
//! quick request and then the next head a byte a second, or any body a byte a
//! second, held its connection (a task, buffers, a file descriptor, one of the
//! worker's connection slots) for as long as it liked.
//!
//! Two guards close that:
//! - [`guard_slow_clients`] (middleware): the body of a request must arrive
//!   within [`ClientTimeouts::body`] of its head, else the extractor fails
//!   and the answer is 408 `request_timeout`; and it tells the connection's
//!   watch when a request starts, when its answer is done and when the
//!   connection became a WebSocket.
//! - [`watch_socket`] (from `HttpServer::on_connect`): after an answer,
//!   the next request must reach the app within `keep_alive + head`; the
//!   watch shuts the socket down if it does not. An idle connection is
//!   closed by actix itself after `keep_alive`; the watch catches the one
//!   that keeps the keep-alive timer quiet with a trickle of bytes. Upgraded
//!   connections (WebSockets, with their own heartbeat) are left alone.

use crate::ApiError;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpMessage, web};
use futures_util::Stream;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// The error text of a body that did not arrive in time.
pub(crate) const BODY_TIMED_OUT: &str = "the request body did not arrive in time";

/// How long a client may take (`CHAT_HTTP_HEAD_TIMEOUT_SECS`,
/// `CHAT_HTTP_BODY_TIMEOUT_SECS`, `CHAT_HTTP_KEEP_ALIVE_SECS`). Register it as
/// `web::Data<ClientTimeouts>` for [`guard_slow_clients`]; give the server
/// `head` as `client_request_timeout` and `keep_alive` as its keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// A request head, from the connection's first byte (or from the end of
    /// the answer before it, plus `keep_alive`).
    pub head: Duration,
    /// A request body, from the end of its head.
    pub body: Duration,
    /// An idle connection between requests.
    pub keep_alive: Duration,
}

impl ClientTimeouts {
    /// How long after an answer the next request may take to reach the app.
    pub fn between_requests(&self) -> Duration {
        self.keep_alive + self.head
    }
}

/// Where a connection is, as its watch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request since then.
    Idle(Instant),
    /// This many requests are being answered.
    Busy(u32),
    /// A WebSocket now: no HTTP deadline applies.
    Upgraded,
}

/// What the middleware tells a connection's watch.
#[derive(Debug)]
struct Clock {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Clock {
    fn set(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn started(&self) {
        self.set(|phase| match phase {
            Phase::Idle(_) => Phase::Busy(1),
            Phase::Busy(n) => Phase::Busy(n.saturating_add(1)),
            Phase::Upgraded => Phase::Upgraded,
        });
    }

    fn finished(&self) {
        self.set(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            Phase::Busy(_) | Phase::Idle(_) => Phase::Idle(Instant::now()),
            Phase::Upgraded => Phase::Upgraded,
        });
    }
}

/// The connection data `watch_connection` leaves for the middleware; its drop
/// (the connection is gone) ends the watch.
struct Watched {
    clock: Arc<Clock>,
    _alive: oneshot::Sender<()>,
}

/// [`watch_socket`] for a plain TCP connection as `HttpServer::on_connect`
/// hands it over; false if `io` is something else (a TLS stream: the caller
/// passes its TCP socket to [`watch_socket`]).
pub fn watch_tcp(
    io: &dyn std::any::Any,
    timeouts: ClientTimeouts,
    extensions: &mut Extensions,
) -> bool {
    match io.downcast_ref::<actix_web::rt::net::TcpStream>() {
        Some(tcp) => {
            watch_socket(tcp, timeouts, extensions);
            true
        }
        None => false,
    }
}

/// Watches the HTTP/1 connection on `tcp` (from `HttpServer::on_connect`):
/// shuts the socket down when a request does not reach the app within
/// `timeouts.between_requests()` of the answer before it (or of the
/// connection's start). It holds a duplicate of the socket's descriptor,
/// closed as soon as actix drops the connection. Needs a Tokio runtime
/// (actix's workers run one).
pub fn watch_socket(
    tcp: &tokio::net::TcpStream,
    timeouts: ClientTimeouts,
    extensions: &mut Extensions,
) {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        match tcp.as_fd().try_clone_to_owned() {
            Ok(fd) => watch_connection(std::net::TcpStream::from(fd), timeouts, extensions),
            Err(e) => tracing::warn!(error = %e, "cannot watch a connection for slow clients"),
        }
    }
    #[cfg(not(unix))]
    let _ = (tcp, timeouts, extensions);
}

fn watch_connection(
    socket: std::net::TcpStream,
    timeouts: ClientTimeouts,
    extensions: &mut Extensions,
) {
    let clock = Arc::new(Clock {
        phase: Mutex::new(Phase::Idle(Instant::now())),
        changed: Notify::new(),
    });
    let (alive, gone) = oneshot::channel();
    extensions.insert(Watched {
        clock: clock.clone(),
        _alive: alive,
    });
    tokio::spawn(watch(socket, clock, timeouts.between_requests(), gone));
}

async fn watch(
    socket: std::net::TcpStream,
    clock: Arc<Clock>,
    limit: Duration,
    mut gone: oneshot::Receiver<()>,
) {
    loop {
        let changed = clock.changed.notified();
        let deadline = match clock.phase() {
            Phase::Idle(since) => since + limit,
            Phase::Busy(_) => Instant::now() + Duration::from_secs(24 * 3600),
            Phase::Upgraded => return,
        };
        tokio::select! {
            _ = &mut gone => return,
            () = changed => {}
            () = tokio::time::sleep_until(deadline) => {
                if matches!(clock.phase(), Phase::Idle(since) if since + limit <= Instant::now()) {
                    metrics::counter!("http_slow_clients_closed_total").increment(1);
                    let _ = socket.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
}

/// Middleware: the body deadline, and the connection watch's bookkeeping
/// (see the module docs). Reads `web::Data<ClientTimeouts>`; without it,
/// requests pass untouched.
pub async fn guard_slow_clients(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(timeouts) = req
        .app_data::<web::Data<ClientTimeouts>>()
        .map(|t| *t.get_ref())
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let clock = req.conn_data::<Watched>().map(|w| w.clock.clone());
    // A WebSocket's "body" is the socket itself: no deadline for it.
    let websocket = req
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let payload = req.take_payload();
    if websocket || matches!(payload, Payload::None) {
        req.set_payload(payload);
    } else {
        req.set_payload(Payload::Stream {
            payload: Box::pin(Deadline {
                inner: payload,
                sleep: Box::pin(tokio::time::sleep(timeouts.body)),
                expired: false,
            }),
        });
    }
    let Some(clock) = clock else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    clock.started();
    let done = Finished(Some(clock.clone()));
    let res = match next.call(req).await {
        Ok(res) => res,
        Err(e) => {
            drop(done);
            return Err(e);
        }
    };
    if res.status() == StatusCode::SWITCHING_PROTOCOLS {
        clock.set(|_| Phase::Upgraded);
    }
    Ok(res.map_body(|_, body| {
        BoxBody::new(Tracked {
            body: body.boxed(),
            _done: done,
        })
    }))
}

/// Marks the request finished when dropped (with the answer's body, once sent).
struct Finished(Option<Arc<Clock>>);

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(clock) = self.0.take() {
            clock.finished();
        }
    }
}

/// An answer's body that marks its request finished when it is dropped.
struct Tracked {
    body: BoxBody,
    _done: Finished,
}

impl MessageBody for Tracked {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// A request body that fails once its deadline passes.
struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending if this.sleep.as_mut().poll(cx).is_ready() => {
                this.expired = true;
                let error = io::Error::new(io::ErrorKind::TimedOut, BODY_TIMED_OUT);
                Poll::Ready(Some(Err(PayloadError::Io(error))))
            }
            other => other,
        }
    }
}

/// The answer to a body that did not arrive in time.
pub(crate) fn body_timed_out() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        BODY_TIMED_OUT,
    )
}

/// The answer to a body that could not be read, for handlers that read the
/// payload themselves: 408 `request_timeout` when its deadline passed, else
/// 400 `malformed_json`.
pub fn payload_error(error: &PayloadError) -> ApiError {
    if is_body_timeout(error) {
        body_timed_out()
    } else {
        ApiError::bad_request(
            "malformed_json",
            format!("the body could not be read: {error}"),
        )
    }
}

/// Whether `error` is a [`Deadline`]'s.
pub(crate) fn is_body_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_watch_waits_while_busy_and_counts_from_the_last_answer() {
        let clock = Clock {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        };
        clock.started();
        clock.started();
        assert_eq!(clock.phase(), Phase::Busy(2));
        clock.finished();
        assert_eq!(clock.phase(), Phase::Busy(1));
        let before = Instant::now();
        clock.finished();
        assert!(matches!(clock.phase(), Phase::Idle(since) if since >= before));
        clock.set(|_| Phase::Upgraded);
        clock.started();
        clock.finished();
        assert_eq!(clock.phase(), Phase::Upgraded);
    }

    #[tokio::test]
    async fn a_body_past_its_deadline_fails_with_a_timeout() {
        use futures_util::StreamExt;
        let (_sender, payload) = actix_http::h1::Payload::create(false);
        let mut body = Deadline {
            inner: Payload::from(payload),
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
            expired: false,
        };
        let next = tokio::time::timeout(Duration::from_secs(10), body.next()).await;
        let error = next
            .expect("the deadline ends the wait")
            .expect("an item")
            .expect_err("an error");
        assert!(is_body_timeout(&error));
        assert!(body.next().await.is_none());
    }
}
