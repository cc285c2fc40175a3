//! Authentication shared by every HTTP and WebSocket service: HS256 JWTs with a
//! pinned algorithm and checked `exp`/`iss`/`aud`, and argon2 password hashes.

mod password;
mod token;

pub use password::{MIN_PASSWORD_CHARS, PasswordError, hash_password, verify_password};
pub use token::{Claims, Issued, JwtConfig, JwtConfigError, TokenError};
