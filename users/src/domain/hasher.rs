//! argon2id hashing off the async runtime, a bounded number at a time.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

use crate::error::UsersError;

/// OWASP's minimum for argon2id: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Hashes and checks passwords on blocking threads; at most `concurrency` at once, so
/// memory stays bounded (19 MiB each) and logins queue instead of thrashing.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon: Argon2<'static>,
    permits: Semaphore,
    /// Requests waiting for a permit, for the metrics.
    queued: AtomicUsize,
    /// A hash to check against when the user does not exist, so that an unknown user
    /// costs the same time as a wrong password.
    dummy: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("available", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher allowing `concurrency` hashes at once (at least one).
    pub async fn new(concurrency: usize) -> Result<Self, UsersError> {
        let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
            .map_err(|err| UsersError::Hashing(err.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = {
            let argon = argon.clone();
            tokio::task::spawn_blocking(move || hash_blocking(&argon, "not a password of anyone"))
                .await??
        };
        Ok(Self {
            inner: Arc::new(Inner {
                argon,
                permits: Semaphore::new(concurrency.max(1)),
                queued: AtomicUsize::new(0),
                dummy,
            }),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of `password`.
    pub async fn hash(&self, password: String) -> Result<String, UsersError> {
        self.run(move |argon, _| hash_blocking(argon, &password))
            .await
    }

    /// Whether `password` matches `stored`; with no stored hash, checks against a dummy
    /// and answers `false`, taking the same time.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, UsersError> {
        self.run(move |argon, dummy| {
            let (hash, exists) = match &stored {
                Some(hash) => (hash.as_str(), true),
                None => (dummy, false),
            };
            let matches = argon.verify_password(password.as_bytes(), hash).is_ok();
            Ok(exists && matches)
        })
        .await
    }

    /// How many calls wait for a slot.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    async fn run<T, F>(&self, work: F) -> Result<T, UsersError>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>, &str) -> Result<T, UsersError> + Send + 'static,
    {
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        let permit = self.inner.permits.acquire().await;
        self.inner.queued.fetch_sub(1, Ordering::Relaxed);
        let _permit = permit.map_err(|_| UsersError::Hashing("the hasher was closed".into()))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner.argon, &inner.dummy)).await?
    }
}

fn hash_blocking(argon: &Argon2<'_>, password: &str) -> Result<String, UsersError> {
    argon
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| UsersError::Hashing(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_is_argon2id_with_owasp_parameters_and_checks_its_password() {
        let hasher = Hasher::new(1).await.expect("hasher");
        let hash = hasher.hash("correct horse".into()).await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hash))
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = Hasher::new(1).await.expect("hasher");
        assert!(
            !hasher
                .verify("not a password of anyone".into(), None)
                .await
                .expect("verify")
        );
    }
}
