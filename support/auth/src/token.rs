//! Access tokens: HS256 only (the algorithm is pinned here, never read from the
//! token), with `exp`, `iss` and `aud` required and checked, and a token that
//! carries `nbf` refused until then (RFC 7519 §4.1.5), with the same leeway.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The shortest secret accepted, in bytes (HS256 wants at least its output size).
pub const MIN_SECRET_BYTES: usize = 32;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The username, for logs and admin checks.
    pub name: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("CHAT_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (it is {0})")]
    SecretTooShort(usize),
}

/// Why a token was refused. Deliberately coarse: callers answer 401 either way.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

/// Issues and verifies tokens.
#[derive(Clone)]
pub struct JwtConfig {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl JwtConfig {
    /// A configuration with `secret` as the HS256 key; refuses short secrets.
    pub fn new(
        secret: &[u8],
        issuer: &str,
        audience: &str,
        ttl_secs: i64,
    ) -> Result<Self, JwtConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(JwtConfigError::SecretTooShort(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        // A token is not accepted before its `nbf` (jsonwebtoken leaves this off).
        validation.validate_nbf = true;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
        })
    }

    /// Issues a token for a user.
    pub fn issue(&self, user_id: Uuid, username: &str) -> Issued {
        self.issue_at(user_id, username, Utc::now().timestamp())
    }

    /// Issues a token as if it were `now` (tests make expired tokens with it).
    pub fn issue_at(&self, user_id: Uuid, username: &str, now: i64) -> Issued {
        let claims = Claims {
            sub: user_id,
            name: username.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        // unwrap: HS256 encoding of a plain struct with an HMAC key cannot fail.
        #[expect(clippy::unwrap_used)]
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap();
        Issued {
            access_token,
            expires_in: self.ttl_secs,
        }
    }

    /// Verifies a token's signature, algorithm, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn config() -> JwtConfig {
        JwtConfig::new(SECRET, "chat", "chat", 3600).expect("config")
    }

    #[test]
    fn issued_tokens_verify() {
        let id = Uuid::new_v4();
        let token = config().issue(id, "alice").access_token;
        let claims = config().verify(&token).expect("valid");
        assert_eq!((claims.sub, claims.name.as_str()), (id, "alice"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            JwtConfig::new(b"short", "chat", "chat", 60),
            Err(JwtConfigError::SecretTooShort(5))
        ));
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let id = Uuid::new_v4();
        let old = config()
            .issue_at(id, "a", Utc::now().timestamp() - 7200)
            .access_token;
        assert!(matches!(config().verify(&old), Err(TokenError::Expired)));

        let other_key = JwtConfig::new(b"another-secret-another-secret-xx", "chat", "chat", 60)
            .expect("config");
        let forged = other_key.issue(id, "a").access_token;
        assert!(matches!(config().verify(&forged), Err(TokenError::Invalid)));

        let wrong_audience = JwtConfig::new(SECRET, "chat", "elsewhere", 60).expect("config");
        assert!(
            config()
                .verify(&wrong_audience.issue(id, "a").access_token)
                .is_err()
        );
        let wrong_issuer = JwtConfig::new(SECRET, "evil", "chat", 60).expect("config");
        assert!(
            config()
                .verify(&wrong_issuer.issue(id, "a").access_token)
                .is_err()
        );

        assert!(config().verify("not.a.token").is_err());
    }

    #[test]
    fn a_token_is_refused_before_its_nbf() {
        let now = Utc::now().timestamp();
        let id = Uuid::new_v4();
        #[derive(Serialize)]
        struct WithNbf {
            #[serde(flatten)]
            claims: Claims,
            nbf: i64,
        }
        let with_nbf = |nbf: i64| {
            let claims = WithNbf {
                claims: Claims {
                    sub: id,
                    name: "a".into(),
                    iss: "chat".into(),
                    aud: "chat".into(),
                    iat: now,
                    exp: now + 600,
                },
                nbf,
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET),
            )
            .expect("encode")
        };
        assert!(matches!(
            config().verify(&with_nbf(now + 60)),
            Err(TokenError::Invalid)
        ));
        // Within the leeway, and in the past, it is valid.
        assert!(config().verify(&with_nbf(now + 2)).is_ok());
        assert!(config().verify(&with_nbf(now - 60)).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        use base64_like::encode;
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let exp = Utc::now().timestamp() + 600;
        let body = encode(
            format!(
                r#"{{"sub":"{}","name":"a","iss":"chat","aud":"chat","iat":0,"exp":{exp}}}"#,
                Uuid::new_v4()
            )
            .as_bytes(),
        );
        assert!(config().verify(&format!("{header}.{body}.")).is_err());
    }

    /// URL-safe base64 without padding, enough to hand-craft a token.
    mod base64_like {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        pub fn encode(input: &[u8]) -> String {
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [
                    chunk[0],
                    *chunk.get(1).unwrap_or(&0),
                    *chunk.get(2).unwrap_or(&0),
                ];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
