//! Event schemas (`schemas/events/*.json`): every file compiles and is named for a known type and version, every event the domain emits validates against its file, ChannelCreated v1 upcasts into valid v2 data, and malformed envelopes are rejected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use domain::{
    Channel, ChannelCommand, ChannelId, ChannelKind, Event, MessageFacts, MessageId, MessagePolicy,
    RegisterUser, Role, User, UserId,
};
use event_store::RecordedEvent;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use domain::EVENT_TYPES;

// ---------------------------------------------------------------------------
// Schema files
// ---------------------------------------------------------------------------

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

fn schema_path(event_type: &str, version: u32) -> PathBuf {
    events_dir().join(format!("{event_type}.v{version}.json"))
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

/// Compiled validators by file name, built once for all tests of this binary.
fn validators() -> &'static BTreeMap<String, jsonschema::Validator> {
    static VALIDATORS: OnceLock<BTreeMap<String, jsonschema::Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        schema_files()
            .into_iter()
            .map(|path| {
                let name = file_name(&path);
                let validator = compile(&read_json(&path))
                    .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
                (name, validator)
            })
            .collect()
    })
}

fn validator(event_type: &str, version: u32) -> &'static jsonschema::Validator {
    let name = format!("{event_type}.v{version}.json");
    validators()
        .get(&name)
        .unwrap_or_else(|| panic!("no schema file {name} in {}", events_dir().display()))
}

fn schema_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir())
        .expect("schemas/events exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 file name")
        .to_owned()
}

/// `Foo.v3.json` → `("Foo", 3)`.
fn parse_file_name(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".json")?;
    let (event_type, version) = stem.rsplit_once(".v")?;
    let parsed: u32 = version.parse().ok()?;
    // No leading zeros, signs or spaces: `v01` would be a second name for v1.
    (parsed.to_string() == version).then_some((event_type, parsed))
}

/// Every validation error of `instance`, as readable lines (empty: valid).
fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

fn assert_valid(event_type: &str, version: u32, envelope: &Value) {
    let found = errors(validator(event_type, version), envelope);
    assert!(
        found.is_empty(),
        "{event_type} v{version} envelope does not validate:\n  {}\n{}",
        found.join("\n  "),
        serde_json::to_string_pretty(envelope).unwrap_or_default()
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

#[test]
fn every_schema_file_compiles_and_is_named_for_a_known_type_and_version() {
    let files = schema_files();
    assert!(!files.is_empty(), "no files in {}", events_dir().display());
    for path in files {
        let name = file_name(&path);
        let (event_type, version) = parse_file_name(&name)
            .unwrap_or_else(|| panic!("{name} is not named {{EventType}}.v{{N}}.json"));
        assert!(
            EVENT_TYPES.contains(&event_type),
            "{name}: {event_type} is not a known event type"
        );
        let current = domain::current_schema_version(event_type)
            .unwrap_or_else(|| panic!("{name}: the domain knows no version of {event_type}"));
        assert!(
            (1..=current).contains(&version),
            "{name}: version {version} is not in 1..={current}"
        );

        let schema = read_json(&path);
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{name} is not a valid draft 2020-12 schema: {e}");
        }
        compile(&schema).unwrap_or_else(|e| panic!("{name} does not compile: {e}"));

        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}: $schema"
        );
        assert_eq!(
            schema["$id"],
            format!("https://chat.example/schemas/events/{name}"),
            "{name}: $id"
        );
        for key in ["title", "description"] {
            assert!(
                schema[key].as_str().is_some_and(|s| !s.trim().is_empty()),
                "{name}: missing {key}"
            );
        }
        assert_eq!(
            schema["properties"]["event_type"]["const"], event_type,
            "{name}: event_type const"
        );
        assert_eq!(
            schema["properties"]["schema_version"]["const"], version,
            "{name}: schema_version const"
        );
        assert_eq!(
            schema["additionalProperties"], false,
            "{name}: the envelope must be closed"
        );
        assert_eq!(
            schema["$defs"]["data"]["additionalProperties"], false,
            "{name}: data must be closed"
        );

        let mut refs = Vec::new();
        collect_refs(&schema, &mut refs);
        for r in refs {
            assert!(
                r.starts_with("#/$defs/"),
                "{name}: {r} is not an internal $defs reference"
            );
        }
    }
}

#[test]
fn every_event_type_has_a_schema_at_every_version_it_may_be_stored_with() {
    for event_type in EVENT_TYPES {
        let current = domain::current_schema_version(event_type)
            .unwrap_or_else(|| panic!("the domain does not know {event_type}"));
        // The current version is what new events carry; older ones are still in
        // the log (and upcast on read), so analysts need their files as well.
        for version in 1..=current {
            let path = schema_path(event_type, version);
            assert!(
                path.is_file(),
                "missing {} ({event_type} v{version}, current v{current})",
                path.display()
            );
        }
    }
    assert_eq!(domain::current_schema_version("ChannelCreated"), Some(2));
    assert!(domain::current_schema_version("NoSuchEvent").is_none());
}

/// Keeps `EVENT_TYPES` in step with the domain: a new variant of `Event` does
/// not compile here until it is named (and then needs a schema file).
fn listed_type(event: &Event) -> &'static str {
    let name = match event {
        Event::UserRegistered(_) => "UserRegistered",
        Event::ChannelCreated(_) => "ChannelCreated",
        Event::MemberJoined(_) => "MemberJoined",
        Event::MemberInvited(_) => "MemberInvited",
        Event::MemberLeft(_) => "MemberLeft",
        Event::MemberKicked(_) => "MemberKicked",
        Event::MemberBanned(_) => "MemberBanned",
        Event::MemberUnbanned(_) => "MemberUnbanned",
        Event::MemberRoleChanged(_) => "MemberRoleChanged",
        Event::ChannelArchived(_) => "ChannelArchived",
        Event::ChannelMuted(_) => "ChannelMuted",
        Event::ChannelUnmuted(_) => "ChannelUnmuted",
        Event::MessageSent(_) => "MessageSent",
        Event::MessageEdited(_) => "MessageEdited",
        Event::MessageDeleted(_) => "MessageDeleted",
        Event::ReadUpTo(_) => "ReadUpTo",
    };
    assert!(
        EVENT_TYPES.contains(&name),
        "{name} missing from EVENT_TYPES"
    );
    name
}

// ---------------------------------------------------------------------------
// Driving the domain
// ---------------------------------------------------------------------------

/// A tiny in-memory log: decides commands with the real domain, folds the
/// results, and records every event as the event store would.
struct Log {
    policy: MessagePolicy,
    channel_id: ChannelId,
    channel: Option<Channel>,
    channel_version: u64,
    messages: BTreeMap<MessageId, MessageFacts>,
    users: BTreeMap<UserId, (Option<User>, u64)>,
    global_position: i64,
    recorded: Vec<RecordedEvent>,
}

impl Log {
    fn new(channel_id: ChannelId) -> Self {
        Self {
            policy: MessagePolicy::default(),
            channel_id,
            channel: None,
            channel_version: 0,
            messages: BTreeMap::new(),
            users: BTreeMap::new(),
            global_position: 0,
            recorded: Vec::new(),
        }
    }

    fn record(&mut self, stream_id: String, stream_version: u64, actor: UserId, event: &Event) {
        self.global_position += 1;
        let stored = event.to_stored();
        assert_eq!(stored.event_type, event.event_type());
        assert_eq!(stored.event_type, listed_type(event));
        // Whatever goes in must come back out as the same event.
        assert_eq!(
            &Event::from_stored(&stored).expect("own stored form decodes"),
            event
        );
        self.recorded.push(RecordedEvent {
            event_id: Uuid::now_v7(),
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            stream_id,
            stream_version,
            global_position: self.global_position,
            transaction_id: 1000 + self.global_position as u64,
            recorded_at: chrono::Utc::now(),
            data: stored.data,
            metadata: json!({ "correlation_id": Uuid::now_v7(), "actor_id": actor.0 }),
        });
    }

    fn register(
        &mut self,
        user_id: UserId,
        username: &str,
        display_name: Option<&str>,
    ) -> Result<(), domain::DomainError> {
        let (state, version) = self.users.get(&user_id).cloned().unwrap_or((None, 0));
        let command = RegisterUser {
            user_id,
            username: username.to_owned(),
            display_name: display_name.map(str::to_owned),
        };
        let events = User::decide(state.as_ref(), command)?;
        let mut state = state;
        let mut version = version;
        for event in &events {
            state = User::evolve(state, event);
            version += 1;
            self.record(domain::user_stream(user_id), version, user_id, event);
        }
        self.users.insert(user_id, (state, version));
        Ok(())
    }

    fn try_channel(
        &mut self,
        actor: UserId,
        command: ChannelCommand,
    ) -> Result<Vec<Event>, domain::DomainError> {
        let events = Channel::decide(self.channel.as_ref(), actor, command, &self.policy)?;
        for event in &events {
            self.channel = Channel::evolve(self.channel.take(), event);
            let message_id = match event {
                Event::MessageSent(e) => Some(e.message_id),
                Event::MessageDeleted(e) => Some(e.message_id),
                _ => None,
            };
            if let Some(id) = message_id {
                let facts = MessageFacts::evolve(self.messages.remove(&id), event);
                if let Some(facts) = facts {
                    self.messages.insert(id, facts);
                }
            }
            self.channel_version += 1;
            self.record(
                domain::channel_stream(self.channel_id),
                self.channel_version,
                actor,
                event,
            );
        }
        Ok(events)
    }

    /// Runs a command that must emit at least one event.
    fn channel(&mut self, actor: UserId, command: ChannelCommand) -> Vec<Event> {
        let described = format!("{command:?}");
        let events = self
            .try_channel(actor, command)
            .unwrap_or_else(|e| panic!("{described} by {actor} was refused: {e:?}"));
        assert!(!events.is_empty(), "{described} by {actor} emitted nothing");
        events
    }

    fn send(&mut self, actor: UserId, content: &str, client_msg_id: Option<&str>) -> MessageId {
        let message_id = MessageId::new();
        self.channel(
            actor,
            ChannelCommand::SendMessage {
                message_id,
                content: content.to_owned(),
                message_type: "text".into(),
                client_msg_id: client_msg_id.map(str::to_owned),
            },
        );
        message_id
    }

    fn facts(&self, message_id: MessageId) -> Option<MessageFacts> {
        self.messages.get(&message_id).cloned()
    }

    /// Validates every recorded envelope against its schema file.
    fn check_all(&self) {
        for recorded in &self.recorded {
            let envelope = serde_json::to_value(recorded).expect("envelope serialises");
            assert_valid(&recorded.event_type, recorded.schema_version, &envelope);
        }
    }

    fn types_seen(&self) -> BTreeSet<&str> {
        self.recorded
            .iter()
            .map(|r| r.event_type.as_str())
            .collect()
    }
}

/// The scenario's content, so the property test can vary it.
#[derive(Debug, Clone)]
struct Texts {
    channel_name: String,
    kind: ChannelKind,
    max_members: Option<u32>,
    usernames: [String; 5],
    display_name: Option<String>,
    first: String,
    second: String,
    edited: String,
    client_msg_id: Option<String>,
}

impl Default for Texts {
    fn default() -> Self {
        Self {
            channel_name: "général 💬".into(),
            kind: ChannelKind::Public,
            max_members: Some(10),
            usernames: ["ann", "bob", "cyd", "dee", "eve"].map(String::from),
            display_name: Some("Ann Ängström".into()),
            first: "hello, world".into(),
            second: "안녕하세요 — \"quoted\"\n\ttabbed \u{7}".into(),
            edited: "hello, edited world".into(),
            client_msg_id: Some("c-1".into()),
        }
    }
}

/// Drives one channel through every kind of event; returns the log.
fn scenario(texts: &Texts) -> Log {
    let [ann, bob, cyd, dee, eve] = [(); 5].map(|_| UserId::new());
    let mut log = Log::new(ChannelId::new());
    for (i, user) in [ann, bob, cyd, dee, eve].into_iter().enumerate() {
        let display = if i == 0 {
            texts.display_name.as_deref()
        } else {
            None
        };
        log.register(user, &texts.usernames[i], display)
            .expect("registration accepted");
    }

    let channel_id = log.channel_id;
    log.channel(
        ann,
        ChannelCommand::Create {
            channel_id,
            name: texts.channel_name.clone(),
            kind: texts.kind,
            max_members: texts.max_members,
        },
    );
    // bob enters by joining when he can, else by invitation.
    if texts.kind == ChannelKind::Public {
        log.channel(bob, ChannelCommand::Join);
    } else {
        log.channel(ann, ChannelCommand::Invite { user_id: bob });
    }
    log.channel(ann, ChannelCommand::Invite { user_id: cyd });
    log.channel(
        ann,
        ChannelCommand::ChangeRole {
            user_id: bob,
            role: Role::Admin,
        },
    );
    log.channel(bob, ChannelCommand::SetMuted { muted: true });
    log.channel(bob, ChannelCommand::SetMuted { muted: false });

    let first = log.send(bob, &texts.first, texts.client_msg_id.as_deref());
    let second = log.send(cyd, &texts.second, None);
    log.channel(
        bob,
        ChannelCommand::EditMessage {
            message: log.facts(first),
            content: texts.edited.clone(),
        },
    );
    log.channel(
        ann,
        ChannelCommand::DeleteMessage {
            message: log.facts(second),
        },
    );
    log.channel(cyd, ChannelCommand::MarkRead { seq: 2 });
    log.channel(bob, ChannelCommand::Kick { user_id: cyd });

    log.channel(ann, ChannelCommand::Invite { user_id: dee });
    log.channel(ann, ChannelCommand::Ban { user_id: dee });
    log.channel(ann, ChannelCommand::Ban { user_id: eve });
    log.channel(bob, ChannelCommand::Unban { user_id: dee });

    // Ownership transfer: two role changes in one decision.
    let transfer = log.channel(
        ann,
        ChannelCommand::ChangeRole {
            user_id: bob,
            role: Role::Owner,
        },
    );
    assert_eq!(
        transfer.len(),
        2,
        "an ownership transfer is two MemberRoleChanged events"
    );
    log.channel(ann, ChannelCommand::Leave);
    log.channel(bob, ChannelCommand::Archive);
    log
}

#[test]
fn every_event_of_a_full_scenario_validates_against_its_schema() {
    let log = scenario(&Texts::default());
    let seen = log.types_seen();
    let all: BTreeSet<&str> = EVENT_TYPES.into_iter().collect();
    assert_eq!(seen, all, "the scenario must emit every event type");
    assert!(
        log.recorded.len() >= 25,
        "only {} events recorded",
        log.recorded.len()
    );
    // ChannelCreated goes out at v2, everything else at v1.
    for r in &log.recorded {
        assert_eq!(
            Some(r.schema_version),
            domain::current_schema_version(&r.event_type)
        );
    }
    log.check_all();
}

#[test]
fn private_channel_without_limit_and_message_without_client_id_validate() {
    let texts = Texts {
        kind: ChannelKind::Private,
        max_members: None,
        client_msg_id: None,
        display_name: None,
        ..Texts::default()
    };
    let log = scenario(&texts);
    let created = log
        .recorded
        .iter()
        .find(|r| r.event_type == "ChannelCreated")
        .expect("created");
    assert_eq!(created.data["kind"], "private");
    assert_eq!(created.data["max_members"], Value::Null);
    let sent = log
        .recorded
        .iter()
        .find(|r| r.event_type == "MessageSent")
        .expect("sent");
    assert!(
        sent.data.get("client_msg_id").is_none(),
        "absent client_msg_id is not serialised"
    );
    log.check_all();
}

// ---------------------------------------------------------------------------
// Property test: random names and content
// ---------------------------------------------------------------------------

/// Unicode strings of 1..=max characters that are not blank after trimming
/// and hold no U+0000 (which every text field refuses).
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 1..=max)
            .prop_map(|c| c.into_iter().filter(|c| *c != '\0').collect::<String>()),
        "\\PC{1,40}",
    ]
    .prop_filter("not blank", move |s: &String| {
        !s.trim().is_empty() && s.chars().count() <= max
    })
}

/// A name: like `text`, without control characters.
fn name(max: usize) -> impl Strategy<Value = String> {
    text(max)
        .prop_map(|s| s.chars().filter(|c| !c.is_control()).collect::<String>())
        .prop_filter("not blank", |s: &String| !s.trim().is_empty())
}

fn texts() -> impl Strategy<Value = Texts> {
    (
        (
            name(100),
            prop_oneof![Just(ChannelKind::Public), Just(ChannelKind::Private)],
            proptest::option::of(1u32..=100_000),
        ),
        proptest::array::uniform5("[A-Za-z0-9_.-]{3,32}"),
        proptest::option::of("\\PC{0,64}"),
        (text(4000), text(4000), text(4000)),
        (
            proptest::option::of(any::<String>().prop_map(|s| s.replace('\0', ""))),
            proptest::bool::ANY,
        ),
    )
        .prop_map(
            |(
                (channel_name, kind, max_members),
                usernames,
                display_name,
                (first, second, edited),
                (client_msg_id, full),
            )| {
                Texts {
                    channel_name,
                    kind,
                    // The scenario needs room for 4 members at once.
                    max_members: max_members.map(|m| m.max(4)),
                    usernames,
                    display_name,
                    // Every so often, content at exactly the limit.
                    first: if full { "ä".repeat(4000) } else { first },
                    second,
                    edited,
                    client_msg_id,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn events_with_random_content_validate(texts in texts()) {
        let log = scenario(&texts);
        log.check_all();
    }
}

// ---------------------------------------------------------------------------
// Upcasting: ChannelCreated v1
// ---------------------------------------------------------------------------

fn channel_created_v1() -> Value {
    let channel_id = Uuid::now_v7();
    let owner_id = Uuid::now_v7();
    json!({
        "event_id": Uuid::now_v7(),
        "event_type": "ChannelCreated",
        "schema_version": 1,
        "stream_id": format!("channel-{channel_id}"),
        "stream_version": 1,
        "global_position": 17,
        "recorded_at": "2024-03-01T09:30:00.123456Z",
        "data": { "channel_id": channel_id, "name": "general", "private": true, "owner_id": owner_id },
        "metadata": { "correlation_id": Uuid::now_v7(), "actor_id": owner_id, "idempotency_key": "k-1" }
    })
}

#[test]
fn channel_created_v1_validates_and_upcasts_into_valid_v2_data() {
    for private in [true, false] {
        let mut v1 = channel_created_v1();
        v1["data"]["private"] = json!(private);
        assert_valid("ChannelCreated", 1, &v1);
        // The v1 shape is not a v2 shape, and the other way round.
        let mut as_v2 = v1.clone();
        as_v2["schema_version"] = json!(2);
        assert!(
            !validator("ChannelCreated", 2).is_valid(&as_v2),
            "v1 data must not pass as v2"
        );

        let data = domain::upcast("ChannelCreated", 1, v1["data"].clone()).expect("v1 upcasts");
        let mut v2 = v1.clone();
        v2["schema_version"] = json!(2);
        v2["data"] = data;
        assert_valid("ChannelCreated", 2, &v2);
        assert_eq!(
            v2["data"]["kind"],
            if private { "private" } else { "public" }
        );

        let mut back_as_v1 = v2.clone();
        back_as_v1["schema_version"] = json!(1);
        assert!(
            !validator("ChannelCreated", 1).is_valid(&back_as_v1),
            "v2 data must not pass as v1"
        );
    }
}

// ---------------------------------------------------------------------------
// Negative tests: the check can fail
// ---------------------------------------------------------------------------

fn valid_message_sent() -> Value {
    let log = scenario(&Texts::default());
    let sent = log
        .recorded
        .iter()
        .find(|r| r.event_type == "MessageSent")
        .expect("a message was sent");
    let envelope = serde_json::to_value(sent).expect("serialises");
    assert_valid("MessageSent", 1, &envelope);
    envelope
}

fn valid_channel_created() -> Value {
    let log = scenario(&Texts::default());
    let created = log
        .recorded
        .iter()
        .find(|r| r.event_type == "ChannelCreated")
        .expect("created");
    let envelope = serde_json::to_value(created).expect("serialises");
    assert_valid("ChannelCreated", 2, &envelope);
    envelope
}

fn assert_rejected(event_type: &str, version: u32, what: &str, envelope: &Value) {
    let found = errors(validator(event_type, version), envelope);
    assert!(
        !found.is_empty(),
        "{what}: accepted by {event_type}.v{version}.json, must be rejected"
    );
}

fn remove(pointer: &str) -> impl Fn(&mut Value) + '_ {
    move |v: &mut Value| {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        let parent = if parent.is_empty() {
            &mut *v
        } else {
            v.pointer_mut(parent).expect("parent exists")
        };
        assert!(
            parent
                .as_object_mut()
                .expect("object")
                .remove(key)
                .is_some(),
            "{pointer} existed"
        );
    }
}

fn set(pointer: &'static str, value: Value) -> impl Fn(&mut Value) {
    move |v: &mut Value| {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
        let parent = if parent.is_empty() {
            &mut *v
        } else {
            v.pointer_mut(parent).expect("parent exists")
        };
        parent
            .as_object_mut()
            .expect("object")
            .insert(key.to_owned(), value.clone());
    }
}

#[test]
fn malformed_message_sent_envelopes_are_rejected() {
    let valid = valid_message_sent();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("missing data.seq", Box::new(remove("/data/seq"))),
        ("missing data.content", Box::new(remove("/data/content"))),
        (
            "extra data field",
            Box::new(set("/data/reactions", json!([]))),
        ),
        (
            "wrong event_type",
            Box::new(set("/event_type", json!("MessageEdited"))),
        ),
        (
            "wrong schema_version",
            Box::new(set("/schema_version", json!(2))),
        ),
        (
            "bad sender uuid",
            Box::new(set("/data/sender_id", json!("not-a-uuid"))),
        ),
        (
            "bad event_id uuid",
            Box::new(set("/event_id", json!("0000-1111"))),
        ),
        (
            "uuid without hyphens",
            Box::new(set(
                "/data/message_id",
                json!("0192a6e4c1d27c3e8f4b1a2b3c4d5e6f"),
            )),
        ),
        ("seq 0", Box::new(set("/data/seq", json!(0)))),
        ("seq as string", Box::new(set("/data/seq", json!("1")))),
        ("fractional seq", Box::new(set("/data/seq", json!(1.5)))),
        ("empty content", Box::new(set("/data/content", json!("")))),
        (
            "client_msg_id null",
            Box::new(set("/data/client_msg_id", Value::Null)),
        ),
        (
            "user stream for a channel event",
            Box::new(set("/stream_id", json!("user-x"))),
        ),
        (
            "stream_version 0",
            Box::new(set("/stream_version", json!(0))),
        ),
        (
            "global_position 0",
            Box::new(set("/global_position", json!(0))),
        ),
        (
            "recorded_at not a date-time",
            Box::new(set("/recorded_at", json!("yesterday at noon"))),
        ),
        (
            "bad actor_id in metadata",
            Box::new(set("/metadata/actor_id", json!(42))),
        ),
        (
            "metadata not an object",
            Box::new(set("/metadata", json!("none"))),
        ),
        ("missing metadata", Box::new(remove("/metadata"))),
        ("missing recorded_at", Box::new(remove("/recorded_at"))),
        ("extra envelope field", Box::new(set("/payload", json!({})))),
        ("data not an object", Box::new(set("/data", json!([1, 2])))),
    ];
    for (what, mutate) in cases {
        let mut envelope = valid.clone();
        mutate(&mut envelope);
        assert_ne!(envelope, valid, "{what}: the mutation changed nothing");
        assert_rejected("MessageSent", 1, what, &envelope);
    }

    // The events API adds an opaque `cursor` to each line; it must be a string.
    let mut line = valid.clone();
    set("/cursor", json!("0000000000000abc.42"))(&mut line);
    assert_valid("MessageSent", 1, &line);
    set("/cursor", json!(42))(&mut line);
    assert_rejected("MessageSent", 1, "numeric cursor", &line);

    // Extra keys in metadata are allowed: it is open for tracing context.
    let mut envelope = valid.clone();
    set("/metadata/trace_id", json!("abc"))(&mut envelope);
    assert_valid("MessageSent", 1, &envelope);
}

#[test]
fn malformed_enums_and_streams_are_rejected() {
    let created = valid_channel_created();
    for (what, mutate) in [
        ("unknown kind", set("/data/kind", json!("secret"))),
        ("max_members 0", set("/data/max_members", json!(0))),
        (
            "max_members as string",
            set("/data/max_members", json!("10")),
        ),
        ("v1 field in v2", set("/data/private", json!(true))),
        ("blank name", set("/data/name", json!(""))),
        (
            "name over 100 characters",
            set("/data/name", json!("n".repeat(101))),
        ),
    ] {
        let mut envelope = created.clone();
        mutate(&mut envelope);
        assert_rejected("ChannelCreated", 2, what, &envelope);
    }
    let mut missing_limit = created.clone();
    remove("/data/max_members")(&mut missing_limit);
    assert_rejected("ChannelCreated", 2, "missing max_members", &missing_limit);

    let log = scenario(&Texts::default());
    let find = |t: &str| {
        serde_json::to_value(log.recorded.iter().find(|r| r.event_type == t).expect(t))
            .expect("json")
    };

    let mut role = find("MemberRoleChanged");
    set("/data/role", json!("superuser"))(&mut role);
    assert_rejected("MemberRoleChanged", 1, "unknown role", &role);
    let mut role = find("MemberRoleChanged");
    set("/data/role", json!("Owner"))(&mut role);
    assert_rejected("MemberRoleChanged", 1, "role not snake_case", &role);

    let mut user = find("UserRegistered");
    assert_valid("UserRegistered", 1, &user);
    let stream = user["stream_id"]
        .as_str()
        .expect("string")
        .replacen("user-", "channel-", 1);
    user["stream_id"] = json!(stream);
    assert_rejected(
        "UserRegistered",
        1,
        "channel stream for a user event",
        &user,
    );
    let mut user = find("UserRegistered");
    set("/data/username", json!("a b"))(&mut user);
    assert_rejected("UserRegistered", 1, "username with a space", &user);

    // An event validated against another type's schema fails on its const.
    let joined = find("MemberJoined");
    assert_rejected("MemberLeft", 1, "MemberJoined as MemberLeft", &joined);
    let mut read = find("ReadUpTo");
    remove("/data/seq")(&mut read);
    assert_rejected("ReadUpTo", 1, "missing seq", &read);
}
