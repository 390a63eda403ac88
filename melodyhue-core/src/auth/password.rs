//! Password hashing with argon2id, off the async executor.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=65536,t=3,p=4$...`), the format argon2-cffi
//! writes, so hashes made by the earlier service verify. Hashing costs tens of milliseconds of
//! CPU and 64 MiB of memory, so it runs on the blocking pool, at most one per worker at a time
//! (one per spare core by default: a login storm queues here instead of starving `/color`),
//! and only for requests that admission control let in ([`super::admission`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{CustomizedPasswordHasher as _, PasswordHasher as _};
use argon2::{Algorithm, Argon2, Params, Version};

use super::admission::{Admission, AdmissionLimits, HashAdmission, Refusal};

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

/// Why a password could not be hashed or checked; never about a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Admission control refused the request (see [`super::admission`]).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Hashing failed (bad parameters or the worker died).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords on the blocking pool, under [`HashAdmission`].
///
/// Every hash runs in a [`HashingSlot`] that [`PasswordHasher::admit`] grants to one request
/// of one client, so a flood of requests cannot queue hashes without bound.
#[derive(Clone)]
pub struct PasswordHasher {
    hasher: Arc<Argon2<'static>>,
    admission: HashAdmission,
    /// A hash of a random password, verified when a login names no account, so that unknown
    /// and known identifiers take the same time. Made on first use.
    decoy: Arc<OnceLock<String>>,
    /// Argon2 computations so far.
    computations: Arc<AtomicU64>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

/// Hashing threads when the configuration leaves it open: one per core but one (at least
/// one), so a login storm queues here instead of starving `/color`.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

impl PasswordHasher {
    /// A hasher making new hashes with `params`, admitting work under `limits`.
    pub fn new(params: HashParams, limits: AdmissionLimits) -> Result<Self, HashError> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|err| HashError::Failed(err.to_string()))?;
        Ok(PasswordHasher {
            hasher: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
            admission: HashAdmission::new(limits),
            decoy: Arc::new(OnceLock::new()),
            computations: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Admits one request of `client` to hash, or refuses it at once (see
    /// [`super::admission`]).
    pub fn admit(&self, client: Option<IpAddr>) -> Result<HashingSlot<'_>, HashError> {
        Ok(HashingSlot {
            hasher: self,
            admission: self.admission.admit(client)?,
        })
    }

    /// Argon2 computations so far (hashes made and password checks), for tests and metrics.
    pub fn computations(&self) -> u64 {
        self.computations.load(Ordering::Relaxed)
    }
}

/// One request's right to hash; its hashes wait for a worker in fair order.
#[derive(Debug)]
pub struct HashingSlot<'a> {
    hasher: &'a PasswordHasher,
    admission: Admission,
}

impl HashingSlot<'_> {
    /// The PHC string of `password` with a fresh random salt and the configured cost.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        self.hash_like(password, None).await
    }

    /// The PHC string of `password`; with `like`, made with the salt and the cost of that PHC
    /// string (accounts sharing a username share a salt, so that one computation checks a
    /// password against all of them). A `like` that cannot be read is ignored.
    pub async fn hash_like(&self, password: &str, like: Option<&str>) -> Result<String, HashError> {
        let password = password.to_owned();
        let like = like.map(str::to_owned);
        let computations = Arc::clone(&self.hasher.computations);
        self.run(move |hasher| {
            computations.fetch_add(1, Ordering::Relaxed);
            let template = like.as_deref().and_then(|phc| PasswordHash::new(phc).ok());
            let like_template = template
                .as_ref()
                .and_then(|t| t.salt.as_ref().map(|salt| (t, salt)))
                .and_then(|(template, salt)| {
                    let params = Params::try_from(template).ok()?;
                    hasher
                        .hash_password_customized(
                            password.as_bytes(),
                            salt,
                            Some(template.algorithm.as_str()),
                            template.version,
                            params,
                        )
                        .ok()
                });
            // A template argon2 cannot follow (another algorithm) gives a hash of our own.
            let hashed = match like_template {
                Some(hash) => Ok(hash),
                None => hasher.hash_password(password.as_bytes()),
            };
            hashed
                .map(|hash| hash.to_string())
                .map_err(|err| HashError::Failed(err.to_string()))
        })
        .await?
    }

    /// Which of `hashes` (PHC strings) `password` matches, if any. Hashes that share salt and
    /// cost are checked with one computation; with no hash at all, a decoy is checked, so
    /// that the answer takes the same time. A malformed hash matches nothing.
    pub async fn verify_any(
        &self,
        password: &str,
        hashes: &[&str],
    ) -> Result<Option<usize>, HashError> {
        let password = password.to_owned();
        let hashes: Vec<String> = hashes.iter().map(|h| (*h).to_owned()).collect();
        let computations = Arc::clone(&self.hasher.computations);
        let decoy = Arc::clone(&self.hasher.decoy);
        self.run(move |hasher| {
            if hashes.is_empty() {
                let decoy = decoy.get_or_init(|| {
                    computations.fetch_add(1, Ordering::Relaxed);
                    let random = hex::encode(crate::model::random_bytes::<16>());
                    hasher
                        .hash_password(random.as_bytes())
                        .map(|hash| hash.to_string())
                        .unwrap_or_default()
                });
                matching(
                    hasher,
                    &computations,
                    password.as_bytes(),
                    &[decoy.as_str()],
                );
                return None;
            }
            let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
            matching(hasher, &computations, password.as_bytes(), &hashes)
        })
        .await
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, HashError> {
        Ok(self.verify_any(password, &[hash]).await?.is_some())
    }

    /// Waits for a worker like a hash does, and holds it until dropped (tests fill the queue
    /// with it).
    #[doc(hidden)]
    pub async fn hold_worker(&self) -> Result<super::admission::Worker, HashError> {
        Ok(self.admission.worker().await?)
    }

    async fn run<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce(&Argon2<'static>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let _worker = self.admission.worker().await?;
        let hasher = Arc::clone(&self.hasher.hasher);
        tokio::task::spawn_blocking(move || work(&hasher))
            .await
            .map_err(|err| HashError::Failed(err.to_string()))
    }
}

/// Whether one computation checks a password against both PHC strings (same algorithm, salt
/// and cost). Malformed strings share nothing.
pub fn same_computation_for(a: &str, b: &str) -> bool {
    match (PasswordHash::new(a), PasswordHash::new(b)) {
        (Ok(a), Ok(b)) => same_computation(&a, &b),
        _ => false,
    }
}

/// Whether two parsed hashes are made with the same salt and cost (one computation checks a
/// password against both).
fn same_computation(a: &PasswordHash, b: &PasswordHash) -> bool {
    a.algorithm == b.algorithm
        && a.version == b.version
        && a.params == b.params
        && a.salt == b.salt
        && a.hash.as_ref().map(|h| h.len()) == b.hash.as_ref().map(|h| h.len())
}

/// The index of the first of `hashes` that `password` matches. Every distinct salt and cost is
/// computed once, whichever hash matches, so the time depends on how many distinct ones there
/// are, never on where the match is.
fn matching(
    hasher: &Argon2<'static>,
    computations: &AtomicU64,
    password: &[u8],
    hashes: &[&str],
) -> Option<usize> {
    let parsed: Vec<Option<PasswordHash>> =
        hashes.iter().map(|h| PasswordHash::new(h).ok()).collect();
    let mut checked = vec![false; parsed.len()];
    let mut found = None;
    for (i, reference) in parsed.iter().enumerate() {
        let Some(reference) = reference else { continue };
        if checked[i] {
            continue;
        }
        computations.fetch_add(1, Ordering::Relaxed);
        let computed = match (&reference.salt, Params::try_from(reference)) {
            (Some(salt), Ok(params)) => hasher
                .hash_password_customized(
                    password,
                    salt,
                    Some(reference.algorithm.as_str()),
                    reference.version,
                    params,
                )
                .ok()
                .and_then(|hash| hash.hash),
            _ => None,
        };
        for (j, other) in parsed.iter().enumerate().skip(i) {
            let Some(other) = other else { continue };
            if checked[j] || !same_computation(reference, other) {
                continue;
            }
            checked[j] = true;
            // `Output`'s equality is constant-time.
            if found.is_none() && computed.is_some() && computed == other.hash {
                found = Some(j);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        let limits = AdmissionLimits {
            workers: 1,
            queue: 8,
            per_client: 2,
        };
        PasswordHasher::new(HashParams::insecure_fast_for_tests(), limits).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = hasher();
        let slot = hasher.admit(None).unwrap();
        let hash = slot.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"));
        assert!(slot.verify("correct horse", &hash).await.unwrap());
        assert!(!slot.verify("wrong horse", &hash).await.unwrap());
        assert!(!slot.verify("correct horse", "not a hash").await.unwrap());
        assert_eq!(slot.verify_any("anything", &[]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn argon2_cffi_hashes_verify() {
        // Made by the earlier service (argon2-cffi defaults) for "alice-password-1".
        let legacy = "$argon2id$v=19$m=65536,t=3,p=4$oFCLrxfvZHZ/C5nWOl9xMA$1szt35IcNmq9zUNsS+AQAxy/f26MwtqARIyYjREm4zI";
        let hasher = hasher();
        let slot = hasher.admit(None).unwrap();
        assert!(slot.verify("alice-password-1", legacy).await.unwrap());
        assert!(!slot.verify("alice-password-2", legacy).await.unwrap());
        // A hash made like it keeps its salt and cost, and so does its check.
        let like = slot.hash_like("bob-password", Some(legacy)).await.unwrap();
        assert!(like.starts_with("$argon2id$v=19$m=65536,t=3,p=4$oFCLrxfvZHZ/C5nWOl9xMA$"));
        assert_eq!(
            slot.verify_any("bob-password", &[legacy, &like])
                .await
                .unwrap(),
            Some(1)
        );
    }

    #[tokio::test]
    async fn hashes_sharing_a_salt_cost_one_computation() {
        let hasher = hasher();
        let slot = hasher.admit(None).unwrap();
        let first = slot.hash("first-password").await.unwrap();
        let second = slot
            .hash_like("second-password", Some(&first))
            .await
            .unwrap();
        let third = slot
            .hash_like("third-password", Some(&first))
            .await
            .unwrap();
        let other = slot.hash("other-password").await.unwrap();
        let shared = [first.as_str(), second.as_str(), third.as_str()];
        let before = hasher.computations();
        assert_eq!(slot.verify_any("wrong", &shared).await.unwrap(), None);
        assert_eq!(hasher.computations() - before, 1);
        assert_eq!(
            slot.verify_any("third-password", &shared).await.unwrap(),
            Some(2)
        );
        assert_eq!(hasher.computations() - before, 2);
        // Distinct salts cost one computation each; a malformed hash costs none.
        let mixed = [first.as_str(), other.as_str(), "garbage"];
        let before = hasher.computations();
        assert_eq!(
            slot.verify_any("other-password", &mixed).await.unwrap(),
            Some(1)
        );
        assert_eq!(hasher.computations() - before, 2);
        // The decoy is made once, then checked like any hash.
        slot.verify_any("x", &[]).await.unwrap();
        let before = hasher.computations();
        slot.verify_any("x", &[]).await.unwrap();
        assert_eq!(hasher.computations() - before, 1);
    }
}
