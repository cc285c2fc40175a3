//! Authentication shared by every HTTP and WebSocket service: HS256 JWTs with a
//! pinned algorithm and checked `exp`/`iss`/`aud`, and argon2id password hashes
//! computed on a small dedicated pool with fixed memory.

mod password;
mod pool;
mod token;

pub use password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordError, check_password};
pub use pool::{Busy, HashPool, HashPoolConfig};
pub use token::{Claims, Issued, JwtConfig, JwtConfigError, TokenError};
