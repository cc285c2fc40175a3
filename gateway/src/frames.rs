//! The WebSocket frames of DESIGN.md §7: flat JSON objects with a `type`.
//! Each has a JSON Schema under `schemas/ws/`; a test holds these to them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A frame from the client. `id`, when given, is echoed in the reply.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Subscribe {
        channel_id: Uuid,
        after_seq: Option<u64>,
    },
    Unsubscribe {
        channel_id: Uuid,
    },
    Send {
        channel_id: Uuid,
        content: String,
        client_msg_id: String,
        message_type: Option<String>,
    },
    Edit {
        channel_id: Uuid,
        message_id: Uuid,
        content: String,
    },
    Delete {
        channel_id: Uuid,
        message_id: Uuid,
    },
    Typing {
        channel_id: Uuid,
    },
    Read {
        channel_id: Uuid,
        seq: u64,
    },
    Ping,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsubscribeReason {
    /// The client sent `unsubscribe`.
    Unsubscribed,
    Left,
    Kicked,
    Banned,
}

impl UnsubscribeReason {
    /// The reason a membership event ends subscriptions with, if it does.
    pub fn of_event(event_type: &str) -> Option<Self> {
        match event_type {
            "MemberLeft" => Some(Self::Left),
            "MemberKicked" => Some(Self::Kicked),
            "MemberBanned" => Some(Self::Banned),
            _ => None,
        }
    }
}

/// A frame to the client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        user_id: Uuid,
        heartbeat_ms: u64,
    },
    Subscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        channel_id: Uuid,
        last_seq: u64,
        recovered: bool,
        /// Users online in the channel, at most the presence limit.
        online_users: Vec<Uuid>,
        /// Every user online in the channel.
        online_count: u64,
    },
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        channel_id: Uuid,
        reason: UnsubscribeReason,
    },
    Message {
        channel_id: Uuid,
        seq: u64,
        message_id: Uuid,
        sender_id: Uuid,
        content: String,
        message_type: String,
        created_at: DateTime<Utc>,
    },
    MessageEdited {
        channel_id: Uuid,
        seq: u64,
        message_id: Uuid,
        content: String,
        edited_at: DateTime<Utc>,
    },
    MessageDeleted {
        channel_id: Uuid,
        seq: u64,
        message_id: Uuid,
    },
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<Uuid>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    Presence {
        channel_id: Uuid,
        user_id: Uuid,
        online: bool,
    },
    Typing {
        channel_id: Uuid,
        user_id: Uuid,
    },
    Read {
        channel_id: Uuid,
        user_id: Uuid,
        seq: u64,
    },
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        channel_id: Option<Uuid>,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    },
}

impl ServerFrame {
    pub fn error(code: &str, message: impl Into<String>, id: Option<Value>) -> Self {
        ServerFrame::Error {
            code: code.to_owned(),
            message: message.into(),
            id,
            channel_id: None,
        }
    }

    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        // unwrap-free: every field is a plain string, number, bool, uuid or JSON value.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"encoding failed"}"#.into()
        })
    }
}

/// Why a client frame was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
}

/// Parses a client frame, keeping its `id` even when the rest is invalid.
pub fn parse_client_frame(text: &str) -> (Option<Value>, Result<ClientFrame, FrameError>) {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                Err(FrameError {
                    code: "malformed_frame",
                    message: format!("not JSON: {e}"),
                }),
            );
        }
    };
    let id = value.get("id").cloned();
    let known = value.get("type").and_then(Value::as_str).is_some_and(|t| {
        [
            "subscribe",
            "unsubscribe",
            "send",
            "edit",
            "delete",
            "typing",
            "read",
            "ping",
        ]
        .contains(&t)
    });
    if !known {
        return (
            id,
            Err(FrameError {
                code: "unknown_frame_type",
                message: "`type` must name a client frame".into(),
            }),
        );
    }
    let parsed = serde_json::from_value(value).map_err(|e| FrameError {
        code: "invalid_frame",
        message: e.to_string(),
    });
    (id, parsed)
}

/// WebSocket close codes (4000 range) saying why the server closed.
pub mod close {
    pub const SLOW_CONSUMER: u16 = 4001;
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    pub const TOKEN_EXPIRED: u16 = 4003;
    pub const FRAME_TOO_LARGE: u16 = 4004;
    pub const TOO_MANY_SOCKETS: u16 = 4005;
    pub const FLOODING: u16 = 4008;
    /// The standard code for a server-side failure (history unreadable).
    pub const SERVER_ERROR: u16 = 1011;

    /// The reason text sent with each code.
    pub fn reason(code: u16) -> &'static str {
        match code {
            SLOW_CONSUMER => "slow consumer",
            HEARTBEAT_TIMEOUT => "heartbeat timeout",
            TOKEN_EXPIRED => "token expired",
            FRAME_TOO_LARGE => "frame too large",
            TOO_MANY_SOCKETS => "too many sockets",
            FLOODING => "flooding",
            _ => "server error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_frames_and_keeps_ids_of_bad_ones() {
        let (id, frame) = parse_client_frame(r#"{"type":"ping","id":7}"#);
        assert_eq!((id, frame), (Some(Value::from(7)), Ok(ClientFrame::Ping)));
        let (id, frame) = parse_client_frame(r#"{"type":"subscribe","id":"a"}"#);
        assert_eq!(id, Some(Value::from("a")));
        assert_eq!(frame.map_err(|e| e.code), Err("invalid_frame"));
        assert_eq!(
            parse_client_frame("{nope").1.map_err(|e| e.code),
            Err("malformed_frame")
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"launch"}"#)
                .1
                .map_err(|e| e.code),
            Err("unknown_frame_type")
        );
        assert_eq!(
            parse_client_frame(r#"[1,2]"#).1.map_err(|e| e.code),
            Err("unknown_frame_type")
        );
    }

    #[test]
    fn server_frames_are_flat() {
        let text = ServerFrame::Presence {
            channel_id: Uuid::nil(),
            user_id: Uuid::nil(),
            online: true,
        }
        .to_text();
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["type"], "presence");
        assert_eq!(v["online"], true);
    }
}
