//! Password hashing with argon2id, off the async executor.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=65536,t=3,p=4$...`), the format argon2-cffi
//! writes, so hashes made by the earlier service verify. Hashing costs tens of milliseconds of
//! CPU and 64 MiB of memory, so it runs on the blocking pool, at most one per spare core at a
//! time: a login storm queues here instead of starving `/color`.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

/// The cost of new hashes. Verification always uses the cost written in the hash itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashParams {
    /// argon2-cffi's defaults: 64 MiB, 3 passes, 4 lanes.
    fn default() -> Self {
        HashParams {
            memory_kib: 65_536,
            iterations: 3,
            parallelism: 4,
        }
    }
}

impl HashParams {
    /// The cheapest parameters argon2 allows; for tests only, where hashing speed matters
    /// more than resistance to cracking.
    pub fn insecure_fast_for_tests() -> Self {
        HashParams {
            memory_kib: 8 * 4,
            iterations: 1,
            parallelism: 4,
        }
    }
}

/// Hashing failed (bad parameters or the worker died); never about a wrong password.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// Hashes and verifies passwords on the blocking pool, a bounded number at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    hasher: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified when a login names no account, so that unknown
    /// and known identifiers take the same time.
    decoy: Arc<OnceCell<String>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher making new hashes with `params`.
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|err| HashError(err.to_string()))?;
        let spare_cores = std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1))
            .unwrap_or(1)
            .max(1);
        Ok(PasswordHasher {
            hasher: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
            permits: Arc::new(Semaphore::new(spare_cores)),
            decoy: Arc::new(OnceCell::new()),
        })
    }

    /// The PHC string of `password` with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.run(move |hasher| {
            hasher
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|err| HashError(err.to_string()))
        })
        .await?
    }

    /// Whether `password` matches the PHC string `hash`. A malformed hash does not match.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, HashError> {
        let password = password.to_owned();
        let hash = hash.to_owned();
        self.run(move |hasher| {
            hasher
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
    }

    /// Spends the time of one verification without an account, so that a login for an
    /// unknown identifier cannot be told apart by its timing.
    pub async fn verify_decoy(&self, password: &str) -> Result<(), HashError> {
        let decoy = self
            .decoy
            .get_or_try_init(|| async {
                self.hash(&hex::encode(crate::model::random_bytes::<16>()))
                    .await
            })
            .await?
            .clone();
        self.verify(password, &decoy).await.map(drop)
    }

    async fn run<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce(&Argon2<'static>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|err| HashError(err.to_string()))?;
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || work(&hasher))
            .await
            .map_err(|err| HashError(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = PasswordHasher::new(HashParams::insecure_fast_for_tests()).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"));
        assert!(hasher.verify("correct horse", &hash).await.unwrap());
        assert!(!hasher.verify("wrong horse", &hash).await.unwrap());
        assert!(!hasher.verify("correct horse", "not a hash").await.unwrap());
        hasher.verify_decoy("anything").await.unwrap();
    }

    #[tokio::test]
    async fn argon2_cffi_hashes_verify() {
        // Made by the earlier service (argon2-cffi defaults) for "alice-password-1".
        let legacy = "$argon2id$v=19$m=65536,t=3,p=4$oFCLrxfvZHZ/C5nWOl9xMA$1szt35IcNmq9zUNsS+AQAxy/f26MwtqARIyYjREm4zI";
        let hasher = PasswordHasher::new(HashParams::insecure_fast_for_tests()).unwrap();
        assert!(hasher.verify("alice-password-1", legacy).await.unwrap());
        assert!(!hasher.verify("alice-password-2", legacy).await.unwrap());
    }
}
