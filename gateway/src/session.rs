//! One socket: a writer task drains the connection's bounded queue into the
//! socket; this task reads frames, keeps the heartbeat, and closes the socket
//! with a 4000-range code when the client is slow, silent, floods, or its
//! token expires. This loop never awaits the socket itself (pings and pongs
//! go through the writer's queue), so a client that stops reading cannot
//! stop its heartbeat, expiry or slow-consumer checks.

use crate::connection::{Connection, Outbound};
use crate::frames::{ServerFrame, close, parse_client_frame};
use crate::limits::{FrameBudget, TypingThrottle, Verdict};
use crate::{Gateway, commands};
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session,
};
use auth::Claims;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the read loop keeps per socket besides the connection.
pub(crate) struct Inbound {
    pub typing: TypingThrottle,
}

/// Undoes a session's registrations however it ends (a panic included).
struct Registered {
    gateway: Arc<Gateway>,
    connection: Arc<Connection>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let (gateway, connection) = (self.gateway.clone(), self.connection.clone());
        connection.close();
        let channels = gateway.hub.remove_connection(connection.id);
        gateway.sockets.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("ws_connections").decrement(1.0);
        tokio::spawn(async move {
            for channel in channels {
                if let Err(e) = gateway
                    .presence
                    .leave(channel, connection.user_id, connection.id)
                    .await
                {
                    tracing::warn!(error = %e, "presence leave failed");
                }
            }
            if let Err(e) = gateway
                .slots
                .release(connection.user_id, connection.id)
                .await
            {
                tracing::warn!(error = %e, "socket slot not released");
            }
        });
    }
}

pub(crate) async fn run(
    gateway: Arc<Gateway>,
    ws: Session,
    mut stream: AggregatedMessageStream,
    claims: Claims,
) {
    let config = &gateway.config;
    let (connection, rx) = Connection::new(claims.sub, config.outbound_capacity);
    match gateway.slots.acquire(claims.sub, connection.id).await {
        Ok(true) => {}
        Ok(false) => {
            metrics::counter!("ws_refused_sockets_total").increment(1);
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                ws.close(Some(closing(close::TOO_MANY_SOCKETS))),
            )
            .await;
            return;
        }
        // The limit protects the service; Redis down must not take sockets down.
        Err(e) => tracing::warn!(error = %e, "socket limit unavailable; admitting the socket"),
    }
    gateway.sockets.fetch_add(1, Ordering::Relaxed);
    metrics::gauge!("ws_connections").increment(1.0);
    metrics::counter!("ws_connections_total").increment(1);
    let registered = Registered {
        gateway: gateway.clone(),
        connection: connection.clone(),
    };
    let writer = tokio::spawn(write_frames(ws.clone(), rx, connection.clone()));
    let welcome = ServerFrame::Welcome {
        user_id: claims.sub,
        heartbeat_ms: config.heartbeat.as_millis() as u64,
    };
    connection.push(welcome.to_text().into());

    let expires_at = Instant::now()
        + Duration::from_secs(
            claims
                .exp
                .saturating_sub(chrono::Utc::now().timestamp())
                .max(0) as u64,
        );
    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let mut budget = FrameBudget::new(config.frames_per_sec, config.frames_burst);
    let mut inbound = Inbound {
        typing: TypingThrottle::new(config.typing_interval),
    };
    let code = loop {
        tokio::select! {
            message = stream.recv() => {
                last_heard = Instant::now();
                let counted = matches!(message, Some(Ok(AggregatedMessage::Text(_) | AggregatedMessage::Binary(_))));
                if counted {
                    match budget.check(last_heard) {
                        Verdict::Admit => {}
                        Verdict::Refuse { notify } => {
                            metrics::counter!("ws_frames_refused_total").increment(1);
                            if notify {
                                connection.push(ServerFrame::error("rate_limited", "too many frames: slow down", None).to_text().into());
                            }
                            continue;
                        }
                        Verdict::Close => break close::FLOODING,
                    }
                }
                match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        metrics::counter!("ws_frames_in_total").increment(1);
                        let (id, frame) = parse_client_frame(&text);
                        match frame {
                            Ok(frame) => commands::handle(&gateway, &connection, &mut inbound, frame, id).await,
                            Err(e) => { connection.push(ServerFrame::error(e.code, e.message, id).to_text().into()); }
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        connection.push(ServerFrame::error("unsupported_frame", "frames are JSON text", None).to_text().into());
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => connection.control(Outbound::Pong(bytes)),
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => break 0,
                    Some(Err(e)) if too_large(&e) => {
                        connection.push(ServerFrame::error("frame_too_large", format!("frames are limited to {} bytes", config.max_frame_bytes), None).to_text().into());
                        break close::FRAME_TOO_LARGE;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "protocol error");
                        break u16::from(CloseCode::Protocol);
                    }
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.client_timeout {
                    break close::HEARTBEAT_TIMEOUT;
                }
                if connection.write_stalled_for() > config.client_timeout {
                    metrics::counter!("ws_slow_consumer_disconnects_total").increment(1);
                    break close::SLOW_CONSUMER;
                }
                connection.control(Outbound::Ping);
                refresh(&gateway, &connection);
            }
            _ = tokio::time::sleep_until(expires_at) => break close::TOKEN_EXPIRED,
            _ = connection.kill.notified() => break connection.kill_code().unwrap_or(close::SLOW_CONSUMER),
        }
    };
    // Nothing more is queued; let what is queued (an error, say) go out
    // before the close, but never wait long.
    drop(stream);
    connection.close();
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while !writer.is_finished() && connection.queued() > 0 && code != close::SLOW_CONSUMER {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    writer.abort();
    drop(registered);
    let reason = (code != 0).then(|| closing(code));
    // A slow reader sees the close code once it drains what is queued; give it
    // a while in the background, then let the socket go.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(10), ws.close(reason)).await;
    });
}

/// An oversized frame, or an oversized message in fragments (actix-ws reports
/// the latter as an I/O error, and the frame guard's refusal arrives as one).
fn too_large(error: &ProtocolError) -> bool {
    match error {
        ProtocolError::Overflow => true,
        ProtocolError::Io(e) => {
            let text = e.to_string();
            text.contains("maximum continuation size")
                || text.contains(crate::frame_guard::TOO_LARGE)
        }
        _ => false,
    }
}

/// Keeps this socket's presence and slot alive in Redis, re-creating what a
/// flush lost; off the read loop, so a slow Redis never delays it.
fn refresh(gateway: &Arc<Gateway>, connection: &Arc<Connection>) {
    let (gateway, connection) = (gateway.clone(), connection.clone());
    tokio::spawn(async move {
        let channels = gateway.hub.channels_of(connection.id);
        if !channels.is_empty()
            && let Err(e) = gateway
                .presence
                .refresh(&channels, connection.user_id, connection.id)
                .await
        {
            tracing::warn!(error = %e, "presence refresh failed");
        }
        if let Err(e) = gateway
            .slots
            .refresh(connection.user_id, connection.id)
            .await
        {
            tracing::warn!(error = %e, "socket slot refresh failed");
        }
    });
}

fn closing(code: u16) -> CloseReason {
    CloseReason {
        code: CloseCode::from(code),
        description: Some(close::reason(code).into()),
    }
}

async fn write_frames(
    mut ws: Session,
    mut rx: mpsc::Receiver<Outbound>,
    connection: Arc<Connection>,
) {
    while let Some(outbound) = rx.recv().await {
        connection.writer_took();
        let sent = match outbound {
            Outbound::Text(frame) => ws.text(frame).await,
            Outbound::Ping => ws.ping(b"").await,
            Outbound::Pong(bytes) => ws.pong(&bytes).await,
        };
        connection.writer_idle();
        if sent.is_err() {
            return;
        }
    }
}
