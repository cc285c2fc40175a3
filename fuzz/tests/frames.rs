//! Fuzz target 1: the WebSocket client frame decoder,
//! `gateway::frames::parse_client_frame` (DESIGN.md §7).
//!
//! Properties: it never panics; it returns exactly the frame's `id` whenever
//! the frame is a JSON object that has one, whatever else is wrong with it
//! (and none otherwise); every refusal carries one of the socket's codes,
//! chosen by what is wrong (`malformed_frame`: not JSON; `unknown_frame_type`:
//! `type` is not a client frame's; `invalid_frame`: fields missing or
//! mistyped), and the `error` frame built from it is valid JSON echoing the
//! id; a frame it accepts is of the type it names; and every well-formed
//! frame of every type, with any `id` and extra fields, is accepted with
//! exactly its fields.

use fuzz::{Corpus, fuzz, json_value, property};
use gateway::frames::{ClientFrame, ServerFrame, parse_client_frame};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

static CORPUS: LazyLock<Corpus> = LazyLock::new(|| Corpus::load("frames"));

/// The client frame types of §7.
const TYPES: [&str; 8] = [
    "subscribe",
    "unsubscribe",
    "send",
    "edit",
    "delete",
    "typing",
    "read",
    "ping",
];

/// The codes a refused frame may carry (schemas/ws/server.error.json).
const CODES: [&str; 3] = ["malformed_frame", "unknown_frame_type", "invalid_frame"];

fn type_of(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Subscribe { .. } => "subscribe",
        ClientFrame::Unsubscribe { .. } => "unsubscribe",
        ClientFrame::Send { .. } => "send",
        ClientFrame::Edit { .. } => "edit",
        ClientFrame::Delete { .. } => "delete",
        ClientFrame::Typing { .. } => "typing",
        ClientFrame::Read { .. } => "read",
        ClientFrame::Ping => "ping",
    }
}

/// The decoder's contract on one input. actix-ws hands it text frames only,
/// which are valid UTF-8, so bytes are read lossily.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    let (id, parsed) = parse_client_frame(&text);
    let json = serde_json::from_str::<Value>(&text).ok();
    let sent_id = json
        .as_ref()
        .and_then(|v| v.as_object()?.get("id").cloned());
    prop_assert_eq!(&id, &sent_id, "the id must be the frame's own");
    let named = json
        .as_ref()
        .and_then(|v| v.get("type")?.as_str())
        .filter(|t| TYPES.contains(t));
    match (&json, named, &parsed) {
        (None, _, Err(e)) => prop_assert_eq!(e.code, "malformed_frame"),
        (None, _, Ok(frame)) => prop_assert!(false, "not JSON, yet parsed: {frame:?}"),
        (Some(_), None, Err(e)) => prop_assert_eq!(e.code, "unknown_frame_type"),
        (Some(_), None, Ok(frame)) => prop_assert!(false, "no known type, yet {frame:?}"),
        (Some(_), Some(_), Err(e)) => prop_assert_eq!(e.code, "invalid_frame"),
        (Some(_), Some(named), Ok(frame)) => prop_assert_eq!(type_of(frame), named),
    }
    if let Err(e) = parsed {
        prop_assert!(CODES.contains(&e.code));
        prop_assert!(!e.message.is_empty());
        let reply: Value =
            serde_json::from_str(&ServerFrame::error(e.code, e.message, id.clone()).to_text())
                .map_err(|e| TestCaseError::fail(format!("error frame is not JSON: {e}")))?;
        prop_assert_eq!(&reply["type"], "error");
        prop_assert_eq!(reply.get("id"), id.as_ref());
    }
    Ok(())
}

#[test]
fn corpus_replays() {
    CORPUS.replay(|bytes| {
        check(bytes)?;
        Ok(())
    });
    // The seeds named `valid-` are frames a client may send.
    for (name, bytes) in &CORPUS.seeds {
        if name.starts_with("valid-") {
            let text = String::from_utf8_lossy(bytes);
            assert!(parse_client_frame(&text).1.is_ok(), "{name} is refused");
        }
    }
}

#[test]
fn fuzz_client_frames() {
    fuzz(&CORPUS, "frames", check);
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// A well-formed frame of any type, as the value it must parse to.
fn frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (uuid(), any::<Option<u64>>()).prop_map(|(channel_id, after_seq)| ClientFrame::Subscribe {
            channel_id,
            after_seq
        }),
        uuid().prop_map(|channel_id| ClientFrame::Unsubscribe { channel_id }),
        (
            uuid(),
            any::<String>(),
            any::<String>(),
            any::<Option<String>>()
        )
            .prop_map(|(channel_id, content, client_msg_id, message_type)| {
                ClientFrame::Send {
                    channel_id,
                    content,
                    client_msg_id,
                    message_type,
                }
            }),
        (uuid(), uuid(), any::<String>()).prop_map(|(channel_id, message_id, content)| {
            ClientFrame::Edit {
                channel_id,
                message_id,
                content,
            }
        }),
        (uuid(), uuid()).prop_map(|(channel_id, message_id)| ClientFrame::Delete {
            channel_id,
            message_id
        }),
        uuid().prop_map(|channel_id| ClientFrame::Typing { channel_id }),
        (uuid(), any::<u64>()).prop_map(|(channel_id, seq)| ClientFrame::Read { channel_id, seq }),
        Just(ClientFrame::Ping),
    ]
}

/// `frame` as a client writes it: flat, `type` beside the fields.
fn encode(frame: &ClientFrame) -> serde_json::Map<String, Value> {
    let value = match frame {
        ClientFrame::Subscribe {
            channel_id,
            after_seq,
        } => match after_seq {
            Some(seq) => json!({"channel_id": channel_id, "after_seq": seq}),
            None => json!({"channel_id": channel_id}),
        },
        ClientFrame::Unsubscribe { channel_id } | ClientFrame::Typing { channel_id } => {
            json!({"channel_id": channel_id})
        }
        ClientFrame::Send {
            channel_id,
            content,
            client_msg_id,
            message_type,
        } => {
            let mut v = json!({"channel_id": channel_id, "content": content, "client_msg_id": client_msg_id});
            if let Some(t) = message_type {
                v["message_type"] = json!(t);
            }
            v
        }
        ClientFrame::Edit {
            channel_id,
            message_id,
            content,
        } => json!({"channel_id": channel_id, "message_id": message_id, "content": content}),
        ClientFrame::Delete {
            channel_id,
            message_id,
        } => json!({"channel_id": channel_id, "message_id": message_id}),
        ClientFrame::Read { channel_id, seq } => json!({"channel_id": channel_id, "seq": seq}),
        ClientFrame::Ping => json!({}),
    };
    let mut map = match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    map.insert("type".into(), json!(type_of(frame)));
    map
}

#[test]
fn well_formed_frames_parse_with_their_id() {
    let dictionary = CORPUS.dictionary();
    let fields = [
        "type",
        "id",
        "channel_id",
        "after_seq",
        "content",
        "client_msg_id",
        "message_type",
        "message_id",
        "seq",
    ];
    let extra_key = prop_oneof![Just("extra".to_owned()), "[a-z_]{1,12}"]
        .prop_filter("not a frame field", move |k| !fields.contains(&k.as_str()));
    property(
        "frames_well_formed",
        (
            frame(),
            proptest::option::of(json_value(dictionary.clone())),
            proptest::collection::vec((extra_key, json_value(Arc::new(vec![]))), 0..3),
        ),
        |(frame, id, extras)| {
            let mut map = encode(&frame);
            for (key, value) in extras {
                map.entry(key).or_insert(value);
            }
            match &id {
                Some(id) => map.insert("id".into(), id.clone()),
                None => map.remove("id"),
            };
            let text = Value::Object(map).to_string();
            let (got_id, parsed) = parse_client_frame(&text);
            prop_assert_eq!(got_id, id);
            prop_assert_eq!(parsed, Ok(frame));
            Ok(())
        },
    );
}

#[test]
fn frames_of_an_unknown_type_keep_their_id() {
    property(
        "frames_unknown_type",
        (
            frame(),
            any::<String>().prop_filter("not a client type", |t| !TYPES.contains(&t.as_str())),
            json_value(Arc::new(vec![])),
        ),
        |(frame, ty, id)| {
            let mut map = encode(&frame);
            map.insert("type".into(), json!(ty));
            map.insert("id".into(), id.clone());
            let (got_id, parsed) = parse_client_frame(&Value::Object(map).to_string());
            prop_assert_eq!(got_id, Some(id));
            prop_assert_eq!(parsed.map_err(|e| e.code), Err("unknown_frame_type"));
            Ok(())
        },
    );
}
