//! Passwords and session tokens.
//!
//! Passwords are hashed with argon2id (PHC strings, per-user random salt).
//! Session tokens are 32 random bytes handed to the client once; the store
//! keeps only their BLAKE3 hash, so a copy of the database cannot be used to
//! resume anyone's session. Hashing is CPU-heavy and runs on the blocking pool.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use skein_proto::bytes::SessionToken;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The stored hash is not a valid PHC string.
    #[error("stored password hash is corrupt; reset the password with `skein-tracker user passwd`")]
    CorruptHash,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking pool is gone (shutdown).
    #[error("password worker stopped")]
    Worker,
}

/// argon2id cost parameters.
#[derive(Debug, Clone)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for PasswordCost {
    /// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self { m_cost: 19 * 1024, t_cost: 2, p_cost: 1 }
    }
}

impl PasswordCost {
    fn argon2(&self) -> Result<Argon2<'static>, AuthError> {
        let params =
            Params::new(self.m_cost, self.t_cost, self.p_cost, None).map_err(|e| AuthError::Hash(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes a password into a PHC string (synchronous; prefer [`hash_password`]).
pub fn hash_password_blocking(password: &str, cost: &PasswordCost) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    cost.argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a password against a PHC string (synchronous).
pub fn verify_password_blocking(password: &str, phc: &str) -> Result<bool, AuthError> {
    let parsed = PasswordHash::new(phc).map_err(|_| AuthError::CorruptHash)?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(_) => Err(AuthError::CorruptHash),
    }
}

/// Hashes a password on the blocking pool.
pub async fn hash_password(password: String, cost: PasswordCost) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password, &cost))
        .await
        .map_err(|_| AuthError::Worker)?
}

/// Checks a password on the blocking pool. With `phc: None` (unknown user)
/// a dummy hash is checked anyway, so timing does not reveal which names exist.
pub async fn verify_password(password: String, phc: Option<String>) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_password_blocking(&password, &phc),
        None => {
            let _ = verify_password_blocking(&password, dummy_hash());
            Ok(false)
        }
    })
    .await
    .map_err(|_| AuthError::Worker)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password_blocking("not a real password", &PasswordCost::default()).unwrap_or_default())
}

/// A fresh random session token.
pub fn new_token() -> SessionToken {
    let mut t = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut t);
    SessionToken(t)
}

/// The form of a token the store keeps.
pub fn token_hash(token: &SessionToken) -> [u8; 32] {
    *blake3::keyed_hash(b"skein session token hash v1 key!", &token.0).as_bytes()
}

/// A random password for generated accounts: 20 characters from an
/// unambiguous alphabet (about 100 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| {
            let i = (rng.next_u32() as usize) % ALPHABET.len();
            ALPHABET[i] as char
        })
        .collect()
}

/// Checks a new password against the policy; the message says what to fix.
pub fn check_password_policy(password: &str) -> Result<(), String> {
    use skein_proto::limits::{MAX_PASSWORD, MIN_PASSWORD};
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!("password must be at least {MIN_PASSWORD} characters"));
    }
    if password.len() > MAX_PASSWORD {
        return Err(format!("password must be at most {MAX_PASSWORD} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordCost {
        PasswordCost { m_cost: 256, t_cost: 1, p_cost: 1 }
    }

    #[test]
    fn hash_and_verify() {
        let h = hash_password_blocking("correct horse", &cheap()).expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password_blocking("correct horse", &h).expect("verify"));
        assert!(!verify_password_blocking("wrong horse", &h).expect("verify"));
        assert!(matches!(verify_password_blocking("x", "garbage"), Err(AuthError::CorruptHash)));
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn generated_passwords_pass_policy() {
        let p = generate_password();
        assert_eq!(p.len(), 20);
        assert!(check_password_policy(&p).is_ok());
        assert!(check_password_policy("short").is_err());
    }
}
