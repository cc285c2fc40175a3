//! What each client frame does. Every frame is authorized on its own: a
//! subscription is checked against the log, a send goes through the
//! command service like an HTTP send (same rules, same error codes).

use crate::connection::Connection;
use crate::frames::{ClientFrame, ServerFrame, UnsubscribeReason};
use crate::hub::Live;
use crate::session::Inbound;
use crate::{Gateway, subscribe};
use command_service::{CommandContext, CommandError, Executed, Intent};
use domain::{ChannelCommand, MessageId};
use serde_json::Value;
use service_kit::ApiError;
use std::sync::Arc;
use uuid::Uuid;

pub(crate) async fn handle(
    gateway: &Arc<Gateway>,
    connection: &Arc<Connection>,
    inbound: &mut Inbound,
    frame: ClientFrame,
    id: Option<Value>,
) {
    let reply = match frame {
        ClientFrame::Ping => Some(ServerFrame::Pong { id }),
        ClientFrame::Subscribe {
            channel_id,
            after_seq,
        } => subscribe::subscribe(gateway, connection, channel_id, after_seq, id).await,
        ClientFrame::Unsubscribe { channel_id } => {
            inbound.typing.forget(channel_id);
            if gateway.hub.unsubscribe(connection.id, channel_id)
                && let Err(e) = gateway
                    .presence
                    .leave(channel_id, connection.user_id, connection.id)
                    .await
            {
                tracing::warn!(error = %e, "presence leave failed");
            }
            Some(ServerFrame::Unsubscribed {
                id,
                channel_id,
                reason: UnsubscribeReason::Unsubscribed,
            })
        }
        ClientFrame::Typing { channel_id } => {
            if !gateway.hub.is_subscribed(connection.id, channel_id) {
                Some(ServerFrame::error(
                    "not_subscribed",
                    "subscribe to the channel first",
                    id,
                ))
            } else if !inbound
                .typing
                .admit(channel_id, tokio::time::Instant::now())
            {
                metrics::counter!("ws_typing_dropped_total").increment(1);
                None
            } else {
                let typing = redis_store::LiveEvent::Typing {
                    channel_id,
                    user_id: connection.user_id,
                };
                gateway.presence.publish(&typing).await.err().map(|e| {
                    tracing::warn!(error = %e, "typing not published");
                    unavailable(id)
                })
            }
        }
        ClientFrame::Send {
            channel_id,
            content,
            client_msg_id,
            message_type,
        } => {
            match command_service::client_msg_key(
                connection.user_id.into(),
                channel_id.into(),
                &client_msg_id,
            ) {
                // The rule HTTP applies, with its code (`validation_failed`).
                Err(invalid) => Some(error_frame(CommandError::Rejected(invalid), id)),
                Ok(key) => {
                    let command = ChannelCommand::SendMessage {
                        message_id: MessageId::new(),
                        content,
                        message_type: message_type.unwrap_or_else(|| "text".into()),
                        client_msg_id: Some(client_msg_id.clone()),
                    };
                    let result = execute(
                        gateway,
                        connection,
                        channel_id,
                        Intent::Command(command),
                        Some(key),
                        "MessageSent",
                    )
                    .await;
                    Some(reply_with(result, id, Some(client_msg_id)))
                }
            }
        }
        ClientFrame::Edit {
            channel_id,
            message_id,
            content,
        } => {
            let intent = Intent::Edit {
                message_id: message_id.into(),
                content,
            };
            Some(reply_with(
                execute(
                    gateway,
                    connection,
                    channel_id,
                    intent,
                    None,
                    "MessageEdited",
                )
                .await,
                id,
                None,
            ))
        }
        ClientFrame::Delete {
            channel_id,
            message_id,
        } => {
            let intent = Intent::Delete {
                message_id: message_id.into(),
            };
            let result = execute(
                gateway,
                connection,
                channel_id,
                intent,
                None,
                "MessageDeleted",
            )
            .await;
            Some(match result {
                Ok(_) => ServerFrame::Ack {
                    id,
                    client_msg_id: None,
                    message_id: Some(message_id),
                    seq: None,
                },
                Err(e) => error_frame(e, id),
            })
        }
        ClientFrame::Read { channel_id, seq } => {
            let intent = Intent::Command(ChannelCommand::MarkRead { seq });
            Some(
                match execute(gateway, connection, channel_id, intent, None, "ReadUpTo").await {
                    Ok(_) => ServerFrame::Ack {
                        id,
                        client_msg_id: None,
                        message_id: None,
                        seq: Some(seq),
                    },
                    Err(e) => error_frame(e, id),
                },
            )
        }
    };
    if let Some(frame) = reply {
        connection.push(frame.to_text().into());
    }
}

/// The fixed text of `unavailable` errors: never a backend's own words.
pub(crate) const UNAVAILABLE: &str = "a backing service is unavailable; retry later";

pub(crate) fn unavailable(id: Option<Value>) -> ServerFrame {
    ServerFrame::error("unavailable", UNAVAILABLE, id)
}

async fn execute(
    gateway: &Gateway,
    connection: &Connection,
    channel_id: Uuid,
    intent: Intent,
    idempotency_key: Option<String>,
    expect_type: &str,
) -> Result<Executed, CommandError> {
    let ctx = CommandContext {
        actor: connection.user_id.into(),
        correlation_id: Uuid::now_v7(),
        expected_version: None,
        idempotency_key,
        request_fingerprint: None,
    };
    gateway
        .commands
        .execute(channel_id.into(), intent, &ctx, expect_type)
        .await
}

fn reply_with(
    result: Result<Executed, CommandError>,
    id: Option<Value>,
    client_msg_id: Option<String>,
) -> ServerFrame {
    match result {
        Ok(executed) => {
            let data = executed
                .first_event()
                .map(|e| e.data.clone())
                .unwrap_or_default();
            ServerFrame::Ack {
                id,
                client_msg_id,
                message_id: data
                    .get("message_id")
                    .and_then(|m| m.as_str())
                    .and_then(|m| m.parse().ok()),
                seq: data.get("seq").and_then(Value::as_u64),
            }
        }
        Err(e) => error_frame(e, id),
    }
}

/// The same codes as HTTP, from the same conversion.
fn error_frame(error: CommandError, id: Option<Value>) -> ServerFrame {
    let api: ApiError = error.into();
    ServerFrame::error(api.code, api.message, id)
}

/// What an announced event means for the sockets, if anything.
pub(crate) fn live_frame(
    event_type: &str,
    channel_id: Uuid,
    data: &Value,
    recorded_at: &str,
) -> Option<Announced> {
    let uuid = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    let seq = data.get("seq").and_then(Value::as_u64);
    let frame = match event_type {
        "MessageSent" => ServerFrame::Message {
            channel_id,
            seq: seq?,
            message_id: uuid("message_id")?,
            sender_id: uuid("sender_id")?,
            content: data.get("content")?.as_str()?.to_owned(),
            message_type: data
                .get("message_type")
                .and_then(Value::as_str)
                .unwrap_or("text")
                .to_owned(),
            created_at: chrono::DateTime::parse_from_rfc3339(recorded_at)
                .ok()?
                .with_timezone(&chrono::Utc),
        },
        "MessageEdited" => ServerFrame::MessageEdited {
            channel_id,
            seq: seq?,
            message_id: uuid("message_id")?,
            content: data.get("content")?.as_str()?.to_owned(),
            edited_at: chrono::DateTime::parse_from_rfc3339(recorded_at)
                .ok()?
                .with_timezone(&chrono::Utc),
        },
        "MessageDeleted" => ServerFrame::MessageDeleted {
            channel_id,
            seq: seq?,
            message_id: uuid("message_id")?,
        },
        "ReadUpTo" => ServerFrame::Read {
            channel_id,
            user_id: uuid("user_id")?,
            seq: seq?,
        },
        "MemberKicked" | "MemberBanned" | "MemberLeft" => {
            let reason = UnsubscribeReason::of_event(event_type)?;
            return Some(Announced::Evict {
                user: uuid("user_id")?,
                reason,
            });
        }
        _ => return None,
    };
    Some(match &frame {
        // Only new messages advance the seq; edits and deletes of old ones do not.
        ServerFrame::Message { seq, .. } => Announced::Live(Live::new(Some(*seq), &frame)),
        ServerFrame::MessageEdited { message_id, .. }
        | ServerFrame::MessageDeleted { message_id, .. } => Announced::Change {
            message_id: *message_id,
            live: Live::new(None, &frame),
        },
        _ => Announced::Live(Live::new(None, &frame)),
    })
}

/// What an announced event means for the sockets.
pub(crate) enum Announced {
    /// A frame for the channel's subscribers.
    Live(Live),
    /// An edit or delete of a message, also read from the log by the log watch.
    Change { message_id: Uuid, live: Live },
    /// The user's subscriptions to the channel end.
    Evict {
        user: Uuid,
        reason: UnsubscribeReason,
    },
}
