//! WebSocket frame schemas (`schemas/ws/*.json`): every file is a self-contained draft 2020-12 schema, one per `ClientFrame` and `ServerFrame` variant plus `close-codes.json`; every `ServerFrame` variant, with and without its optional fields, serializes (`to_text`) to a frame its schema accepts, and the schemas document exactly the fields Rust sends; client frames their schema accepts are parsed by `gateway::frames::parse_client_frame`, and frames the parser refuses are refused by the schema; negative cases prove the checks bite; `asyncapi.yaml` points at these files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use command_service::CommandError;
use domain::DomainError;
use gateway::frames::{ClientFrame, ServerFrame, UnsubscribeReason, close, parse_client_frame};
use serde_json::{Value, json};
use service_kit::ApiError;
use uuid::Uuid;

const CLOSE_CODES_FILE: &str = "close-codes.json";

// ---------------------------------------------------------------------------
// Schema files
// ---------------------------------------------------------------------------

fn ws_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ws")
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

fn file_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(ws_dir())
        .expect("schemas/ws exists")
        .map(|entry| {
            entry
                .expect("readable directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file name")
        })
        .collect();
    names.sort();
    names
}

/// Every file, parsed, by file name.
fn schemas() -> &'static BTreeMap<String, Value> {
    static SCHEMAS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        file_names()
            .into_iter()
            .map(|name| {
                let schema = read_json(&ws_dir().join(&name));
                (name, schema)
            })
            .collect()
    })
}

/// Compiled validators by file name, built once for all tests of this binary.
fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static VALIDATORS: OnceLock<BTreeMap<String, jsonschema::Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        schemas()
            .iter()
            .map(|(name, schema)| {
                let validator =
                    compile(schema).unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
                (name.clone(), validator)
            })
            .collect()
    })
}

fn schema_of(direction: &str, frame_type: &str) -> &'static Value {
    let name = format!("{direction}.{frame_type}.json");
    schemas()
        .get(&name)
        .unwrap_or_else(|| panic!("no schema file {name} in {}", ws_dir().display()))
}

fn validator(direction: &str, frame_type: &str) -> &'static jsonschema::Validator {
    let name = format!("{direction}.{frame_type}.json");
    validators()
        .get(&name)
        .unwrap_or_else(|| panic!("no schema file {name} in {}", ws_dir().display()))
}

/// Every validation error of `instance`, as readable lines (empty: valid).
fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid(direction: &str, frame_type: &str, frame: &Value) {
    let found = errors(validator(direction, frame_type), frame);
    assert!(
        found.is_empty(),
        "{direction}.{frame_type}.json refuses {frame}:\n  {}",
        found.join("\n  ")
    );
}

fn assert_invalid(direction: &str, frame_type: &str, frame: &Value, why: &str) {
    assert!(
        !validator(direction, frame_type).is_valid(frame),
        "{direction}.{frame_type}.json accepts {frame}, but {why}"
    );
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if (key == "$ref" || key == "$dynamicRef")
                    && let Some(r) = v.as_str()
                {
                    out.push(r.to_owned());
                }
                collect_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema["required"]
        .as_array()
        .expect("`required` is an array")
        .iter()
        .map(|v| v.as_str().expect("required names are strings").to_owned())
        .collect()
}

/// `client.send.json` → `("client", "send")`.
fn parse_file_name(name: &str) -> Option<(&str, &str)> {
    let (direction, frame_type) = name.strip_suffix(".json")?.split_once('.')?;
    matches!(direction, "client" | "server").then_some((direction, frame_type))
}

// ---------------------------------------------------------------------------
// The Rust frames
// ---------------------------------------------------------------------------

/// The `type` of a server frame. Exhaustive and naming every field, so a new
/// variant or field of `ServerFrame` does not compile until it is named here
/// (then it needs samples in `server_frames` and a schema file).
fn server_type(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Welcome {
            user_id: _,
            heartbeat_ms: _,
        } => "welcome",
        ServerFrame::Subscribed {
            id: _,
            channel_id: _,
            last_seq: _,
            recovered: _,
            online_users: _,
            online_count: _,
        } => "subscribed",
        ServerFrame::Unsubscribed {
            id: _,
            channel_id: _,
            reason: _,
        } => "unsubscribed",
        ServerFrame::Message {
            channel_id: _,
            seq: _,
            message_id: _,
            sender_id: _,
            content: _,
            message_type: _,
            created_at: _,
        } => "message",
        ServerFrame::MessageEdited {
            channel_id: _,
            seq: _,
            message_id: _,
            content: _,
            edited_at: _,
        } => "message_edited",
        ServerFrame::MessageDeleted {
            channel_id: _,
            seq: _,
            message_id: _,
        } => "message_deleted",
        ServerFrame::Ack {
            id: _,
            client_msg_id: _,
            message_id: _,
            seq: _,
        } => "ack",
        ServerFrame::Presence {
            channel_id: _,
            user_id: _,
            online: _,
        } => "presence",
        ServerFrame::Typing {
            channel_id: _,
            user_id: _,
        } => "typing",
        ServerFrame::Read {
            channel_id: _,
            user_id: _,
            seq: _,
        } => "read",
        ServerFrame::Error {
            code: _,
            message: _,
            id: _,
            channel_id: _,
        } => "error",
        ServerFrame::Pong { id: _ } => "pong",
    }
}

/// The `type` of a client frame; exhaustive like `server_type`.
fn client_type(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Subscribe {
            channel_id: _,
            after_seq: _,
        } => "subscribe",
        ClientFrame::Unsubscribe { channel_id: _ } => "unsubscribe",
        ClientFrame::Send {
            channel_id: _,
            content: _,
            client_msg_id: _,
            message_type: _,
        } => "send",
        ClientFrame::Edit {
            channel_id: _,
            message_id: _,
            content: _,
        } => "edit",
        ClientFrame::Delete {
            channel_id: _,
            message_id: _,
        } => "delete",
        ClientFrame::Typing { channel_id: _ } => "typing",
        ClientFrame::Read {
            channel_id: _,
            seq: _,
        } => "read",
        ClientFrame::Ping => "ping",
    }
}

/// The variant names serde's derive knows for `ClientFrame`, read from its
/// "unknown variant" error: the real list, not one kept by hand.
fn serde_client_types() -> BTreeSet<String> {
    let err = serde_json::from_value::<ClientFrame>(json!({ "type": "no_such_frame" }))
        .expect_err("an unknown type is refused")
        .to_string();
    let listed = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("unexpected serde error: {err}"))
        .1;
    let names: BTreeSet<String> = listed
        .split(", ")
        .map(|s| {
            s.trim_matches(|c: char| c == '`' || c.is_whitespace())
                .to_owned()
        })
        .map(|s| s.split('`').next().unwrap_or_default().to_owned())
        .collect();
    assert!(names.len() >= 2, "could not read variants from: {err}");
    names
}

/// Ids as clients send them: the reply echoes whatever JSON value it was.
fn ids() -> Vec<Option<Value>> {
    vec![
        None,
        Some(json!(7)),
        Some(json!("req-1")),
        Some(Value::Null),
        Some(json!({ "nested": [1, 2.5] })),
    ]
}

/// A command failure as the gateway turns it into an `error` frame
/// (`commands::error_frame`: the HTTP API's conversion, then `ServerFrame::error`).
fn command_error(error: CommandError, id: Option<Value>) -> ServerFrame {
    let api: ApiError = error.into();
    ServerFrame::error(api.code, api.message, id)
}

/// Every variant of `ServerFrame`, each with and without its optional fields,
/// built the ways the gateway builds them.
fn server_frames() -> Vec<ServerFrame> {
    let channel_id = Uuid::now_v7();
    let user_id = Uuid::now_v7();
    let message_id = Uuid::new_v4();
    let replayed_at = chrono::Utc::now();
    let recorded_at = chrono::Utc::now();
    let default_heartbeat = gateway::GatewayConfig::new("amqp://localhost")
        .heartbeat
        .as_millis() as u64;

    let mut frames = vec![
        ServerFrame::Welcome {
            user_id,
            heartbeat_ms: default_heartbeat,
        },
        ServerFrame::Welcome {
            user_id: Uuid::nil(),
            heartbeat_ms: 200,
        },
        ServerFrame::Message {
            channel_id,
            seq: 1,
            message_id,
            sender_id: user_id,
            content: "hello".into(),
            message_type: "text".into(),
            created_at: replayed_at.clone(),
        },
        ServerFrame::Message {
            channel_id,
            seq: u64::MAX,
            message_id,
            sender_id: user_id,
            content: "ünïcödé 👋\n\"quoted\"".into(),
            message_type: "image".into(),
            created_at: recorded_at.clone(),
        },
        ServerFrame::MessageEdited {
            channel_id,
            seq: 3,
            message_id,
            content: "edited".into(),
            edited_at: recorded_at.clone(),
        },
        ServerFrame::MessageDeleted {
            channel_id,
            seq: 4,
            message_id,
        },
        ServerFrame::Presence {
            channel_id,
            user_id,
            online: true,
        },
        ServerFrame::Presence {
            channel_id,
            user_id,
            online: false,
        },
        ServerFrame::Typing {
            channel_id,
            user_id,
        },
        ServerFrame::Read {
            channel_id,
            user_id,
            seq: 9,
        },
        // A subscription ended because the user left, was kicked or banned.
        ServerFrame::Unsubscribed {
            id: None,
            channel_id,
            reason: UnsubscribeReason::Left,
        },
        ServerFrame::Unsubscribed {
            id: None,
            channel_id,
            reason: UnsubscribeReason::Kicked,
        },
        ServerFrame::Unsubscribed {
            id: None,
            channel_id,
            reason: UnsubscribeReason::Banned,
        },
        // The gateway could not keep the stream gap-free: re-fetch, then live.
        ServerFrame::Subscribed {
            id: None,
            channel_id,
            last_seq: 20_000,
            recovered: false,
            online_users: vec![],
            online_count: 0,
        },
        ServerFrame::error("rate_limited", "too many frames: slow down", None),
        ServerFrame::error("unsupported_frame", "frames are JSON text", None),
        ServerFrame::error("frame_too_large", "frames are limited to 65536 bytes", None),
    ];
    for id in ids() {
        frames.extend([
            ServerFrame::Subscribed {
                id: id.clone(),
                channel_id,
                last_seq: 0,
                recovered: false,
                online_users: vec![],
                online_count: 0,
            },
            ServerFrame::Subscribed {
                id: id.clone(),
                channel_id,
                last_seq: 1200,
                recovered: true,
                online_users: vec![user_id, Uuid::nil()],
                online_count: 1500,
            },
            ServerFrame::Unsubscribed {
                id: id.clone(),
                channel_id,
                reason: UnsubscribeReason::Unsubscribed,
            },
            ServerFrame::Error {
                code: "too_many_subscriptions".into(),
                message: "at most 500 subscriptions per socket".into(),
                id: id.clone(),
                channel_id: Some(channel_id),
            },
            ServerFrame::Pong { id: id.clone() },
            // send
            ServerFrame::Ack {
                id: id.clone(),
                client_msg_id: Some("c-1".into()),
                message_id: Some(message_id),
                seq: Some(12),
            },
            // send whose event carried no message_id / seq
            ServerFrame::Ack {
                id: id.clone(),
                client_msg_id: Some("x".repeat(200)),
                message_id: None,
                seq: None,
            },
            // edit
            ServerFrame::Ack {
                id: id.clone(),
                client_msg_id: None,
                message_id: Some(message_id),
                seq: Some(3),
            },
            // delete
            ServerFrame::Ack {
                id: id.clone(),
                client_msg_id: None,
                message_id: Some(message_id),
                seq: None,
            },
            // read (0: before the first message, a no-op)
            ServerFrame::Ack {
                id: id.clone(),
                client_msg_id: None,
                message_id: None,
                seq: Some(0),
            },
            ServerFrame::Ack {
                id: id.clone(),
                client_msg_id: None,
                message_id: None,
                seq: None,
            },
            // A refused subscribe names its channel.
            ServerFrame::Error {
                code: "channel_not_found".into(),
                message: "channel not found".into(),
                id: id.clone(),
                channel_id: Some(channel_id),
            },
            ServerFrame::error(
                "not_subscribed",
                "subscribe to the channel first",
                id.clone(),
            ),
            ServerFrame::error("unavailable", "read model unavailable", id.clone()),
            ServerFrame::error(
                "invalid_frame",
                "client_msg_id must be 1 to 200 bytes",
                id.clone(),
            ),
            command_error(CommandError::Rejected(DomainError::NotSender), id.clone()),
            command_error(
                CommandError::Rejected(DomainError::SeqOutOfRange {
                    seq: 5,
                    last_seq: 4,
                }),
                id.clone(),
            ),
            command_error(
                CommandError::Rejected(DomainError::Invalid {
                    field: "content",
                    reason: "blank".into(),
                }),
                id.clone(),
            ),
            command_error(CommandError::Contention, id.clone()),
            command_error(
                CommandError::RateLimited {
                    retry_after_ms: 250,
                },
                id.clone(),
            ),
            command_error(CommandError::KeyReused, id.clone()),
            command_error(
                CommandError::Corrupt {
                    stream: "channel-x".into(),
                    reason: "bad".into(),
                },
                id.clone(),
            ),
        ]);
    }
    // What the parser answers to bad client frames, with the id it kept.
    for text in [
        "{nope",
        r#"{"type":"launch","id":1}"#,
        r#"{"type":"read","id":"r","channel_id":"00000000-0000-0000-0000-000000000000"}"#,
    ] {
        let (id, parsed) = parse_client_frame(text);
        let e = parsed.expect_err("a bad frame");
        frames.push(ServerFrame::error(e.code, e.message, id));
    }
    frames
}

// ---------------------------------------------------------------------------
// (a) The files
// ---------------------------------------------------------------------------

#[test]
fn every_file_is_a_self_contained_draft_2020_12_schema_that_compiles() {
    let schemas = schemas();
    assert!(schemas.len() > 2, "too few files in {}", ws_dir().display());
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("{name} is not a valid draft 2020-12 schema: {e}");
        }
        compile(schema).unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}: $schema"
        );
        assert_eq!(
            schema["$id"],
            format!("https://chat.example/schemas/ws/{name}"),
            "{name}: $id"
        );
        for key in ["title", "description"] {
            assert!(
                schema[key].as_str().is_some_and(|s| !s.trim().is_empty()),
                "{name}: missing {key}"
            );
        }
        let mut refs = Vec::new();
        collect_refs(schema, &mut refs);
        for r in &refs {
            let def = r
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("{name}: {r} is not an internal $defs reference"));
            assert!(
                !schema["$defs"][def].is_null(),
                "{name}: {r} does not resolve"
            );
        }
        for def in keys(&schema["$defs"]) {
            assert!(
                refs.contains(&format!("#/$defs/{def}")),
                "{name}: $defs/{def} is never used"
            );
        }
        if name == CLOSE_CODES_FILE {
            continue;
        }

        let (direction, frame_type) = parse_file_name(name)
            .unwrap_or_else(|| panic!("{name} is not named {{client|server}}.{{type}}.json"));
        assert_eq!(schema["type"], "object", "{name}: a frame is an object");
        assert_eq!(
            schema["properties"]["type"]["const"], frame_type,
            "{name}: `type` const"
        );
        let required = required(schema);
        assert!(required.contains("type"), "{name}: `type` is required");
        let properties = keys(&schema["properties"]);
        assert!(
            required.is_subset(&properties),
            "{name}: required {required:?} are not all described in {properties:?}"
        );
        assert!(
            !properties.contains("payload"),
            "{name}: frames are flat, no payload key"
        );
        for property in &properties {
            let p = &schema["properties"][property];
            let described = p["description"].as_str().is_some()
                || p["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .is_some_and(|d| schema["$defs"][d]["description"].is_string());
            assert!(described, "{name}: `{property}` has no description");
        }
        match direction {
            // The server sends exactly these fields.
            "server" => assert_eq!(
                schema["additionalProperties"], false,
                "{name}: server frames are closed"
            ),
            // The parser ignores unknown fields, so the schema must not refuse them.
            _ => assert_ne!(
                schema["additionalProperties"], false,
                "{name}: the server ignores unknown fields of client frames"
            ),
        }
        if properties.contains("id") {
            // Any JSON value: no type restriction on `id`.
            let id = &schema["properties"]["id"];
            let def = id["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map_or(id, |d| &schema["$defs"][d]);
            assert!(
                def.get("type").is_none(),
                "{name}: `id` may be any JSON value"
            );
        }
    }
}

#[test]
fn there_is_exactly_one_file_per_frame_variant_and_direction() {
    let client: BTreeSet<String> = client_frames_accepted()
        .iter()
        .map(|(_, frame, _)| client_type(frame).to_owned())
        .collect();
    let serde_names = serde_client_types();
    assert_eq!(
        client, serde_names,
        "the samples cover every variant serde knows"
    );
    for name in &serde_names {
        let (_, parsed) = parse_client_frame(&json!({ "type": name }).to_string());
        assert_ne!(
            parsed.map_err(|e| e.code),
            Err("unknown_frame_type"),
            "parse_client_frame does not know `{name}`"
        );
    }

    let server: BTreeSet<String> = server_frames()
        .iter()
        .map(|f| server_type(f).to_owned())
        .collect();

    let mut expected: BTreeSet<String> = BTreeSet::from([CLOSE_CODES_FILE.to_owned()]);
    expected.extend(client.iter().map(|t| format!("client.{t}.json")));
    expected.extend(server.iter().map(|t| format!("server.{t}.json")));
    let found: BTreeSet<String> = file_names().into_iter().collect();
    assert_eq!(
        found, expected,
        "schemas/ws holds one file per ClientFrame and ServerFrame variant, plus {CLOSE_CODES_FILE}"
    );
    assert_eq!(client.len(), 8);
    assert_eq!(server.len(), 12);
}

// ---------------------------------------------------------------------------
// (b) Server frames
// ---------------------------------------------------------------------------

#[test]
fn every_server_frame_variant_validates_against_its_schema() {
    // Per type: the keys of every sample, to compare with what the schema documents.
    let mut seen: BTreeMap<&str, Vec<BTreeSet<String>>> = BTreeMap::new();
    for frame in server_frames() {
        let frame_type = server_type(&frame);
        let text = frame.to_text();
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{frame_type}: to_text is not JSON ({e}): {text}"));
        assert_eq!(value["type"], frame_type, "{text}");
        assert_valid("server", frame_type, &value);
        seen.entry(frame_type).or_default().push(keys(&value));
    }
    for (frame_type, samples) in seen {
        let schema = schema_of("server", frame_type);
        let sent: BTreeSet<String> = samples.iter().flatten().cloned().collect();
        assert_eq!(
            keys(&schema["properties"]),
            sent,
            "server.{frame_type}.json documents exactly the fields Rust sends"
        );
        let always: BTreeSet<String> = samples
            .iter()
            .skip(1)
            .fold(samples[0].clone(), |acc, k| &acc & k);
        assert_eq!(
            required(schema),
            always,
            "server.{frame_type}.json requires exactly the fields Rust always sends"
        );
    }
}

// ---------------------------------------------------------------------------
// (c) Client frames
// ---------------------------------------------------------------------------

const CHANNEL: &str = "0190c6d2-58e4-7c1e-9f4a-3a1b2c3d4e5f";
const MESSAGE: &str = "0190C6D2-58E4-7C1E-9F4A-3A1B2C3D4E60";

fn uuid(s: &str) -> Uuid {
    s.parse().expect("a test uuid")
}

/// Client frames the schemas accept, what the gateway must parse them into,
/// and the `id` it must keep.
fn client_frames_accepted() -> Vec<(Value, ClientFrame, Option<Value>)> {
    let channel_id = uuid(CHANNEL);
    let message_id = uuid(MESSAGE);
    vec![
        (
            json!({ "type": "subscribe", "channel_id": CHANNEL }),
            ClientFrame::Subscribe {
                channel_id,
                after_seq: None,
            },
            None,
        ),
        (
            json!({ "type": "subscribe", "id": 1, "channel_id": CHANNEL, "after_seq": 0 }),
            ClientFrame::Subscribe {
                channel_id,
                after_seq: Some(0),
            },
            Some(json!(1)),
        ),
        (
            json!({ "type": "subscribe", "id": "s", "channel_id": CHANNEL, "after_seq": u64::MAX }),
            ClientFrame::Subscribe {
                channel_id,
                after_seq: Some(u64::MAX),
            },
            Some(json!("s")),
        ),
        (
            json!({ "type": "subscribe", "channel_id": CHANNEL, "after_seq": null, "future_field": [1] }),
            ClientFrame::Subscribe {
                channel_id,
                after_seq: None,
            },
            None,
        ),
        (
            json!({ "type": "unsubscribe", "id": null, "channel_id": CHANNEL }),
            ClientFrame::Unsubscribe { channel_id },
            Some(Value::Null),
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "hi", "client_msg_id": "c-1" }),
            ClientFrame::Send {
                channel_id,
                content: "hi".into(),
                client_msg_id: "c-1".into(),
                message_type: None,
            },
            None,
        ),
        (
            json!({
                "type": "send", "id": { "k": [1] }, "channel_id": CHANNEL, "content": "ünï 👋",
                "client_msg_id": "x".repeat(200), "message_type": "image"
            }),
            ClientFrame::Send {
                channel_id,
                content: "ünï 👋".into(),
                client_msg_id: "x".repeat(200),
                message_type: Some("image".into()),
            },
            Some(json!({ "k": [1] })),
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "a", "client_msg_id": "b", "message_type": null }),
            ClientFrame::Send {
                channel_id,
                content: "a".into(),
                client_msg_id: "b".into(),
                message_type: None,
            },
            None,
        ),
        (
            json!({ "type": "edit", "id": 2.5, "channel_id": CHANNEL, "message_id": MESSAGE, "content": "new" }),
            ClientFrame::Edit {
                channel_id,
                message_id,
                content: "new".into(),
            },
            Some(json!(2.5)),
        ),
        (
            json!({ "type": "delete", "channel_id": CHANNEL, "message_id": MESSAGE }),
            ClientFrame::Delete {
                channel_id,
                message_id,
            },
            None,
        ),
        (
            json!({ "type": "typing", "channel_id": CHANNEL }),
            ClientFrame::Typing { channel_id },
            None,
        ),
        (
            json!({ "type": "read", "id": "r", "channel_id": CHANNEL, "seq": 0 }),
            ClientFrame::Read { channel_id, seq: 0 },
            Some(json!("r")),
        ),
        (
            json!({ "type": "read", "channel_id": CHANNEL, "seq": 42 }),
            ClientFrame::Read {
                channel_id,
                seq: 42,
            },
            None,
        ),
        (json!({ "type": "ping" }), ClientFrame::Ping, None),
        (
            json!({ "type": "ping", "id": 7, "extra": true }),
            ClientFrame::Ping,
            Some(json!(7)),
        ),
    ]
}

fn frame_type_of(frame: &Value) -> &str {
    frame["type"].as_str().expect("a sample has a string type")
}

#[test]
fn client_frames_the_schema_accepts_are_parsed_by_the_gateway() {
    for (frame, expected, expected_id) in client_frames_accepted() {
        let frame_type = frame_type_of(&frame);
        assert_eq!(frame_type, client_type(&expected));
        assert_valid("client", frame_type, &frame);
        let (id, parsed) = parse_client_frame(&frame.to_string());
        assert_eq!(
            parsed.as_ref().map_err(|e| e.code),
            Ok(&expected),
            "{frame}"
        );
        assert_eq!(id, expected_id, "{frame}: the id is kept");
    }
}

/// Frames the gateway refuses, each with the reason.
fn client_frames_refused() -> Vec<(Value, &'static str)> {
    vec![
        (json!({ "type": "subscribe" }), "no channel_id"),
        (
            json!({ "type": "subscribe", "channel_id": 5 }),
            "channel_id is a number",
        ),
        (
            json!({ "type": "subscribe", "channel_id": "not-a-uuid" }),
            "bad uuid",
        ),
        (
            json!({ "type": "subscribe", "channel_id": "0190c6d2-58e4-7c1e-9f4a-3a1b2c3d4e5" }),
            "uuid one digit short",
        ),
        (
            json!({ "type": "subscribe", "channel_id": "0190c6d2-58e4-7c1e-9f4a-3a1b2c3d4e5g" }),
            "uuid with a non-hex digit",
        ),
        (
            json!({ "type": "subscribe", "channel_id": CHANNEL, "after_seq": -1 }),
            "negative after_seq",
        ),
        (
            json!({ "type": "subscribe", "channel_id": CHANNEL, "after_seq": "3" }),
            "after_seq is a string",
        ),
        (
            json!({ "type": "subscribe", "channel_id": CHANNEL, "after_seq": 1.5 }),
            "after_seq is fractional",
        ),
        (json!({ "type": "unsubscribe" }), "no channel_id"),
        (
            json!({ "type": "unsubscribe", "channel_id": null }),
            "null channel_id",
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "x" }),
            "no client_msg_id",
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "client_msg_id": "c" }),
            "no content",
        ),
        (
            json!({ "type": "send", "content": "x", "client_msg_id": "c" }),
            "no channel_id",
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": 1, "client_msg_id": "c" }),
            "content is a number",
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "x", "client_msg_id": 1 }),
            "client_msg_id is a number",
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "x", "client_msg_id": "c", "message_type": 5 }),
            "message_type is a number",
        ),
        (
            json!({ "type": "edit", "channel_id": CHANNEL, "content": "x" }),
            "no message_id",
        ),
        (
            json!({ "type": "edit", "channel_id": CHANNEL, "message_id": MESSAGE }),
            "no content",
        ),
        (
            json!({ "type": "edit", "channel_id": CHANNEL, "message_id": "m-1", "content": "x" }),
            "message_id is not a uuid",
        ),
        (
            json!({ "type": "delete", "channel_id": CHANNEL }),
            "no message_id",
        ),
        (
            json!({ "type": "delete", "channel_id": CHANNEL, "message_id": [] }),
            "message_id is an array",
        ),
        (json!({ "type": "typing" }), "no channel_id"),
        (
            json!({ "type": "typing", "channel_id": {} }),
            "channel_id is an object",
        ),
        (json!({ "type": "read", "channel_id": CHANNEL }), "no seq"),
        (
            json!({ "type": "read", "channel_id": CHANNEL, "seq": -3 }),
            "negative seq",
        ),
        (
            json!({ "type": "read", "channel_id": CHANNEL, "seq": "4" }),
            "seq is a string",
        ),
        (
            json!({ "type": "read", "channel_id": CHANNEL, "seq": null }),
            "seq is null",
        ),
        (json!({ "type": "read", "seq": 4 }), "no channel_id"),
    ]
}

#[test]
fn client_frames_the_gateway_refuses_are_refused_by_the_schema() {
    for (frame, why) in client_frames_refused() {
        let (_, parsed) = parse_client_frame(&frame.to_string());
        assert_eq!(
            parsed.map_err(|e| e.code),
            Err("invalid_frame"),
            "the gateway refuses {frame} ({why})"
        );
        assert_invalid("client", frame_type_of(&frame), &frame, why);
    }
    // A number past u64 is refused by both (the text is built by hand: `json!`
    // cannot hold it).
    let text = format!(r#"{{"type":"read","channel_id":"{CHANNEL}","seq":18446744073709551616}}"#);
    let (_, parsed) = parse_client_frame(&text);
    assert!(parsed.is_err(), "{text}");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_invalid("client", "read", &value, "seq does not fit in a u64");
}

/// Values to put in a field: for every field, the schema accepting the value
/// must mean the gateway accepts it too.
fn mutations() -> Vec<Option<Value>> {
    let mut values = vec![
        None,
        Some(Value::Null),
        Some(json!(true)),
        Some(json!(0)),
        Some(json!(1)),
        Some(json!(-1)),
        Some(json!(2.5)),
        Some(json!(u64::MAX)),
        Some(json!(i64::MIN)),
        Some(json!("")),
        Some(json!("x")),
        Some(json!("text")),
        Some(json!("7")),
        Some(json!("x".repeat(201))),
        Some(json!(CHANNEL)),
        Some(json!(CHANNEL.replace('-', ""))),
        Some(json!(format!("{{{CHANNEL}}}"))),
        Some(json!("not-a-uuid")),
        Some(json!([])),
        Some(json!([CHANNEL])),
        Some(json!({})),
    ];
    // Past u64: serde_json reads it as a float.
    values.push(Some(
        serde_json::from_str("18446744073709551616").expect("a number"),
    ));
    values
}

#[test]
fn whatever_the_client_schemas_accept_the_gateway_parses() {
    let mut bitten = 0;
    let mut tried = 0;
    for (base, _, _) in client_frames_accepted() {
        let frame_type = frame_type_of(&base).to_owned();
        let schema = schema_of("client", &frame_type);
        let fields: Vec<String> = keys(&schema["properties"])
            .into_iter()
            .filter(|k| k != "type")
            .collect();
        for field in &fields {
            for value in mutations() {
                let mut frame = base.clone();
                let map = frame.as_object_mut().expect("an object");
                match &value {
                    Some(v) => map.insert(field.clone(), v.clone()),
                    None => map.remove(field),
                };
                let schema_ok = validator("client", &frame_type).is_valid(&frame);
                let (id, parsed) = parse_client_frame(&frame.to_string());
                tried += 1;
                if schema_ok {
                    assert!(
                        parsed.is_ok(),
                        "client.{frame_type}.json accepts {frame}, the gateway does not: {parsed:?}"
                    );
                } else {
                    bitten += 1;
                }
                // Whatever else, the id survives.
                assert_eq!(id, frame.get("id").cloned(), "{frame}");
            }
        }
        // Fields the parser needs are exactly the ones the schema requires.
        let full = base.as_object().expect("an object");
        for field in &fields {
            let mut frame = full.clone();
            frame.remove(field);
            let parser_needs = parse_client_frame(&Value::Object(frame).to_string())
                .1
                .is_err();
            let schema_requires = required(schema).contains(field);
            if full.contains_key(field) {
                assert_eq!(
                    schema_requires, parser_needs,
                    "client.{frame_type}.json: is `{field}` required?"
                );
            } else {
                assert!(
                    !schema_requires,
                    "client.{frame_type}.json requires `{field}`, absent from an accepted frame"
                );
            }
        }
    }
    assert!(
        bitten > tried / 3,
        "the schemas refused only {bitten} of {tried} mutated frames"
    );
}

/// The known gap: JSON Schema cannot tell `5.0` from `5`, serde can. Clients
/// written in JavaScript never send `5.0` (`JSON.stringify(5.0)` is `5`); if
/// the parser starts accepting it, this test says so and can go.
#[test]
fn integral_floats_are_the_one_known_gap_between_schema_and_parser() {
    let frame: Value = serde_json::from_str(&format!(
        r#"{{"type":"read","channel_id":"{CHANNEL}","seq":5.0}}"#
    ))
    .expect("JSON");
    assert_valid("client", "read", &frame);
    assert_eq!(
        parse_client_frame(&frame.to_string()).1.map_err(|e| e.code),
        Err("invalid_frame")
    );
}

#[test]
fn the_client_schemas_are_stricter_than_the_parser_only_where_the_gateway_refuses_later() {
    // Accepted by the parser, refused by the schema: each is refused further
    // on (the send path, the domain) or is a form the contract does not promise.
    let stricter = [
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "x", "client_msg_id": "" }),
            "an empty client_msg_id (the gateway answers validation_failed, as HTTP does)",
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "x", "client_msg_id": "x".repeat(201) }),
            "a client_msg_id over 200 bytes (the gateway answers validation_failed, as HTTP does)",
        ),
        (
            json!({ "type": "send", "channel_id": CHANNEL, "content": "", "client_msg_id": "c" }),
            "empty content (the domain answers validation_failed)",
        ),
        (
            json!({ "type": "edit", "channel_id": CHANNEL, "message_id": MESSAGE, "content": "" }),
            "empty content (the domain answers validation_failed)",
        ),
        (
            json!({ "type": "typing", "channel_id": CHANNEL.replace('-', "") }),
            "a uuid in its simple form (not the documented one)",
        ),
    ];
    for (frame, why) in stricter {
        assert!(
            parse_client_frame(&frame.to_string()).1.is_ok(),
            "the parser accepts {frame}"
        );
        assert_invalid("client", frame_type_of(&frame), &frame, why);
    }
}

// ---------------------------------------------------------------------------
// (d) The checks bite
// ---------------------------------------------------------------------------

fn server_values() -> Vec<(String, Value)> {
    server_frames()
        .iter()
        .map(|f| {
            let value: Value = serde_json::from_str(&f.to_text()).expect("JSON");
            (server_type(f).to_owned(), value)
        })
        .collect()
}

#[test]
fn server_schemas_refuse_extra_fields_other_types_bad_uuids_and_missing_fields() {
    let all_types: BTreeSet<String> = server_frames()
        .iter()
        .map(|f| server_type(f).to_owned())
        .collect();
    for (frame_type, frame) in server_values() {
        let map = frame.as_object().expect("an object");

        let mut extra = map.clone();
        extra.insert("extra".into(), json!(1));
        assert_invalid(
            "server",
            &frame_type,
            &Value::Object(extra),
            "it has an extra field",
        );

        let mut nested = map.clone();
        nested.insert("payload".into(), json!({}));
        assert_invalid(
            "server",
            &frame_type,
            &Value::Object(nested),
            "frames are flat",
        );

        for other in all_types.iter().filter(|t| **t != frame_type) {
            let mut renamed = map.clone();
            renamed.insert("type".into(), json!(other));
            assert_invalid(
                "server",
                &frame_type,
                &Value::Object(renamed),
                "its type is another",
            );
        }
        let mut untyped = map.clone();
        untyped.remove("type");
        assert_invalid(
            "server",
            &frame_type,
            &Value::Object(untyped),
            "it has no type",
        );

        for (key, value) in map {
            if value.as_str().is_some_and(|s| s.parse::<Uuid>().is_ok()) && key != "message" {
                for bad in [
                    json!("not-a-uuid"),
                    json!(value.as_str().unwrap_or_default().replace('-', "")),
                    json!(&value.as_str().unwrap_or_default()[1..]),
                    json!(7),
                ] {
                    let mut broken = map.clone();
                    broken.insert(key.clone(), bad.clone());
                    assert_invalid(
                        "server",
                        &frame_type,
                        &Value::Object(broken),
                        &format!("{key} = {bad} is not a uuid"),
                    );
                }
            }
            if required(schema_of("server", &frame_type)).contains(key) {
                let mut missing = map.clone();
                missing.remove(key);
                assert_invalid(
                    "server",
                    &frame_type,
                    &Value::Object(missing),
                    &format!("it lacks {key}"),
                );
            }
        }
    }
}

#[test]
fn server_schemas_refuse_out_of_range_values() {
    let frames = server_values();
    let first = |frame_type: &str| -> serde_json::Map<String, Value> {
        frames
            .iter()
            .find(|(t, _)| t == frame_type)
            .unwrap_or_else(|| panic!("a {frame_type} sample"))
            .1
            .as_object()
            .expect("an object")
            .clone()
    };
    let cases: [(&str, &str, Value, &str); 16] = [
        ("message", "seq", json!(0), "message seqs start at 1"),
        ("message", "seq", json!(-1), "seqs are not negative"),
        ("message", "seq", json!(1.5), "seqs are integers"),
        (
            "message",
            "created_at",
            json!("yesterday"),
            "created_at is RFC 3339",
        ),
        (
            "message",
            "created_at",
            json!("2024-13-01T00:00:00Z"),
            "there is no month 13",
        ),
        (
            "message_edited",
            "edited_at",
            json!(""),
            "edited_at is RFC 3339",
        ),
        ("read", "seq", json!(0), "a read pointer moves to a message"),
        (
            "welcome",
            "heartbeat_ms",
            json!(60_000),
            "the heartbeat is under 60 s",
        ),
        (
            "welcome",
            "heartbeat_ms",
            json!(0),
            "the heartbeat is positive",
        ),
        ("error", "code", json!("Not Snake"), "codes are snake_case"),
        (
            "subscribed",
            "recovered",
            json!("yes"),
            "recovered is a boolean",
        ),
        ("presence", "online", json!(1), "online is a boolean"),
        (
            "subscribed",
            "online_count",
            json!(-1),
            "a count is not negative",
        ),
        (
            "subscribed",
            "online_users",
            json!(["not-a-uuid"]),
            "online users are uuids",
        ),
        (
            "unsubscribed",
            "reason",
            json!("bored"),
            "reasons are left, kicked, banned or unsubscribed",
        ),
        (
            "subscribed",
            "online_users",
            json!([Uuid::nil(), Uuid::nil()]),
            "online users are listed once",
        ),
    ];
    for (frame_type, key, value, why) in cases {
        let mut frame = first(frame_type);
        frame.insert(key.into(), value);
        assert_invalid("server", frame_type, &Value::Object(frame), why);
    }
}

#[test]
fn client_schemas_refuse_other_types_and_bad_uuids() {
    let types: BTreeSet<String> = serde_client_types();
    for (frame, _, _) in client_frames_accepted() {
        let frame_type = frame_type_of(&frame).to_owned();
        for other in types.iter().filter(|t| **t != frame_type) {
            let mut renamed = frame.clone();
            renamed["type"] = json!(other);
            assert_invalid("client", &frame_type, &renamed, "its type is another");
        }
        for key in ["channel_id", "message_id"] {
            if frame.get(key).is_some() {
                let mut broken = frame.clone();
                broken[key] = json!("0190c6d2-58e4-7c1e-9f4a");
                assert_invalid("client", &frame_type, &broken, "a truncated uuid");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Close codes
// ---------------------------------------------------------------------------

#[test]
fn close_codes_are_the_gateways() {
    let schema = &schemas()[CLOSE_CODES_FILE];
    let validator = &validators()[CLOSE_CODES_FILE];
    let documented: BTreeMap<u64, String> = schema["oneOf"]
        .as_array()
        .expect("oneOf lists the codes")
        .iter()
        .map(|c| {
            assert!(
                c["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{c}: description"
            );
            (
                c["const"].as_u64().expect("an integer const"),
                c["title"].as_str().expect("a title").to_owned(),
            )
        })
        .collect();
    let gateway: BTreeMap<u64, String> = [
        (close::SLOW_CONSUMER, "slow_consumer"),
        (close::HEARTBEAT_TIMEOUT, "heartbeat_timeout"),
        (close::TOKEN_EXPIRED, "token_expired"),
        (close::FRAME_TOO_LARGE, "frame_too_large"),
        (close::TOO_MANY_SOCKETS, "too_many_sockets"),
        (close::FLOODING, "flooding"),
    ]
    .into_iter()
    .map(|(code, title)| (u64::from(code), title.to_owned()))
    .collect();
    assert_eq!(documented, gateway);
    for code in gateway.keys() {
        assert!(validator.is_valid(&json!(code)), "{code}");
        assert!((4000..5000).contains(code), "{code} is in the 4000 range");
    }
    for bad in [
        json!(1000),
        json!(4000),
        json!(4006),
        json!("4001"),
        json!(4001.5),
    ] {
        assert!(
            !validator.is_valid(&bad),
            "{bad} is not a gateway close code"
        );
    }
}

// ---------------------------------------------------------------------------
// AsyncAPI
// ---------------------------------------------------------------------------

#[test]
fn asyncapi_socket_messages_use_these_files() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("asyncapi.yaml");
    let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&path).expect("read"))
        .expect("asyncapi.yaml is YAML");
    let socket = &doc["channels"]["socket"];
    let mut referenced = BTreeSet::new();
    for (key, message) in socket["messages"].as_object().expect("socket messages") {
        let r = message["$ref"].as_str().expect("a $ref");
        let name = r
            .strip_prefix("#/components/messages/")
            .unwrap_or_else(|| panic!("{r}"));
        let message = &doc["components"]["messages"][name];
        let frame_type = message["name"].as_str().expect("a frame name");
        let direction = if key.starts_with("client") {
            "client"
        } else {
            "server"
        };
        let file = format!("./ws/{direction}.{frame_type}.json");
        assert_eq!(
            message["payload"]["allOf"],
            json!([{ "$ref": file }]),
            "{key}: the payload is the file"
        );
        assert_eq!(
            message["payload"]["properties"]["type"]["const"], frame_type,
            "{key}"
        );
        referenced.insert(format!("{direction}.{frame_type}.json"));
    }
    assert_eq!(
        socket["x-close-codes"]["$ref"],
        format!("./ws/{CLOSE_CODES_FILE}")
    );
    referenced.insert(CLOSE_CODES_FILE.to_owned());
    assert_eq!(
        referenced,
        file_names().into_iter().collect(),
        "every file is referenced from the socket channel"
    );
}
