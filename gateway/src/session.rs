//! One socket: a writer task drains the connection's bounded queue into the
//! socket; this task reads frames, keeps the heartbeat, and closes the socket
//! with a 4000-range code when the client is slow, silent, or its token expires.

use crate::frames::{ServerFrame, close, parse_client_frame};
use crate::hub::{Connection, Outbound};
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

pub(crate) async fn run(
    gateway: Arc<Gateway>,
    ws: Session,
    mut stream: AggregatedMessageStream,
    claims: Claims,
) {
    let (tx, rx) = mpsc::channel(gateway.config.outbound_capacity);
    let connection = Connection::new(claims.sub, tx);
    gateway.sockets.fetch_add(1, Ordering::Relaxed);
    metrics::gauge!("ws_connections").increment(1.0);
    metrics::counter!("ws_connections_total").increment(1);
    let writer = tokio::spawn(write_frames(ws.clone(), rx));
    let welcome = ServerFrame::Welcome {
        user_id: claims.sub,
        heartbeat_ms: gateway.config.heartbeat.as_millis() as u64,
    };
    connection.push(welcome.to_text().into());

    let expires_at = Instant::now()
        + Duration::from_secs(
            claims
                .exp
                .saturating_sub(chrono::Utc::now().timestamp())
                .max(0) as u64,
        );
    let mut heartbeat = tokio::time::interval(gateway.config.heartbeat);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let mut pinger = ws.clone();
    let reason = loop {
        tokio::select! {
            message = stream.recv() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        metrics::counter!("ws_frames_in_total").increment(1);
                        let (id, frame) = parse_client_frame(&text);
                        match frame {
                            Ok(frame) => commands::handle(&gateway, &connection, frame, id).await,
                            Err(e) => { connection.push(ServerFrame::error(e.code, e.message, id).to_text().into()); }
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        connection.push(ServerFrame::error("unsupported_frame", "frames are JSON text", None).to_text().into());
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => { let _ = pinger.pong(&bytes).await; }
                    Some(Ok(AggregatedMessage::Pong(_))) => {}
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(ProtocolError::Overflow)) => {
                        connection.push(ServerFrame::error("frame_too_large", format!("frames are limited to {} bytes", gateway.config.max_frame_bytes), None).to_text().into());
                        break Some(closing(close::FRAME_TOO_LARGE, "frame too large"));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "protocol error");
                        break Some(CloseReason { code: CloseCode::Protocol, description: Some("protocol error".into()) });
                    }
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > gateway.config.client_timeout {
                    break Some(closing(close::HEARTBEAT_TIMEOUT, "heartbeat timeout"));
                }
                if pinger.ping(b"").await.is_err() {
                    break None;
                }
                let channels = gateway.hub.channels_of(connection.id);
                if !channels.is_empty()
                    && let Err(e) = gateway.presence.refresh(&channels, connection.user_id, connection.id).await
                {
                    tracing::warn!(error = %e, "presence refresh failed");
                }
            }
            _ = tokio::time::sleep_until(expires_at) => break Some(closing(close::TOKEN_EXPIRED, "token expired")),
            _ = connection.kill.notified() => break Some(closing(close::SLOW_CONSUMER, "slow consumer")),
        }
    };
    // Let the queued frames (an error, say) go out before the close, but never wait long.
    drop(stream);
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while !writer.is_finished()
            && connection.tx.capacity() < connection.tx.max_capacity()
            && !connection.is_slow()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    writer.abort();
    // A slow reader sees the close code once it drains what is queued; give it
    // a while in the background, then let the socket go.
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(10), ws.close(reason)).await;
    });
    for channel in gateway.hub.remove_connection(connection.id) {
        if let Err(e) = gateway
            .presence
            .leave(channel, connection.user_id, connection.id)
            .await
        {
            tracing::warn!(error = %e, "presence leave failed");
        }
    }
    gateway.sockets.fetch_sub(1, Ordering::Relaxed);
    metrics::gauge!("ws_connections").decrement(1.0);
}

fn closing(code: u16, description: &str) -> CloseReason {
    CloseReason {
        code: CloseCode::Other(code),
        description: Some(description.into()),
    }
}

async fn write_frames(mut ws: Session, mut rx: mpsc::Receiver<Outbound>) {
    while let Some(Outbound::Text(frame)) = rx.recv().await {
        if ws.text(frame.to_string()).await.is_err() {
            return;
        }
    }
}
