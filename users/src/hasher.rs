//! argon2id hashing off the async runtime, a bounded number at a time.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};

use opentelemetry::{KeyValue, trace::SpanBuilder};

use crate::error::UsersError;

/// OWASP's minimum for argon2id: 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;
/// Salt and hash lengths, as argon2's defaults.
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

/// Hashes and checks passwords on `concurrency` dedicated threads, so that at most
/// that many hashes run at once (19 MiB each), logins queue instead of thrashing, and
/// the memory stays with a few threads instead of spreading over the blocking pool
/// (where each thread's allocator arena would keep its own 19 MiB).
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

/// A hashing job: runs on a worker thread, with its memory.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What a worker thread owns: the argon2 memory (19 MiB), allocated once and reused by
/// every hash, so the service's memory stays `concurrency` times that.
struct Worker {
    params: Params,
    blocks: Vec<Block>,
    /// A hash to check against when the user does not exist, so that an unknown user
    /// costs the same time as a wrong password.
    dummy: String,
}

impl Worker {
    fn new(params: Params) -> Result<Self, UsersError> {
        let mut worker = Self {
            blocks: vec![Block::default(); params.block_count()],
            params,
            dummy: String::new(),
        };
        worker.dummy = worker.hash("not a password of anyone")?;
        Ok(worker)
    }

    /// The PHC string of `password` with a new random salt.
    fn hash(&mut self, password: &str) -> Result<String, UsersError> {
        let failed = |err: &dyn std::fmt::Display| UsersError::Hashing(err.to_string());
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| failed(&e))?;
        let mut out = [0u8; OUTPUT_BYTES];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut self.blocks)
            .map_err(|e| failed(&e))?;
        let salt = Salt::new(&salt).map_err(|e| failed(&e))?.to_salt_string();
        let output = Output::new(&out).map_err(|e| failed(&e))?;
        let mut buf = [0u8; 128];
        let output = output.encode(&mut buf).map_err(|e| failed(&e))?;
        let params = ParamsString::try_from(&self.params).map_err(|e| failed(&e))?;
        Ok(format!("$argon2id$v=19${params}${salt}${output}"))
    }

    /// Whether `password` matches `stored`: a PHC string (any argon2 parameters), or an
    /// imported werkzeug hash.
    fn verify(&mut self, password: &str, stored: &str) -> bool {
        if crate::werkzeug::is_werkzeug(stored) {
            return crate::werkzeug::verify(password, stored);
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(parsed.algorithm.as_str()),
            Params::try_from(&parsed),
        ) else {
            return false;
        };
        let version = parsed
            .version
            .map_or(Ok(Version::V0x13), Version::try_from)
            .unwrap_or(Version::V0x13);
        if self.blocks.len() < params.block_count() {
            self.blocks.resize(params.block_count(), Block::default());
        }
        let count = params.block_count();
        let mut out = vec![0u8; expected.len()];
        let computed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut self.blocks[..count],
        );
        // `Output` compares in constant time.
        computed.is_ok() && Output::new(&out).is_ok_and(|out| out == *expected)
    }
}

/// Hashes waiting for a worker before more are refused (503, `Retry-After: 1`): about
/// half a second of work on two cores, well within the callers' 3 s.
pub const MAX_QUEUED: usize = 64;

struct Inner {
    jobs: std::sync::Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    /// Jobs sent and not yet picked up by a worker, for the metrics.
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the workers.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Hasher {
    /// A hasher with `concurrency` worker threads (at least one).
    pub async fn new(concurrency: usize) -> Result<Self, UsersError> {
        let params = Params::new(MEMORY_KIB, PASSES, LANES, Some(OUTPUT_BYTES))
            .map_err(|err| UsersError::Hashing(err.to_string()))?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        for n in 0..concurrency.max(1) {
            let params = params.clone();
            let worker = tokio::task::spawn_blocking(move || Worker::new(params)).await??;
            let (rx, queued) = (Arc::clone(&rx), Arc::clone(&queued));
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    let mut worker = worker;
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = job else { return };
                        queued.fetch_sub(1, Ordering::Relaxed);
                        job(&mut worker);
                    }
                })
                .map_err(|err| {
                    UsersError::Hashing(format!("cannot start a hashing thread: {err}"))
                })?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                jobs: std::sync::Mutex::new(Some(tx)),
                queued,
            }),
        })
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of `password`.
    pub async fn hash(&self, password: String) -> Result<String, UsersError> {
        self.run("argon2id hash", move |worker| worker.hash(&password))
            .await
    }

    /// Whether `password` matches `stored`; with no stored hash, checks against a dummy
    /// and answers `false`, taking the same time.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, UsersError> {
        self.run("argon2id verify", move |worker| {
            let matches = match &stored {
                Some(hash) => worker.verify(&password, hash),
                None => {
                    // The same work as a real check, whose answer does not matter.
                    let dummy = worker.dummy.clone();
                    std::hint::black_box(worker.verify(&password, &dummy));
                    false
                }
            };
            Ok(matches)
        })
        .await
    }

    /// How many calls wait for a worker.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Runs `work` on a worker thread; when traced, in a span called `name` that starts
    /// when a worker picks it up (the wait in the queue is its parent's).
    async fn run<T, F>(&self, name: &'static str, work: F) -> Result<T, UsersError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker) -> Result<T, UsersError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let traced =
            bus_schema::trace::start(|| SpanBuilder::from_name("wait for a hashing thread"))
                .map(|waiting| (opentelemetry::Context::current(), waiting));
        let job: Job = Box::new(move |worker| {
            let Some((parent, waiting)) = traced else {
                let _ = tx.send(work(worker));
                return;
            };
            waiting.end();
            let span = {
                let _parent = parent.attach();
                bus_schema::trace::start(|| {
                    SpanBuilder::from_name(name).with_attributes([
                        KeyValue::new("shop.argon2.memory_kib", i64::from(MEMORY_KIB)),
                        KeyValue::new("shop.argon2.passes", i64::from(PASSES)),
                    ])
                })
            };
            let done = work(worker);
            if let Some(span) = span {
                if let Err(err) = &done {
                    span.fail("hashing", err.to_string());
                }
                span.end();
            }
            let _ = tx.send(done);
        });
        {
            let jobs = self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner());
            let sender = jobs
                .as_ref()
                .ok_or_else(|| UsersError::Hashing("the hasher was closed".into()))?;
            // Refused at once what could not be served before the caller gives up.
            if self.inner.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
                return Err(UsersError::Busy);
            }
            self.inner.queued.fetch_add(1, Ordering::Relaxed);
            sender
                .send(job)
                .map_err(|_| UsersError::Hashing("the hashing threads are gone".into()))?;
        }
        rx.await
            .map_err(|_| UsersError::Hashing("a hashing thread failed".into()))?
    }
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
    async fn a_hash_made_by_the_argon2_crate_itself_verifies() {
        use argon2::password_hash::PasswordHasher;
        let params = Params::new(8 * 1024, 1, 1, None).expect("params");
        let made = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"older account")
            .expect("hash")
            .to_string();
        let hasher = Hasher::new(1).await.expect("hasher");
        assert!(
            hasher
                .verify("older account".into(), Some(made.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("other".into(), Some(made))
                .await
                .expect("verify")
        );
        assert!(
            !hasher
                .verify("x".into(), Some("not a phc string".into()))
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
