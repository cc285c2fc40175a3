//! What an idempotency key means (DESIGN §3).
//!
//! A `client_msg_id` names one message of one sender in one channel: the same
//! id in another channel is another message, and in the same channel it is a
//! retry that answers the first result whatever its content. An
//! `Idempotency-Key` is bound to the request it came with: the same key with
//! another method, path or body is refused (`idempotency_key_reused`), as the
//! IETF Idempotency-Key draft says.

use domain::{ChannelId, DomainError, UserId};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The longest `client_msg_id` (in characters) or `Idempotency-Key` (ASCII).
pub const MAX_KEY_CHARS: usize = 200;

/// The stored key of a send with `client_msg_id` from `sender` in `channel`.
pub fn client_msg_key(
    sender: UserId,
    channel: ChannelId,
    client_msg_id: &str,
) -> Result<String, DomainError> {
    if client_msg_id.is_empty() || client_msg_id.chars().count() > MAX_KEY_CHARS {
        return Err(DomainError::Invalid {
            field: "client_msg_id",
            reason: format!("must be 1 to {MAX_KEY_CHARS} characters"),
        });
    }
    domain::check_text("client_msg_id", client_msg_id)?;
    Ok(format!("msg:{sender}:{channel}:{client_msg_id}"))
}

/// The stored key of an `Idempotency-Key` header sent by `caller`.
pub(crate) fn header_key(caller: UserId, key: &str) -> String {
    format!("hdr:{caller}:{key}")
}

/// A digest of what a request asked for: method, path and the body as parsed
/// (so whitespace and field order do not matter, defaults do not either).
pub(crate) fn fingerprint(method: &str, path: &str, body: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    // Serialising a derived struct cannot fail; a body that could not be
    // serialised fingerprints as empty and still binds method and path.
    hasher.update(serde_json::to_vec(body).unwrap_or_default());
    hasher
        .finalize()
        .iter()
        .fold(String::new(), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_client_msg_id_is_scoped_by_sender_and_channel() {
        let (ann, bob) = (UserId::new(), UserId::new());
        let (one, two) = (ChannelId::new(), ChannelId::new());
        let key = |u, c| client_msg_key(u, c, "same").expect("valid");
        assert_ne!(key(ann, one), key(ann, two));
        assert_ne!(key(ann, one), key(bob, one));
        assert_eq!(key(ann, one), key(ann, one));
    }

    #[test]
    fn a_client_msg_id_must_be_short_visible_text() {
        let (u, c) = (UserId::new(), ChannelId::new());
        assert!(client_msg_key(u, c, "").is_err());
        assert!(client_msg_key(u, c, &"x".repeat(MAX_KEY_CHARS + 1)).is_err());
        assert!(client_msg_key(u, c, "a\0b").is_err());
        assert!(client_msg_key(u, c, &"é".repeat(MAX_KEY_CHARS)).is_ok());
    }

    #[test]
    fn the_fingerprint_binds_method_path_and_body() {
        let base = fingerprint("POST", "/api/channels/1/messages", &json!({"content": "a"}));
        assert_eq!(
            base,
            fingerprint("POST", "/api/channels/1/messages", &json!({"content": "a"}))
        );
        assert_ne!(
            base,
            fingerprint("POST", "/api/channels/1/messages", &json!({"content": "b"}))
        );
        assert_ne!(
            base,
            fingerprint("POST", "/api/channels/2/messages", &json!({"content": "a"}))
        );
        assert_ne!(
            base,
            fingerprint("PUT", "/api/channels/1/messages", &json!({"content": "a"}))
        );
    }
}
