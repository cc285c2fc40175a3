//! Upcasting: old stored shapes are rewritten to the current one before decoding,
//! so the log is never migrated in place and the domain knows one shape per event.

use serde_json::Value;

/// Why an event could not be upcast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} has no schema version {version} (current is {current})")]
    UnknownVersion {
        event_type: String,
        version: u32,
        current: u32,
    },
    #[error("{event_type} v{version}: {reason}")]
    Malformed {
        event_type: String,
        version: u32,
        reason: &'static str,
    },
}

/// The schema version new events of this type are written with.
pub fn current_schema_version(event_type: &str) -> Option<u32> {
    match event_type {
        "ChannelCreated" => Some(2),
        t if crate::event::EVENT_TYPES.contains(&t) => Some(1),
        _ => None,
    }
}

/// Rewrites `data` of `event_type` at `version` into the current schema version.
pub fn upcast(event_type: &str, version: u32, mut data: Value) -> Result<Value, UpcastError> {
    let current = current_schema_version(event_type)
        .ok_or_else(|| UpcastError::UnknownType(event_type.to_owned()))?;
    if version == 0 || version > current {
        return Err(UpcastError::UnknownVersion {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    let mut at = version;
    while at < current {
        data = match (event_type, at) {
            ("ChannelCreated", 1) => channel_created_v1_to_v2(data)?,
            _ => unreachable_step(event_type, at)?,
        };
        at += 1;
    }
    Ok(data)
}

/// v1 said `private: bool`; v2 says `kind: "public" | "private"` and adds
/// `max_members` (v1 channels had no limit).
fn channel_created_v1_to_v2(mut data: Value) -> Result<Value, UpcastError> {
    let malformed = |reason| UpcastError::Malformed {
        event_type: "ChannelCreated".into(),
        version: 1,
        reason,
    };
    let object = data
        .as_object_mut()
        .ok_or(malformed("data is not an object"))?;
    let private = object
        .remove("private")
        .and_then(|p| p.as_bool())
        .ok_or(malformed("`private` is missing or not a boolean"))?;
    object.insert(
        "kind".into(),
        Value::from(if private { "private" } else { "public" }),
    );
    object.entry("max_members").or_insert(Value::Null);
    Ok(data)
}

fn unreachable_step(event_type: &str, version: u32) -> Result<Value, UpcastError> {
    Err(UpcastError::Malformed {
        event_type: event_type.to_owned(),
        version,
        reason: "no upcaster registered for this version",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelKind, Event, StoredEvent};
    use serde_json::json;

    #[test]
    fn channel_created_v1_decodes_as_current_event() {
        let owner = uuid::Uuid::now_v7();
        let channel = uuid::Uuid::now_v7();
        let stored = StoredEvent {
            event_type: "ChannelCreated".into(),
            schema_version: 1,
            data: json!({"channel_id": channel, "name": "general", "private": true, "owner_id": owner}),
        };
        let Event::ChannelCreated(created) = Event::from_stored(&stored).expect("v1 decodes")
        else {
            panic!("wrong variant");
        };
        assert_eq!(created.kind, ChannelKind::Private);
        assert_eq!(created.max_members, None);
        assert_eq!(created.owner_id.0, owner);
    }

    #[test]
    fn v1_without_private_flag_is_refused_not_guessed() {
        let err = upcast("ChannelCreated", 1, json!({"name": "x"})).expect_err("must refuse");
        assert!(matches!(err, UpcastError::Malformed { .. }));
    }

    #[test]
    fn current_version_passes_through_unchanged() {
        let data = json!({"channel_id": uuid::Uuid::nil(), "name": "n", "kind": "public", "max_members": 3, "owner_id": uuid::Uuid::nil()});
        assert_eq!(upcast("ChannelCreated", 2, data.clone()), Ok(data));
    }

    #[test]
    fn unknown_types_and_future_versions_are_errors() {
        assert!(matches!(
            upcast("Nope", 1, json!({})),
            Err(UpcastError::UnknownType(_))
        ));
        assert!(matches!(
            upcast("MessageSent", 2, json!({})),
            Err(UpcastError::UnknownVersion { .. })
        ));
    }
}
