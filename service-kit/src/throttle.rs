//! Counting failures per key (an account, a client address) in a sliding window, to
//! refuse further attempts for a while once there were too many.
//!
//! In memory, and shared over the bus when [`Throttle::share`] is called: every instance
//! of a service announces its attempts and their ends on one subject and applies the
//! others', so that N instances do not give an attacker N times the attempts. An attempt
//! is announced when it starts, so guesses sent to several instances at once are counted
//! everywhere within a bus hop, long before a password hash ends.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Keys kept before old ones are swept, so that made-up keys cannot fill memory.
const SWEEP_ABOVE: usize = 10_000;

/// Who made an attempt: (instance, serial). Local attempts have instance 0.
type Tag = (u64, u64);

/// At most `limit` failures per key within `window`, counted by every instance that
/// shares the throttle.
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<(Instant, Tag)>>>,
    serial: std::sync::atomic::AtomicU64,
    /// Where this instance's attempts are announced, once shared.
    announce: OnceLock<mpsc::UnboundedSender<Announcement>>,
    /// Announcements of other instances applied here (see [`Throttle::metrics`]).
    applied: std::sync::atomic::AtomicU64,
}

/// What one instance tells the others about an attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Announcement {
    /// The announcing instance (random per process).
    instance: u64,
    /// The attempt, unique within the instance.
    attempt: u64,
    key: String,
    event: Event,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Event {
    /// Counted as a failure from now on, until told otherwise.
    Started,
    /// It succeeded: the key's failures are forgotten.
    Succeeded,
    /// It does not count: its place is given back.
    NotCounted,
}

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            failures: Mutex::default(),
            serial: std::sync::atomic::AtomicU64::new(0),
            announce: OnceLock::new(),
            applied: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The throttle's Prometheus lines: how many announcements of other instances were
    /// applied here. Operators see that instances share their counts; a test waits for
    /// it to know that one instance's attempts are counted by another.
    pub fn metrics(&self, name: &str) -> String {
        let applied = self.applied.load(std::sync::atomic::Ordering::Acquire);
        format!(
            "# HELP shop_throttle_shared_total Attempts announced by other instances and counted here.\n\
             # TYPE shop_throttle_shared_total counter\n\
             shop_throttle_shared_total{{throttle=\"{name}\"}} {applied}\n"
        )
    }

    /// Shares the counts with every instance that shares on `subject` (one subject per
    /// throttle, that only the service's own NATS user may use). Returns once the server
    /// has the subscription (every announcement made after that reaches this instance);
    /// the announcements run on tasks until `nats` closes.
    pub async fn share(
        self: &Arc<Self>,
        nats: &async_nats::Client,
        subject: String,
    ) -> Result<(), async_nats::Error> {
        let instance = loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("BUG: the OS has no randomness");
            let id = u64::from_le_bytes(bytes);
            if id != 0 {
                break id;
            }
        };
        let mut incoming = nats.subscribe(subject.clone()).await?;
        // `subscribe` only queues the SUB: an instance that started just before another
        // would otherwise miss the first attempts announced to it.
        nats.flush().await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Announcement>();
        if self.announce.set(tx).is_err() {
            return Ok(()); // shared already
        }
        // One task publishes in order, so that an attempt's end never overtakes its start.
        let publisher = nats.clone();
        tokio::spawn(async move {
            while let Some(mut announcement) = rx.recv().await {
                announcement.instance = instance;
                let body = serde_json::to_vec(&announcement)
                    .expect("BUG: an announcement always serialises");
                if let Err(err) = publisher.publish(subject.clone(), body.into()).await {
                    tracing::warn!(%err, "cannot share a login attempt with the other instances");
                }
            }
        });
        let throttle = Arc::downgrade(self);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(message) = incoming.next().await {
                let Some(throttle) = throttle.upgrade() else {
                    break;
                };
                match serde_json::from_slice::<Announcement>(&message.payload) {
                    Ok(remote) if remote.instance != instance && remote.instance != 0 => {
                        throttle.apply(remote);
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(%err, "ignoring a malformed throttle announcement"),
                }
            }
        });
        Ok(())
    }

    /// Another instance's attempt.
    fn apply(&self, remote: Announcement) {
        let tag = (remote.instance, remote.attempt);
        match remote.event {
            Event::Started => {
                let now = Instant::now();
                let mut failures = self.lock();
                self.sweep(&mut failures, now);
                failures
                    .entry(remote.key)
                    .or_default()
                    .push_back((now, tag));
            }
            Event::Succeeded => self.clear(&remote.key),
            Event::NotCounted => self.remove(&remote.key, tag),
        }
        // After it took effect: whoever reads the count sees the attempt counted.
        self.applied
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<(Instant, Tag)>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sweep(&self, failures: &mut HashMap<String, VecDeque<(Instant, Tag)>>, now: Instant) {
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|(t, _)| now.duration_since(*t) < self.window)
            });
        }
    }

    fn tell(&self, attempt: u64, key: &str, event: Event) {
        if let Some(announce) = self.announce.get() {
            let _ = announce.send(Announcement {
                instance: 0,
                attempt,
                key: key.to_owned(),
                event,
            });
        }
    }

    /// Reserves an attempt for `key`, counted as a failure from this moment, so that
    /// attempts made in parallel cannot all pass before the first one fails. `Err(seconds)`
    /// when `key` already has `limit` within the window: the seconds until the oldest
    /// leaves it. The [`Attempt`] says how it ended; dropped as it is, it stays a failure.
    pub fn attempt(&self, key: &str) -> Result<Attempt<'_>, u64> {
        let now = Instant::now();
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut failures = self.lock();
            self.sweep(&mut failures, now);
            let times = failures.entry(key.to_owned()).or_default();
            while times
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) >= self.window)
            {
                times.pop_front();
            }
            if times.len() >= self.limit {
                let oldest = times.front().map_or(now, |(t, _)| *t);
                let left = self.window.saturating_sub(now.duration_since(oldest));
                return Err(left.as_secs() + u64::from(left.subsec_nanos() > 0));
            }
            times.push_back((now, (0, serial)));
        }
        self.tell(serial, key, Event::Started);
        Ok(Attempt {
            throttle: self,
            key: key.to_owned(),
            serial,
        })
    }

    /// Forgets the failures of `key` (after a success).
    fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Gives the place of one attempt back.
    fn remove(&self, key: &str, tag: Tag) {
        let mut failures = self.lock();
        if let Some(times) = failures.get_mut(key)
            && let Some(i) = times.iter().position(|(_, t)| *t == tag)
        {
            times.remove(i);
        }
    }
}

/// One reserved attempt of a key, counted as a failure unless it is told otherwise.
#[derive(Debug)]
#[must_use = "an attempt says how it ended, or counts as a failure"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    key: String,
    serial: u64,
}

impl Attempt<'_> {
    /// It succeeded: the key's failures are forgotten, on every instance.
    pub fn succeeded(self) {
        self.throttle.clear(&self.key);
        self.throttle.tell(self.serial, &self.key, Event::Succeeded);
    }

    /// It failed for a reason that says nothing about the secret (a malformed request, a
    /// service that is down): it does not count.
    pub fn not_counted(self) {
        self.throttle.remove(&self.key, (0, self.serial));
        self.throttle
            .tell(self.serial, &self.key, Event::NotCounted);
    }

    /// It failed, and counts (the default).
    pub fn failed(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_reached_after_that_many_failures_and_says_when_to_retry() {
        let throttle = Throttle::new(3, Duration::from_secs(300));
        for _ in 0..3 {
            throttle.attempt("victor").expect("allowed").failed();
        }
        let wait = throttle.attempt("victor").expect_err("blocked");
        assert!((299..=300).contains(&wait), "{wait}");
        assert!(throttle.attempt("kilian").is_ok(), "other keys are free");
    }

    #[test]
    fn attempts_in_flight_count_before_they_end() {
        let throttle = Throttle::new(3, Duration::from_secs(300));
        let in_flight: Vec<_> = (0..3)
            .map(|_| throttle.attempt("victor").expect("allowed"))
            .collect();
        assert!(
            throttle.attempt("victor").is_err(),
            "the fourth waits for none"
        );
        drop(in_flight);
        assert!(
            throttle.attempt("victor").is_err(),
            "dropped attempts stay failures"
        );
    }

    #[test]
    fn a_success_forgets_and_an_uncounted_failure_gives_its_place_back() {
        let throttle = Throttle::new(2, Duration::from_secs(300));
        throttle.attempt("a").expect("allowed").failed();
        throttle.attempt("a").expect("allowed").not_counted();
        throttle
            .attempt("a")
            .expect("a place was given back")
            .succeeded();
        for _ in 0..2 {
            throttle.attempt("a").expect("forgotten").failed();
        }
        assert!(throttle.attempt("a").is_err());
    }

    #[test]
    fn failures_leave_the_window() {
        let throttle = Throttle::new(1, Duration::ZERO);
        throttle.attempt("a").expect("allowed").failed();
        assert!(throttle.attempt("a").is_ok());
    }

    fn remote(attempt: u64, key: &str, event: Event) -> Announcement {
        Announcement {
            instance: 7,
            attempt,
            key: key.to_owned(),
            event,
        }
    }

    #[test]
    fn another_instances_attempts_count_here_until_they_are_given_back() {
        let throttle = Throttle::new(2, Duration::from_secs(300));
        throttle.apply(remote(1, "a", Event::Started));
        throttle.apply(remote(2, "a", Event::Started));
        assert!(
            throttle.attempt("a").is_err(),
            "two remote attempts fill the limit"
        );
        throttle.apply(remote(2, "a", Event::NotCounted));
        throttle
            .attempt("a")
            .expect("one place was given back")
            .failed();
        assert!(throttle.attempt("a").is_err());
        throttle.apply(remote(1, "a", Event::Succeeded));
        assert!(
            throttle.attempt("a").is_ok(),
            "a success anywhere forgets the key"
        );
    }

    #[test]
    fn a_remote_end_never_frees_a_local_attempt() {
        let throttle = Throttle::new(1, Duration::from_secs(300));
        let local = throttle.attempt("a").expect("allowed");
        throttle.apply(remote(local.serial, "a", Event::NotCounted));
        assert!(throttle.attempt("a").is_err(), "tags differ by instance");
        local.failed();
    }
}
