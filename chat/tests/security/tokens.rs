//! Hand-made JWTs: any header, any claims, any signature, so a test can
//! forge what an attacker would (RFC 7515 compact form, base64url, no padding).

use crate::server::SECRET;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use uuid::Uuid;

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// The `sub` of a token's base64url claims part.
pub fn subject(claims_part: &str) -> Uuid {
    let bytes = b64url_decode(claims_part);
    let claims: Value = serde_json::from_slice(&bytes).expect("claims are JSON");
    claims["sub"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("sub is a uuid")
}

fn b64url_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (u32::from(value(*c)) << (18 - 6 * i)));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The claims the server issues, for `sub`, valid for ten minutes.
pub fn claims(sub: Uuid, name: &str) -> Value {
    let now = now();
    json!({"sub": sub, "name": name, "iss": "chat", "aud": "chat", "iat": now, "exp": now + 600})
}

/// `header.claims` (the signing input).
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// `header.claims.signature` with an HMAC of `algorithm` keyed by `key`,
/// whatever the header says.
pub fn hmac(header: &Value, claims: &Value, algorithm: Algorithm, key: &[u8]) -> String {
    let input = signing_input(header, claims);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(key), algorithm)
            .expect("HMAC signs");
    format!("{input}.{signature}")
}

/// A token the server would issue itself (HS256, its secret).
pub fn valid(claims: &Value) -> String {
    hmac(
        &json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        Algorithm::HS256,
        SECRET.as_bytes(),
    )
}

#[test]
fn base64url_matches_the_rfc_4648_vectors() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64url(plain.as_bytes()), encoded);
    }
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    for plain in ["", "f", "fo", "foo", "foob", "{\"sub\":1}"] {
        assert_eq!(b64url_decode(&b64url(plain.as_bytes())), plain.as_bytes());
    }
}
