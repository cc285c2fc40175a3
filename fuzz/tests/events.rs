//! Fuzz target 2: decoding and upcasting stored events — `domain::upcast`,
//! `Event::from_stored` (every reader of the log: projector, command side,
//! analyst and operator tools) and the projector's `decode_delivery` (broker
//! bytes → schema check → envelope → upcast → domain event).
//!
//! Properties: nothing panics on any bytes, or on any `data` for any event
//! type and version (current, older, unknown types, version 0, future ones);
//! the error says which: an unknown type is `UnknownType`, version 0 or past
//! the current one is `UnknownVersion`, only an upcaster step may call data
//! `Malformed`, and the current version passes through unchanged; a decoded
//! event is of the stored type and re-encodes to a form that decodes to it;
//! a delivery the projector accepts loses nothing and invents nothing (its
//! re-encoded data is the upcast data); every current event round-trips
//! through `to_stored`/`from_stored` and through JSON text; every event
//! valid by its schema is accepted by `decode_delivery` as exactly itself;
//! and every v1 `ChannelCreated` upcasts to data that decodes.

use chrono::{DateTime, Utc};
use domain::{
    ChannelArchived, ChannelCreated, ChannelId, ChannelKind, ChannelMuted, ChannelUnmuted,
    DecodeError, EVENT_TYPES, Event, MemberBanned, MemberInvited, MemberJoined, MemberKicked,
    MemberLeft, MemberRoleChanged, MemberUnbanned, MessageDeleted, MessageEdited, MessageId,
    MessageSent, ReadUpTo, Role, StoredEvent, UpcastError, UserId, UserRegistered,
    current_schema_version, upcast,
};
use event_store::RecordedEvent;
use fuzz::{Corpus, canonical_ids, fuzz, json_mutation, json_value, mutated, property};
use projector::{EventSchemas, decode_delivery};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

static CORPUS: LazyLock<Corpus> = LazyLock::new(|| Corpus::load("events"));
static SCHEMAS: LazyLock<EventSchemas> =
    LazyLock::new(|| EventSchemas::load().unwrap_or_else(|e| panic!("schemas: {e}")));

fn fail(why: String) -> Result<(), TestCaseError> {
    Err(TestCaseError::fail(why))
}

/// The contract of `upcast` and `Event::from_stored` on one stored event.
fn stored_contract(event_type: &str, version: u32, data: Value) -> Result<(), TestCaseError> {
    let current = current_schema_version(event_type);
    prop_assert_eq!(current.is_some(), EVENT_TYPES.contains(&event_type));
    let upcast_result = upcast(event_type, version, data.clone());
    if let Err(e) = &upcast_result {
        prop_assert!(!e.to_string().is_empty());
    }
    match (current, &upcast_result) {
        (None, Err(UpcastError::UnknownType(t))) => prop_assert_eq!(t, event_type),
        (None, other) => return fail(format!("unknown type {event_type:?} gave {other:?}")),
        (
            Some(c),
            Err(UpcastError::UnknownVersion {
                version: v,
                current: cc,
                event_type: t,
            }),
        ) => {
            prop_assert!(
                version == 0 || version > c,
                "v{version} of {event_type} is known"
            );
            prop_assert_eq!((*v, *cc, t.as_str()), (version, c, event_type));
        }
        (Some(c), _) if version == 0 || version > c => {
            return fail(format!(
                "v{version} of {event_type} (current v{c}) was not refused"
            ));
        }
        (Some(c), Ok(up)) if version == c => prop_assert_eq!(up, &data, "current data changed"),
        (Some(_), Ok(_)) => {}
        (Some(c), Err(UpcastError::Malformed { version: v, .. })) => {
            prop_assert!(*v < c, "only an upcaster step may refuse data");
        }
        (Some(_), Err(UpcastError::UnknownType(_))) => return fail("known type refused".into()),
    }
    let stored = StoredEvent {
        event_type: event_type.to_owned(),
        schema_version: version,
        data,
    };
    let decoded = Event::from_stored(&stored);
    if let Err(e) = &decoded {
        prop_assert!(!e.to_string().is_empty());
    }
    match (&upcast_result, &decoded) {
        (Err(u), Err(DecodeError::Upcast(d))) => prop_assert_eq!(u, d),
        (Err(u), other) => return fail(format!("upcast refused ({u}), decode gave {other:?}")),
        (Ok(_), Err(DecodeError::Shape { .. })) => {}
        (Ok(_), Err(DecodeError::Upcast(u))) => return fail(format!("upcast passed, then {u}")),
        (Ok(_), Ok(event)) => {
            prop_assert_eq!(event.event_type(), event_type);
            let again = event.to_stored();
            prop_assert_eq!(Some(again.schema_version), current);
            prop_assert_eq!(Event::from_stored(&again).ok(), Some(event.clone()));
        }
    }
    Ok(())
}

/// The contract on one delivery's bytes, and on the stored event inside.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let json = serde_json::from_slice::<Value>(bytes).ok();
    match decode_delivery(bytes, &SCHEMAS) {
        Ok((recorded, event)) => {
            prop_assert_eq!(event.event_type(), recorded.event_type.as_str());
            let stored = StoredEvent {
                event_type: recorded.event_type.clone(),
                schema_version: recorded.schema_version,
                data: recorded.data.clone(),
            };
            prop_assert_eq!(Event::from_stored(&stored).ok(), Some(event.clone()));
            let up = upcast(
                &stored.event_type,
                stored.schema_version,
                stored.data.clone(),
            )
            .map_err(|e| TestCaseError::fail(format!("accepted, yet {e}")))?;
            prop_assert_eq!(
                canonical_ids(event.to_stored().data),
                canonical_ids(up),
                "decoding lost or invented data"
            );
        }
        Err(poison) => {
            prop_assert!(!poison.0.is_empty());
            // A type and version without a schema is called that, not
            // checked against another version's schema.
            let header = json.as_ref().and_then(|v| {
                Some((
                    v.get("event_type")?.as_str()?,
                    v.get("schema_version")?.as_u64()?,
                ))
            });
            if let Some((event_type, version)) = header {
                let known = current_schema_version(event_type)
                    .is_some_and(|c| (1..=u64::from(c)).contains(&version));
                if !known {
                    prop_assert!(
                        poison.0.starts_with("unknown event type or version"),
                        "{} v{} refused as: {}",
                        event_type,
                        version,
                        poison.0
                    );
                }
            }
        }
    }
    if let Some(value) = json {
        let event_type = value
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let version = value
            .get("schema_version")
            .and_then(Value::as_u64)
            .map_or(1, |v| u32::try_from(v).unwrap_or(u32::MAX));
        let data = value.get("data").cloned().unwrap_or(Value::Null);
        stored_contract(event_type, version, data)?;
    }
    Ok(())
}

#[test]
fn corpus_replays() {
    CORPUS.replay(check);
    for (name, bytes) in &CORPUS.seeds {
        if name.starts_with("valid-")
            && let Err(e) = decode_delivery(bytes, &SCHEMAS)
        {
            panic!("{name} is refused: {e}");
        }
    }
}

#[test]
fn fuzz_deliveries() {
    fuzz(&CORPUS, "events_deliveries", check);
}

/// The `data` of every seed, as seeds of its own.
fn data_seeds() -> Arc<Vec<Vec<u8>>> {
    Arc::new(
        CORPUS
            .seeds
            .iter()
            .filter_map(|(_, b)| {
                serde_json::from_slice::<Value>(b)
                    .ok()?
                    .get("data")
                    .map(|d| d.to_string().into_bytes())
            })
            .collect(),
    )
}

#[test]
fn fuzz_any_type_version_and_data() {
    let dictionary = CORPUS.dictionary();
    let event_type = prop_oneof![
        4 => select(EVENT_TYPES.to_vec()).prop_map(str::to_owned),
        1 => select(vec!["", "Nope", "channelcreated", "ChannelCreated ", "MessageSent\0", "UserRegistered\u{FFFF}"])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let version = prop_oneof![4 => 0u32..4, 1 => any::<u32>(), 1 => Just(u32::MAX)];
    let data = prop_oneof![
        1 => json_value(dictionary.clone()),
        2 => mutated(data_seeds(), json_mutation(dictionary))
            .prop_map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null)),
    ];
    property(
        "events_stored",
        (event_type, version, data),
        |(t, v, data)| stored_contract(&t, v, data),
    );
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}
fn ch() -> impl Strategy<Value = ChannelId> {
    uuid().prop_map(ChannelId)
}
fn user() -> impl Strategy<Value = UserId> {
    uuid().prop_map(UserId)
}
fn msg() -> impl Strategy<Value = MessageId> {
    uuid().prop_map(MessageId)
}

/// What the text and number fields may hold.
struct Fields {
    name: BoxedStrategy<String>,
    username: BoxedStrategy<String>,
    display_name: BoxedStrategy<String>,
    text: BoxedStrategy<String>,
    seq: BoxedStrategy<u64>,
    max_members: BoxedStrategy<Option<u32>>,
}

impl Fields {
    /// Anything the types hold.
    fn any() -> Fields {
        Fields {
            name: any::<String>().boxed(),
            username: any::<String>().boxed(),
            display_name: any::<String>().boxed(),
            text: any::<String>().boxed(),
            seq: any::<u64>().boxed(),
            max_members: any::<Option<u32>>().boxed(),
        }
    }

    /// What the event schemas accept.
    fn valid() -> Fields {
        Fields {
            name: "[^\\p{Cc}]{1,100}".boxed(),
            username: "[A-Za-z0-9_.-]{3,32}".boxed(),
            display_name: ".{1,64}".boxed(),
            text: prop_oneof![
                ".{1,40}",
                "\\PC{1,400}",
                any::<String>().prop_filter("non-empty", |s| !s.is_empty())
            ]
            .boxed(),
            seq: prop_oneof![1u64..1000, 1..=u64::MAX].boxed(),
            max_members: proptest::option::of(1..=u32::MAX).boxed(),
        }
    }
}

fn kind() -> impl Strategy<Value = ChannelKind> {
    prop_oneof![Just(ChannelKind::Public), Just(ChannelKind::Private)]
}
fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Owner), Just(Role::Admin), Just(Role::Member)]
}

/// Every event type, its fields drawn from `f`.
fn event(f: Fields) -> impl Strategy<Value = Event> {
    let Fields {
        name,
        username,
        display_name,
        text,
        seq,
        max_members,
    } = f;
    prop_oneof![
        (user(), username, display_name).prop_map(|(user_id, username, display_name)| {
            Event::UserRegistered(UserRegistered {
                user_id,
                username,
                display_name,
            })
        }),
        (ch(), name, kind(), max_members, user()).prop_map(
            |(channel_id, name, kind, max_members, owner_id)| Event::ChannelCreated(
                ChannelCreated {
                    channel_id,
                    name,
                    kind,
                    max_members,
                    owner_id
                }
            )
        ),
        (ch(), user()).prop_map(|(channel_id, user_id)| Event::MemberJoined(MemberJoined {
            channel_id,
            user_id
        })),
        (ch(), user(), user()).prop_map(|(channel_id, user_id, invited_by)| {
            Event::MemberInvited(MemberInvited {
                channel_id,
                user_id,
                invited_by,
            })
        }),
        (ch(), user()).prop_map(|(channel_id, user_id)| Event::MemberLeft(MemberLeft {
            channel_id,
            user_id
        })),
        (ch(), user(), user()).prop_map(|(channel_id, user_id, kicked_by)| {
            Event::MemberKicked(MemberKicked {
                channel_id,
                user_id,
                kicked_by,
            })
        }),
        (ch(), user(), user()).prop_map(|(channel_id, user_id, banned_by)| {
            Event::MemberBanned(MemberBanned {
                channel_id,
                user_id,
                banned_by,
            })
        }),
        (ch(), user(), user()).prop_map(|(channel_id, user_id, unbanned_by)| {
            Event::MemberUnbanned(MemberUnbanned {
                channel_id,
                user_id,
                unbanned_by,
            })
        }),
        (ch(), user(), role(), user()).prop_map(|(channel_id, user_id, role, changed_by)| {
            Event::MemberRoleChanged(MemberRoleChanged {
                channel_id,
                user_id,
                role,
                changed_by,
            })
        }),
        (ch(), user()).prop_map(|(channel_id, archived_by)| {
            Event::ChannelArchived(ChannelArchived {
                channel_id,
                archived_by,
            })
        }),
        (ch(), user()).prop_map(|(channel_id, user_id)| Event::ChannelMuted(ChannelMuted {
            channel_id,
            user_id
        })),
        (ch(), user()).prop_map(
            |(channel_id, user_id)| Event::ChannelUnmuted(ChannelUnmuted {
                channel_id,
                user_id
            })
        ),
        (
            ch(),
            msg(),
            seq.clone(),
            user(),
            text.clone(),
            text.clone(),
            proptest::option::of(text.clone())
        )
            .prop_map(
                |(channel_id, message_id, seq, sender_id, content, message_type, client_msg_id)| {
                    Event::MessageSent(MessageSent {
                        channel_id,
                        message_id,
                        seq,
                        sender_id,
                        content,
                        message_type,
                        client_msg_id,
                    })
                }
            ),
        (ch(), msg(), seq.clone(), user(), text, user()).prop_map(
            |(channel_id, message_id, seq, sender_id, content, edited_by)| {
                Event::MessageEdited(MessageEdited {
                    channel_id,
                    message_id,
                    seq,
                    sender_id,
                    content,
                    edited_by,
                })
            }
        ),
        (ch(), msg(), seq.clone(), user(), user()).prop_map(
            |(channel_id, message_id, seq, sender_id, deleted_by)| {
                Event::MessageDeleted(MessageDeleted {
                    channel_id,
                    message_id,
                    seq,
                    sender_id,
                    deleted_by,
                })
            }
        ),
        (ch(), user(), seq).prop_map(|(channel_id, user_id, seq)| Event::ReadUpTo(ReadUpTo {
            channel_id,
            user_id,
            seq
        })),
    ]
}

#[test]
fn current_events_round_trip() {
    property("events_round_trip", event(Fields::any()), |event| {
        let stored = event.to_stored();
        prop_assert_eq!(
            Some(stored.schema_version),
            current_schema_version(event.event_type())
        );
        prop_assert_eq!(stored.event_type.as_str(), event.event_type());
        prop_assert_eq!(Event::from_stored(&stored).ok(), Some(event.clone()));
        let text =
            serde_json::to_string(&stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: StoredEvent =
            serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Event::from_stored(&back).ok(), Some(event));
        Ok(())
    });
}

/// `data` of `event` in an envelope as the log serves and the relay publishes it.
fn envelope(
    data: Value,
    event_type: &str,
    version: u32,
    stream: Uuid,
    at: DateTime<Utc>,
    pos: (u64, i64),
) -> Vec<u8> {
    let stream_id = if event_type == "UserRegistered" {
        format!("user-{stream}")
    } else {
        format!("channel-{stream}")
    };
    let recorded = RecordedEvent {
        event_id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version: version,
        stream_id,
        stream_version: pos.0,
        global_position: pos.1,
        transaction_id: 0,
        recorded_at: at,
        data,
        metadata: json!({"correlation_id": Uuid::now_v7()}),
    };
    serde_json::to_vec(&recorded).unwrap_or_default()
}

/// A timestamp Postgres can hold and RFC 3339 can write (years 0000–9999).
fn recorded_at() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..253_402_300_800, 0u32..1_000_000).prop_map(|(secs, micros)| {
        DateTime::from_timestamp(secs, micros * 1000).unwrap_or_default()
    })
}

fn positions() -> impl Strategy<Value = (u64, i64)> {
    (1..=i64::MAX as u64, 1..=i64::MAX)
}

#[test]
fn valid_deliveries_decode_as_themselves() {
    property(
        "events_valid_deliveries",
        (event(Fields::valid()), uuid(), recorded_at(), positions()),
        |(event, stream, at, pos)| {
            let stored = event.to_stored();
            let bytes = envelope(
                stored.data,
                event.event_type(),
                stored.schema_version,
                stream,
                at,
                pos,
            );
            match decode_delivery(&bytes, &SCHEMAS) {
                Ok((recorded, decoded)) => {
                    prop_assert_eq!(decoded, event);
                    prop_assert_eq!(recorded.recorded_at, at);
                }
                Err(e) => return fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))),
            }
            Ok(())
        },
    );
}

#[test]
fn channel_created_v1_upcasts_to_data_that_decodes() {
    property(
        "events_channel_created_v1",
        (
            ch(),
            any::<String>(),
            any::<bool>(),
            user(),
            uuid(),
            recorded_at(),
            positions(),
        ),
        |(channel_id, name, private, owner_id, stream, at, pos)| {
            let data = json!({"channel_id": channel_id, "name": name, "private": private, "owner_id": owner_id});
            let expected = Event::ChannelCreated(ChannelCreated {
                channel_id,
                name: name.clone(),
                kind: if private {
                    ChannelKind::Private
                } else {
                    ChannelKind::Public
                },
                max_members: None,
                owner_id,
            });
            let up = upcast("ChannelCreated", 1, data.clone())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&up, &expected.to_stored().data);
            let stored = StoredEvent {
                event_type: "ChannelCreated".into(),
                schema_version: 1,
                data: data.clone(),
            };
            prop_assert_eq!(Event::from_stored(&stored).ok(), Some(expected.clone()));
            // Through the projector too, where the v1 schema allows it.
            if !name.is_empty() {
                let bytes = envelope(data, "ChannelCreated", 1, stream, at, pos);
                match decode_delivery(&bytes, &SCHEMAS) {
                    Ok((_, decoded)) => prop_assert_eq!(decoded, expected),
                    Err(e) => return fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))),
                }
            }
            Ok(())
        },
    );
}
