//! Validates envelopes against `schemas/events/{Type}.v{N}.json`, compiled
//! once at start from the files built into the binary.

use jsonschema::Validator;
use std::collections::HashMap;

macro_rules! schema_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../schemas/events/", $name, ".json")))),*]
    };
}

/// Every event schema the projector accepts.
const FILES: &[(&str, &str)] = schema_files!(
    "UserRegistered.v1",
    "ChannelCreated.v1",
    "ChannelCreated.v2",
    "MemberJoined.v1",
    "MemberInvited.v1",
    "MemberLeft.v1",
    "MemberKicked.v1",
    "MemberBanned.v1",
    "MemberUnbanned.v1",
    "MemberRoleChanged.v1",
    "ChannelArchived.v1",
    "ChannelMuted.v1",
    "ChannelUnmuted.v1",
    "MessageSent.v1",
    "MessageEdited.v1",
    "MessageDeleted.v1",
    "ReadUpTo.v1",
);

/// Compiled validators by (event type, schema version).
pub struct EventSchemas {
    validators: HashMap<(String, u32), Validator>,
}

impl EventSchemas {
    /// Compiles every built-in schema. Fails only if a shipped file is broken.
    pub fn load() -> Result<Self, String> {
        let mut validators = HashMap::new();
        for (name, text) in FILES {
            let (event_type, version) = name
                .split_once(".v")
                .ok_or(format!("bad schema name {name}"))?;
            let version: u32 = version
                .parse()
                .map_err(|_| format!("bad schema version in {name}"))?;
            let schema: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("{name}: {e}"))?;
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| format!("{name}: {e}"))?;
            validators.insert((event_type.to_owned(), version), validator);
        }
        Ok(Self { validators })
    }

    /// Checks an envelope; the error says why it is refused.
    pub fn check(&self, envelope: &serde_json::Value) -> Result<(), String> {
        let event_type = envelope
            .get("event_type")
            .and_then(|t| t.as_str())
            .ok_or("no event_type")?;
        let version = envelope
            .get("schema_version")
            .and_then(|v| v.as_u64())
            .ok_or("no schema_version")?;
        // A version past u32 has no schema (it must not wrap onto one that has).
        let validator = u32::try_from(version)
            .ok()
            .and_then(|v| self.validators.get(&(event_type.to_owned(), v)))
            .ok_or_else(|| format!("unknown event type or version: {event_type} v{version}"))?;
        match validator.iter_errors(envelope).next() {
            None => Ok(()),
            Some(error) => Err(format!(
                "{event_type} v{version} violates its schema at {}: {error}",
                error.instance_path()
            )),
        }
    }

    /// Whether there is a schema for this type and version.
    pub fn knows(&self, event_type: &str, version: u32) -> bool {
        self.validators
            .contains_key(&(event_type.to_owned(), version))
    }
}
