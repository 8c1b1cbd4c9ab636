//! A few threads of one's own for short blocking work (SQLite reads): a job is handed to
//! an idle thread, and under load a thread takes the next job as soon as it is done,
//! instead of the async runtime's blocking pool waking one of dozens of threads for each.

use std::sync::{Arc, Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send>;

/// The threads, which end when the pool is dropped.
#[derive(Debug)]
pub struct Pool {
    jobs: mpsc::Sender<Job>,
}

/// The pool's threads are gone (the process is stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the worker threads are gone")]
pub struct Gone;

impl Pool {
    /// `threads` threads (at least one) called `<name>-<n>`.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = job else { return };
                        job();
                    }
                })?;
        }
        Ok(Self { jobs: tx })
    }

    /// Runs `work` on one of the threads and waits for its result without blocking the
    /// runtime.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Gone>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs.send(job).map_err(|_| Gone)?;
        rx.await.map_err(|_| Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_pools_threads_and_its_result_comes_back() {
        let pool = Pool::new("test-pool", 2).expect("threads");
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("ran");
        assert!(name.is_some_and(|n| n.starts_with("test-pool-")));
        let sums =
            futures_util::future::join_all((0..10u64).map(|n| pool.run(move || n * 2))).await;
        assert_eq!(sums.into_iter().map(|r| r.expect("ran")).sum::<u64>(), 90);
    }
}
