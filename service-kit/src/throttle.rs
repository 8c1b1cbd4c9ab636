//! Counting failures per key (an account, a client address) in a sliding window, to
//! refuse further attempts for a while once there were too many.
//!
//! In memory, per process: several instances each count on their own, so the limit is
//! per instance.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Keys kept before old ones are swept, so that made-up keys cannot fill memory.
const SWEEP_ABOVE: usize = 10_000;

/// At most `limit` failures per key within `window`.
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            failures: Mutex::default(),
        }
    }

    /// Reserves an attempt for `key`, counted as a failure from this moment, so that
    /// attempts made in parallel cannot all pass before the first one fails. `Err(seconds)`
    /// when `key` already has `limit` within the window: the seconds until the oldest
    /// leaves it. The [`Attempt`] says how it ended; dropped as it is, it stays a failure.
    pub fn attempt(&self, key: &str) -> Result<Attempt<'_>, u64> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < self.window)
            });
        }
        let times = failures.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit {
            let oldest = times.front().copied().unwrap_or(now);
            let left = self.window.saturating_sub(now.duration_since(oldest));
            return Err(left.as_secs() + u64::from(left.subsec_nanos() > 0));
        }
        times.push_back(now);
        Ok(Attempt {
            throttle: self,
            key: key.to_owned(),
            at: now,
        })
    }

    /// Forgets the failures of `key` (after a success).
    fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// One reserved attempt of a key, counted as a failure unless it is told otherwise.
#[derive(Debug)]
#[must_use = "an attempt says how it ended, or counts as a failure"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    key: String,
    at: Instant,
}

impl Attempt<'_> {
    /// It succeeded: the key's failures are forgotten.
    pub fn succeeded(self) {
        self.throttle.clear(&self.key);
    }

    /// It failed for a reason that says nothing about the secret (a malformed request, a
    /// service that is down): it does not count.
    pub fn not_counted(self) {
        let mut failures = self
            .throttle
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(times) = failures.get_mut(&self.key)
            && let Some(i) = times.iter().position(|t| *t == self.at)
        {
            times.remove(i);
        }
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
}
