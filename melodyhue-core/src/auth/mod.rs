//! Authentication building blocks: password hashing and its admission control, JWTs, TOTP and
//! failure budgets (login throttling).

pub mod admission;
pub mod password;
pub mod throttle;
pub mod tokens;
pub mod totp;

use sha2::{Digest, Sha256};

/// Hex SHA-256 of a secret token: what the database keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
