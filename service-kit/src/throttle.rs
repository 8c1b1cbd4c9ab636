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

    /// `Err(seconds)` when `key` had `limit` failures within the window: the seconds
    /// until the oldest of them leaves it.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = failures.get_mut(key) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.limit {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        let left = self.window.saturating_sub(now.duration_since(oldest));
        Err(left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }

    /// Counts a failure for `key`.
    pub fn fail(&self, key: &str) {
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
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }

    /// Forgets the failures of `key` (after a success).
    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_reached_after_that_many_failures_and_says_when_to_retry() {
        let throttle = Throttle::new(3, Duration::from_secs(300));
        for _ in 0..3 {
            assert_eq!(throttle.check("victor"), Ok(()));
            throttle.fail("victor");
        }
        let wait = throttle.check("victor").expect_err("blocked");
        assert!((299..=300).contains(&wait), "{wait}");
        assert_eq!(throttle.check("kilian"), Ok(()), "other keys are free");
        throttle.clear("victor");
        assert_eq!(throttle.check("victor"), Ok(()));
    }

    #[test]
    fn failures_leave_the_window() {
        let throttle = Throttle::new(1, Duration::ZERO);
        throttle.fail("a");
        assert_eq!(throttle.check("a"), Ok(()));
    }
}
