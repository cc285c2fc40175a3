//! Password rules and argon2id hashing (OWASP parameters: m = 19 MiB, t = 2,
//! p = 1). The hashing itself runs on a [`crate::HashPool`], which owns the
//! memory each hash works in; this module is the arithmetic on a given buffer.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::try_generate_salt;
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes: hashing cost must not be the caller's choice.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password was not hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("password must be at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("password must not contain U+0000")]
    Nul,
    /// The hashing pool could not take the work now; retry later.
    #[error(transparent)]
    Busy(#[from] crate::Busy),
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Checks a new password against the rules (length, no U+0000), without hashing.
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    if password.contains('\0') {
        return Err(PasswordError::Nul);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// Hashes `password` into a PHC string with `params`, working in `blocks`
/// (at least `params.block_count()` of them; their old contents do not matter:
/// argon2 writes every block before it reads it).
pub(crate) fn hash_with(
    params: &Params,
    password: &[u8],
    blocks: &mut [Block],
) -> Result<String, PasswordError> {
    let failed = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let salt = try_generate_salt().map_err(|e| failed(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, blocks)
        .map_err(|e| failed(&e))?;
    phc_string(params, &salt, &out)
}

/// Whether `password` matches the PHC string `stored`, computed in `blocks`.
/// A malformed string never matches; one that needs more memory than `blocks`
/// holds is an error (the pool's memory is fixed: configure it with the
/// strongest parameters in use, and every weaker hash verifies).
pub(crate) fn verify_with(
    password: &[u8],
    stored: &str,
    blocks: &mut [Block],
) -> Result<bool, PasswordError> {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Ok(false);
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Ok(false);
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return Ok(false);
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return Ok(false),
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return Ok(false);
    };
    let Some(blocks) = blocks.get_mut(..params.block_count()) else {
        return Err(PasswordError::Hash(format!(
            "the stored hash needs {} KiB, more than the hashing pool's {} KiB",
            params.m_cost(),
            blocks.len()
        )));
    };
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let Some(out) = buffer.get_mut(..expected.len()) else {
        return Ok(false);
    };
    if Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut *out, blocks)
        .is_err()
    {
        return Ok(false);
    }
    // `Output`'s equality is constant-time.
    Ok(Output::new(out).is_ok_and(|computed| computed == *expected))
}

/// The argon2id PHC string of `params`, `salt` and the hash `out`.
fn phc_string(params: &Params, salt: &[u8], out: &[u8]) -> Result<String, PasswordError> {
    let failed = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// A PHC string with `params` and a random salt and output: verifying any
/// password against it costs a real verification and never matches (the
/// output is 256 random bits, not the hash of anything).
pub(crate) fn decoy(params: &Params) -> Result<String, PasswordError> {
    let failed = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let salt = try_generate_salt().map_err(|e| failed(&e))?;
    let mut out = [0u8; 32];
    for half in out.chunks_mut(16) {
        half.copy_from_slice(&try_generate_salt().map_err(|e| failed(&e))?);
    }
    phc_string(params, &salt, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHasher, PasswordVerifier};

    fn buffer() -> Vec<Block> {
        vec![Block::new(); Params::DEFAULT.block_count()]
    }

    #[test]
    fn hashes_are_owasp_argon2id_and_interoperate_with_the_crate() {
        let mut blocks = buffer();
        let hash = hash_with(&Params::DEFAULT, b"correct horse", &mut blocks).expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        // Ours verify with the crate, and the crate's (every hash stored
        // before the pool existed) with ours.
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", hash.as_str())
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .expect("hash")
            .to_string();
        assert!(verify_with(b"battery staple", &theirs, &mut blocks).expect("verifies"));
        assert!(!verify_with(b"battery stapler", &theirs, &mut blocks).expect("verifies"));
        assert!(verify_with(b"correct horse", &hash, &mut blocks).expect("verifies"));
        assert!(!verify_with(b"wrong horse!", &hash, &mut blocks).expect("verifies"));
        assert!(!verify_with(b"correct horse", "not a phc string", &mut blocks).expect("no"));
    }

    #[test]
    fn a_decoy_never_matches_and_has_the_real_parameters() {
        let decoy = decoy(&Params::DEFAULT).expect("decoy");
        assert!(decoy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!verify_with(b"", &decoy, &mut buffer()).expect("verifies"));
    }

    #[test]
    fn a_hash_stronger_than_the_buffer_is_an_error_not_an_allocation() {
        let small = Params::new(8, 1, 1, None).expect("params");
        let mut blocks = vec![Block::new(); small.block_count()];
        let strong = hash_with(&Params::DEFAULT, b"password", &mut buffer()).expect("hash");
        assert!(matches!(
            verify_with(b"password", &strong, &mut blocks),
            Err(PasswordError::Hash(_))
        ));
    }

    #[test]
    fn length_and_nul_rules() {
        assert!(matches!(
            check_password("short"),
            Err(PasswordError::TooShort)
        ));
        assert!(matches!(
            check_password(&"x".repeat(2000)),
            Err(PasswordError::TooLong)
        ));
        assert!(matches!(
            check_password("password\u{0}123"),
            Err(PasswordError::Nul)
        ));
        assert!(check_password("long enough").is_ok());
    }
}
