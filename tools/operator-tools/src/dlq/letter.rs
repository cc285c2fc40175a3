//! What an operator needs to know about one dead letter, read from its
//! properties and headers: the projector's own (`x-chat-reason`,
//! `x-chat-routing-key`, `x-chat-failed-at`) or, for a message RabbitMQ
//! dead-lettered itself (a crash loop past the delivery limit), `x-death`.

use broker::lapin::BasicProperties;
use broker::lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::hash::{Hash, Hasher};

/// Headers that describe the dead-lettering, not the message: stripped on retry.
pub const DEAD_LETTER_HEADERS: &[&str] = &[
    "x-chat-reason",
    "x-chat-routing-key",
    "x-chat-failed-at",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
];

/// One dead letter, summarised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The AMQP message id (= event id); else the body's `event_id`; else a
    /// hash of the body (`body-…`), stable while the message is stored.
    pub id: String,
    pub event_type: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// The routing key it was first published with (retry publishes with it).
    pub routing_key: Option<String>,
    pub failed_at: Option<String>,
    pub bytes: usize,
}

impl DeadLetter {
    /// Summarises a message taken from the dead-letter queue.
    pub fn read(properties: &BasicProperties, delivery_routing_key: &str, body: &[u8]) -> Self {
        let headers = properties.headers().clone().unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let id = properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .filter(|m| !m.is_empty())
            .or_else(|| field("event_id"))
            .unwrap_or_else(|| body_id(body));
        let death = first_death(&headers);
        let reason = text(&headers, "x-chat-reason").or_else(|| {
            death
                .as_ref()
                .and_then(|d| text(d, "reason"))
                .map(|reason| {
                    let queue = death
                        .as_ref()
                        .and_then(|d| text(d, "queue"))
                        .unwrap_or_default();
                    let count = death
                        .as_ref()
                        .and_then(|d| d.inner().get("count"))
                        .map(to_json);
                    match count {
                        Some(count) => format!("RabbitMQ: {reason} (queue {queue}, {count} times)"),
                        None => format!("RabbitMQ: {reason} (queue {queue})"),
                    }
                })
        });
        let routing_key = text(&headers, "x-chat-routing-key")
            .or_else(|| {
                death
                    .as_ref()
                    .and_then(|d| match d.inner().get("routing-keys") {
                        Some(AMQPValue::FieldArray(keys)) => {
                            keys.as_slice().first().and_then(as_text)
                        }
                        _ => None,
                    })
            })
            .or_else(|| {
                (!delivery_routing_key.is_empty()).then(|| delivery_routing_key.to_owned())
            });
        let failed_at = text(&headers, "x-chat-failed-at").or_else(|| {
            death.as_ref().and_then(|d| match d.inner().get("time") {
                Some(AMQPValue::Timestamp(secs)) => i64::try_from(*secs)
                    .ok()
                    .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                    .map(|t| t.to_rfc3339()),
                _ => None,
            })
        });
        DeadLetter {
            id,
            event_type: field("event_type"),
            reason,
            routing_key,
            failed_at,
            bytes: body.len(),
        }
    }
}

/// The full picture for `chat dlq show`: summary, properties, headers, body.
pub fn detail(letter: &DeadLetter, properties: &BasicProperties, body: &[u8]) -> Value {
    let headers = properties
        .headers()
        .as_ref()
        .map_or(Value::Object(Map::new()), table_to_json);
    let body = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    json!({
        "dead_letter": letter,
        "properties": {
            "message_id": properties.message_id().as_ref().map(|m| m.to_string()),
            "content_type": properties.content_type().as_ref().map(|m| m.to_string()),
            "delivery_mode": properties.delivery_mode(),
            "timestamp": properties.timestamp(),
        },
        "headers": headers,
        "body": body,
    })
}

/// A stable id for a message that has none.
fn body_id(body: &[u8]) -> String {
    // SipHash with fixed keys: the same body gives the same id in every run.
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("body-{:016x}", hasher.finish())
}

/// The most recent `x-death` entry.
fn first_death(headers: &FieldTable) -> Option<FieldTable> {
    match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(deaths)) => deaths.as_slice().iter().find_map(|d| match d {
            AMQPValue::FieldTable(t) => Some(t.clone()),
            _ => None,
        }),
        _ => None,
    }
}

fn text(table: &FieldTable, key: &str) -> Option<String> {
    table.inner().get(key).and_then(as_text)
}

fn as_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A header table as JSON (for display).
pub fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), to_json(v)))
            .collect(),
    )
}

fn to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::DecimalValue(d) => json!({"scale": d.scale, "value": d.value}),
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => {
            as_text(value).map_or(Value::Null, Value::String)
        }
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(to_json).collect()),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::Void => Value::Null,
    }
}
