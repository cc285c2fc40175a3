//! The broker and socket contract (`schemas/asyncapi.yaml`): it is AsyncAPI 3.0;
//! the exchanges, queues, arguments and bindings of DESIGN.md §4 are declared
//! exactly (and named as in the `broker` crate); every event type has a message
//! whose payload is its current schema file; each event is routed under the
//! category the design gives it, in the doc and by the relay's real
//! `broker::routing_key`; and the WebSocket frames of §7 are all there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};

const EVENTS_EXCHANGE: &str = "chat.exchange";
const DEAD_LETTER_EXCHANGE: &str = "chat.dlx";
const PROJECTIONS_EXCHANGE: &str = "chat.projections";
const PROJECTOR_QUEUE: &str = "projector.events";
const DEAD_LETTER_QUEUE: &str = "projector.dlq";
/// A gateway's queue is server-named: declared with the empty name.
const GATEWAY_QUEUE: &str = "";

/// The routing category of each event type (DESIGN.md §4 and the relay's
/// contract): the last word of its `chat.exchange` routing key.
fn documented_category(event_type: &str) -> &'static str {
    match event_type {
        "ChannelCreated" | "ChannelArchived" => "channel",
        "MemberJoined" | "MemberInvited" | "MemberLeft" | "MemberKicked" | "MemberBanned"
        | "MemberUnbanned" | "MemberRoleChanged" => "member",
        "ChannelMuted" | "ChannelUnmuted" => "mute",
        "MessageSent" | "MessageEdited" | "MessageDeleted" => "message",
        "ReadUpTo" => "read",
        "UserRegistered" => "account",
        other => panic!(
            "{other} has no documented routing category: add it to the table and to asyncapi.yaml"
        ),
    }
}

/// Events of user streams route as `chat.user.{userId}.*`, the rest as `chat.channel.{channelId}.*`.
fn is_user_event(event_type: &str) -> bool {
    event_type == "UserRegistered"
}

const CLIENT_FRAMES: [&str; 8] = [
    "subscribe",
    "unsubscribe",
    "send",
    "edit",
    "delete",
    "typing",
    "read",
    "ping",
];
const SERVER_FRAMES: [&str; 12] = [
    "welcome",
    "subscribed",
    "unsubscribed",
    "message",
    "message_edited",
    "message_deleted",
    "ack",
    "presence",
    "typing",
    "read",
    "error",
    "pong",
];

// ---------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = schemas_dir().join("asyncapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
    })
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn deref<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("{r} does not resolve")),
        None => value,
    }
}

fn channels(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["channels"]
        .as_object()
        .expect("`channels` is a mapping")
}

/// The AMQP binding of a channel, if it has one.
fn amqp(channel: &Value) -> Option<&Value> {
    channel["bindings"].get("amqp")
}

/// Channels that are routing keys on an exchange: (channel name, exchange object, address).
fn routing_channels(doc: &Value) -> Vec<(&str, &Value, &Value)> {
    channels(doc)
        .iter()
        .filter_map(|(name, ch)| {
            let binding = amqp(ch)?;
            (binding["is"] == "routingKey")
                .then(|| (name.as_str(), &binding["exchange"], &ch["address"]))
        })
        .collect()
}

/// A queue as the doc declares it.
#[derive(Debug, PartialEq)]
struct Queue {
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    arguments: Value,
    bindings: BTreeSet<(String, String)>,
}

fn queues(doc: &Value) -> BTreeMap<String, Queue> {
    let mut out = BTreeMap::new();
    for (channel_name, ch) in channels(doc) {
        let Some(binding) = amqp(ch) else { continue };
        if binding["is"] != "queue" {
            continue;
        }
        let q = &binding["queue"];
        let name = q["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{channel_name}: queue without a name"))
            .to_owned();
        let flag = |key: &str| {
            q[key]
                .as_bool()
                .unwrap_or_else(|| panic!("{channel_name}: queue.{key} is not a boolean"))
        };
        let bindings = ch["x-queue-bindings"]
            .as_array()
            .unwrap_or_else(|| panic!("{channel_name}: no x-queue-bindings"))
            .iter()
            .map(|b| {
                (
                    b["exchange"].as_str().expect("binding exchange").to_owned(),
                    b["routingKey"]
                        .as_str()
                        .expect("binding routingKey")
                        .to_owned(),
                )
            })
            .collect();
        let queue = Queue {
            durable: flag("durable"),
            exclusive: flag("exclusive"),
            auto_delete: flag("autoDelete"),
            arguments: ch["x-queue-arguments"].clone(),
            bindings,
        };
        assert!(
            out.insert(name.clone(), queue).is_none(),
            "queue {name:?} is declared twice"
        );
    }
    out
}

/// The component message names a channel carries (`$ref: '#/components/messages/X'`).
fn channel_messages(ch: &Value) -> Vec<String> {
    ch["messages"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, m)| {
            let r = m["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("message {key} is not a $ref"));
            let name = r
                .strip_prefix("#/components/messages/")
                .unwrap_or_else(|| panic!("{r} is not a component message"));
            assert_eq!(key, name, "a channel's message key is its component's name");
            name.to_owned()
        })
        .collect()
}

/// Whether a topic binding key matches a routing key (`*` one word, `#` any number).
fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(w), Some(x)) if w == x => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

fn event_schema_file(event_type: &str) -> String {
    let version = domain::current_schema_version(event_type)
        .unwrap_or_else(|| panic!("the domain knows no version of {event_type}"));
    format!("./events/{event_type}.v{version}.json")
}

fn collect_refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    out.push((
                        at.to_owned(),
                        v.as_str().unwrap_or("<not a string>").to_owned(),
                    ));
                }
                collect_refs(v, &format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn the_document_is_asyncapi_3_with_a_broker_and_a_socket_server() {
    let doc = doc();
    assert_eq!(doc["asyncapi"], "3.0.0");
    for key in ["title", "version"] {
        assert!(
            doc["info"][key].as_str().is_some_and(|s| !s.is_empty()),
            "info.{key}"
        );
    }
    assert_eq!(doc["servers"]["rabbitmq"]["protocol"], "amqp");
    assert_eq!(doc["servers"]["gateway"]["protocol"], "ws");
    assert_eq!(doc["servers"]["gateway"]["pathname"], "/ws");
    assert_eq!(doc["defaultContentType"], "application/json");
}

#[test]
fn every_ref_resolves() {
    let doc = doc();
    let mut refs = Vec::new();
    collect_refs(doc, "#", &mut refs);
    assert!(refs.len() > 50, "only {} references", refs.len());
    for (at, r) in &refs {
        if let Some(file) = r.strip_prefix("./") {
            let path = schemas_dir().join(file);
            assert!(
                path.is_file(),
                "{at}: {r} names no file ({})",
                path.display()
            );
        } else {
            assert!(
                r.starts_with("#/"),
                "{at}: {r} is neither local nor a file beside the doc"
            );
            assert!(resolve(doc, r).is_some(), "{at}: {r} does not resolve");
        }
    }
    // AsyncAPI 3: an operation's messages are messages of its own channel.
    for (name, op) in doc["operations"].as_object().expect("operations") {
        let channel = op["channel"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no channel"));
        assert!(resolve(doc, channel).is_some(), "{name}: {channel}");
        assert!(
            matches!(op["action"].as_str(), Some("send" | "receive")),
            "{name}: action"
        );
        for m in op["messages"].as_array().into_iter().flatten() {
            let r = m["$ref"].as_str().expect("message $ref");
            assert!(
                r.starts_with(&format!("{channel}/messages/")),
                "{name}: {r} is not a message of {channel}"
            );
        }
    }
}

#[test]
fn exchanges_are_declared_exactly_as_the_design_says() {
    assert_eq!(
        [
            broker::EVENTS_EXCHANGE,
            broker::DEAD_LETTER_EXCHANGE,
            broker::PROJECTIONS_EXCHANGE
        ],
        [EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE, PROJECTIONS_EXCHANGE],
        "the broker crate's names are the documented ones"
    );
    let mut declared: BTreeMap<&str, &Value> = BTreeMap::new();
    for (channel, exchange, _) in routing_channels(doc()) {
        let name = exchange["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{channel}: exchange without a name"));
        if let Some(earlier) = declared.insert(name, exchange) {
            assert_eq!(
                earlier, exchange,
                "{channel}: {name} is declared differently elsewhere"
            );
        }
    }
    let expected = BTreeMap::from([
        (EVENTS_EXCHANGE, "topic"),
        (DEAD_LETTER_EXCHANGE, "fanout"),
        (PROJECTIONS_EXCHANGE, "topic"),
    ]);
    assert_eq!(
        declared.keys().copied().collect::<BTreeSet<_>>(),
        expected.keys().copied().collect::<BTreeSet<_>>(),
        "exchanges"
    );
    for (name, kind) in expected {
        let exchange = declared[name];
        assert_eq!(exchange["type"], kind, "{name}: type");
        assert_eq!(exchange["durable"], true, "{name}: durable");
        assert_eq!(exchange["autoDelete"], false, "{name}: autoDelete");
    }
}

#[test]
fn queues_are_declared_exactly_as_the_design_says() {
    assert_eq!(
        [broker::PROJECTOR_QUEUE, broker::DEAD_LETTER_QUEUE],
        [PROJECTOR_QUEUE, DEAD_LETTER_QUEUE],
        "the broker crate's names are the documented ones"
    );
    let bindings = |pairs: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        pairs
            .iter()
            .map(|(e, k)| (e.to_string(), k.to_string()))
            .collect()
    };
    let expected = BTreeMap::from([
        (
            PROJECTOR_QUEUE.to_owned(),
            Queue {
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: json!({
                    "x-queue-type": "quorum",
                    "x-single-active-consumer": true,
                    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                    "x-delivery-limit": 100,
                }),
                bindings: bindings(&[
                    (EVENTS_EXCHANGE, "chat.channel.#"),
                    (EVENTS_EXCHANGE, "chat.user.*.account"),
                ]),
            },
        ),
        (
            DEAD_LETTER_QUEUE.to_owned(),
            Queue {
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: json!({}),
                bindings: bindings(&[(DEAD_LETTER_EXCHANGE, "")]),
            },
        ),
        (
            GATEWAY_QUEUE.to_owned(),
            Queue {
                durable: false,
                exclusive: true,
                auto_delete: true,
                arguments: json!({}),
                bindings: bindings(&[(PROJECTIONS_EXCHANGE, "channel.#")]),
            },
        ),
    ]);
    assert_eq!(queues(doc()), expected);
}

#[test]
fn every_event_type_has_a_message_with_its_current_schema_and_amqp_properties() {
    let doc = doc();
    let messages = doc["components"]["messages"]
        .as_object()
        .expect("components.messages");
    let mut event_messages = BTreeSet::new();
    for (name, message) in messages {
        if let Some(r) = message["payload"]["schema"]["$ref"].as_str()
            && r.starts_with("./events/")
        {
            event_messages.insert(name.as_str());
        }
    }
    assert_eq!(
        event_messages,
        domain::EVENT_TYPES.into_iter().collect(),
        "one event message per event type, and no others"
    );
    for event_type in domain::EVENT_TYPES {
        let message = &messages[event_type];
        let file = event_schema_file(event_type);
        assert_eq!(message["name"], event_type);
        assert_eq!(
            message["payload"]["schema"]["$ref"],
            file.as_str(),
            "{event_type}: payload"
        );
        assert_eq!(
            message["payload"]["schemaFormat"], "application/schema+json;version=draft-2020-12",
            "{event_type}: the event files are draft 2020-12"
        );
        let path = schemas_dir().join(&file);
        assert!(
            path.is_file(),
            "{event_type}: {} does not exist",
            path.display()
        );
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
            .expect("the schema file is JSON");
        assert_eq!(
            schema["properties"]["event_type"]["const"], event_type,
            "{file}"
        );
        assert_eq!(message["contentType"], "application/json", "{event_type}");
        assert_eq!(
            message["bindings"]["amqp"]["messageType"], event_type,
            "{event_type}: AMQP type"
        );
        assert_eq!(
            message["x-amqp-properties"],
            json!({
                "message_id": "event_id",
                "content_type": "application/json",
                "delivery_mode": 2,
                "type": event_type,
                "headers": ["correlation_id"],
            }),
            "{event_type}: AMQP properties"
        );
        let headers = deref(doc, &message["headers"]);
        assert!(
            !headers["properties"]["correlation_id"].is_null(),
            "{event_type}: correlation_id header"
        );
        assert_eq!(
            deref(doc, &message["correlationId"])["location"],
            "$message.header#/correlation_id",
            "{event_type}: correlation id location"
        );
    }
    // The relay publishes persistently.
    let mut relay_ops = 0;
    for (name, op) in doc["operations"].as_object().expect("operations") {
        if name.starts_with("relayPublish") {
            relay_ops += 1;
            assert_eq!(op["action"], "send", "{name}");
            assert_eq!(
                op["bindings"]["amqp"]["deliveryMode"], 2,
                "{name}: persistent"
            );
        }
    }
    assert!(relay_ops > 0, "no relay operations");
}

#[test]
fn events_are_routed_under_their_documented_categories() {
    let doc = doc();
    let channel_id = "0190c6d2-58e4-7c1e-9f4a-3a1b2c3d4e5f";
    let user_id = "0190c6d2-58e4-7c1e-9f4a-3a1b2c3d4e60";
    let projector = queues(doc)
        .remove(PROJECTOR_QUEUE)
        .expect("the projector's queue");

    let mut routed: BTreeMap<String, String> = BTreeMap::new();
    for (channel, exchange, address) in routing_channels(doc) {
        if exchange["name"] != EVENTS_EXCHANGE {
            continue;
        }
        let address = address
            .as_str()
            .unwrap_or_else(|| panic!("{channel}: no address"));
        for event_type in channel_messages(&channels(doc)[channel]) {
            if !domain::EVENT_TYPES.contains(&event_type.as_str()) {
                continue;
            }
            let category = documented_category(&event_type);
            let expected = if is_user_event(&event_type) {
                format!("chat.user.{{userId}}.{category}")
            } else {
                format!("chat.channel.{{channelId}}.{category}")
            };
            assert_eq!(address, expected, "{channel}: routing key of {event_type}");
            assert!(
                routed
                    .insert(event_type.clone(), address.to_owned())
                    .is_none(),
                "{event_type} is published on two routing keys"
            );
        }
    }
    for event_type in domain::EVENT_TYPES {
        let address = routed
            .get(event_type)
            .unwrap_or_else(|| panic!("{event_type} is on no {EVENTS_EXCHANGE} channel"));
        let key = address
            .replace("{channelId}", channel_id)
            .replace("{userId}", user_id);
        // The relay's real routing agrees with the doc.
        let stream = if is_user_event(event_type) {
            format!("user-{user_id}")
        } else {
            format!("channel-{channel_id}")
        };
        assert_eq!(
            broker::routing_key(&stream, event_type),
            key,
            "broker::routing_key of {event_type}"
        );
        assert_eq!(
            broker::event_category(event_type),
            documented_category(event_type)
        );
        // Every event reaches the projector.
        assert!(
            projector
                .bindings
                .iter()
                .any(|(e, pattern)| e == EVENTS_EXCHANGE && topic_matches(pattern, &key)),
            "{key} ({event_type}) reaches no binding of {PROJECTOR_QUEUE}"
        );
    }

    // Notifications go out on chat.exchange but never to the projector.
    let notifications = &channels(doc)["userNotifications"];
    assert_eq!(notifications["address"], "chat.user.{userId}.notification");
    assert_eq!(
        amqp(notifications).expect("binding")["exchange"]["name"],
        EVENTS_EXCHANGE
    );
    let key = format!("chat.user.{user_id}.notification");
    assert!(
        !projector
            .bindings
            .iter()
            .any(|(_, pattern)| topic_matches(pattern, &key)),
        "notifications must not reach the projector"
    );
    assert!(topic_matches("chat.channel.#", "chat.channel.x.message"));
    assert!(!topic_matches(
        "chat.user.*.account",
        "chat.user.x.y.account"
    ));
}

#[test]
fn notifications_and_projection_changes_have_their_documented_bodies() {
    let doc = doc();
    let messages = &doc["components"]["messages"];

    let notification = &messages["Notification"];
    let schema = &notification["payload"]["schema"];
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        BTreeSet::from([
            "user_id",
            "channel_id",
            "message_id",
            "seq",
            "sender_id",
            "preview"
        ])
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        notification["x-amqp-properties"]["message_id"],
        "{event_id}:{user_id}"
    );

    let changes = &channels(doc)["projectionChanges"];
    assert_eq!(changes["address"], "channel.{channelId}");
    assert_eq!(
        amqp(changes).expect("binding")["exchange"]["name"],
        PROJECTIONS_EXCHANGE
    );
    assert_eq!(channel_messages(changes), ["ProjectionChange"]);
    let gateway = &channels(doc)["gatewayProjections"];
    assert_eq!(channel_messages(gateway), ["ProjectionChange"]);
    let change = &messages["ProjectionChange"]["payload"]["schema"];
    assert_eq!(change["required"], json!(["channel_id", "event"]));
    let envelopes: BTreeSet<&str> = change["properties"]["event"]["oneOf"]
        .as_array()
        .expect("event is one of the envelopes")
        .iter()
        .map(|v| v["$ref"].as_str().expect("$ref"))
        .collect();
    let current: Vec<String> = domain::EVENT_TYPES
        .iter()
        .map(|t| event_schema_file(t))
        .collect();
    assert_eq!(envelopes, current.iter().map(String::as_str).collect());
}

#[test]
fn the_socket_channel_has_every_frame_of_the_design() {
    let doc = doc();
    let socket = &channels(doc)["socket"];
    assert_eq!(socket["address"], "/ws");
    assert_eq!(socket["servers"], json!([{ "$ref": "#/servers/gateway" }]));
    assert_eq!(socket["bindings"]["ws"]["method"], "GET");
    assert!(!socket["bindings"]["ws"]["query"]["properties"]["access_token"].is_null());

    let frames = |action: &str| -> BTreeSet<String> {
        let ops: Vec<&Value> = doc["operations"]
            .as_object()
            .expect("operations")
            .values()
            .filter(|op| op["channel"]["$ref"] == "#/channels/socket" && op["action"] == action)
            .collect();
        assert_eq!(ops.len(), 1, "one {action} operation on the socket");
        ops[0]["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                let message = resolve(doc, m["$ref"].as_str().expect("$ref")).expect("resolves");
                let message = deref(doc, message);
                let payload = &message["payload"];
                let name = message["name"].as_str().expect("frame name").to_owned();
                assert_eq!(
                    payload["properties"]["type"]["const"],
                    name.as_str(),
                    "{name}: `type`"
                );
                assert!(
                    payload["required"]
                        .as_array()
                        .expect("required")
                        .contains(&json!("type")),
                    "{name}: `type` is required"
                );
                assert!(
                    payload["properties"].get("payload").is_none(),
                    "{name}: frames are flat"
                );
                name
            })
            .collect()
    };
    assert_eq!(
        frames("receive"),
        CLIENT_FRAMES.iter().map(|s| s.to_string()).collect(),
        "client → server frames"
    );
    assert_eq!(
        frames("send"),
        SERVER_FRAMES.iter().map(|s| s.to_string()).collect(),
        "server → client frames"
    );
}

#[test]
fn documented_category_covers_every_event_type() {
    let categories: BTreeSet<&str> = domain::EVENT_TYPES
        .iter()
        .map(|t| documented_category(t))
        .collect();
    assert_eq!(
        categories,
        BTreeSet::from(["account", "channel", "member", "message", "mute", "read"])
    );
}
