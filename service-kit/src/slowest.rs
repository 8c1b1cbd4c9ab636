//! The slowest requests of the last minutes, kept in memory for the status page: a few
//! at most, each with its route, status, request id and trace id, so that an operator
//! can go from "something was slow" to the request's trace.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;

/// How many requests are kept.
pub const KEPT: usize = 10;
/// How long a request counts as recent.
pub const RECENT: Duration = Duration::from_secs(10 * 60);

/// One slow request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlowRequest {
    /// `GET /api/purchases`: the method and the route (not the path, which may hold a
    /// name).
    pub route: String,
    pub status: u16,
    pub milliseconds: f64,
    /// When it was answered (RFC 3339, UTC).
    pub at: String,
    pub request_id: String,
    /// The trace's id when the request was traced.
    pub trace_id: Option<String>,
    #[serde(skip)]
    seen: Option<Instant>,
}

/// The list, bounded and cheap to feed: a request faster than the fastest kept one, in a
/// full list, costs one atomic load.
#[derive(Debug, Default)]
pub struct Slowest {
    kept: Mutex<Vec<SlowRequest>>,
    /// The fastest kept request's time in microseconds once the list is full (0 before).
    bar_us: AtomicU64,
}

impl Slowest {
    /// Offers one answered request; `describe` (route, request id, trace id) runs only if
    /// it is kept.
    pub fn offer(
        &self,
        elapsed: Duration,
        status: u16,
        describe: impl FnOnce() -> (String, String, Option<String>),
    ) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if micros <= self.bar_us.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|r| r.seen.is_some_and(|seen| now.duration_since(seen) < RECENT));
        let (route, request_id, trace_id) = describe();
        kept.push(SlowRequest {
            route,
            status,
            milliseconds: elapsed.as_secs_f64() * 1000.0,
            at: crate::clock::now_rfc3339(),
            request_id,
            trace_id,
            seen: Some(now),
        });
        kept.sort_by(|a, b| b.milliseconds.total_cmp(&a.milliseconds));
        kept.truncate(KEPT);
        let bar = match kept.last() {
            Some(fastest) if kept.len() == KEPT => (fastest.milliseconds * 1000.0) as u64,
            _ => 0,
        };
        self.bar_us.store(bar, Ordering::Relaxed);
    }

    /// The kept requests of the last [`RECENT`], slowest first.
    pub fn list(&self) -> Vec<SlowRequest> {
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let before = kept.len();
        kept.retain(|r| r.seen.is_some_and(|seen| now.duration_since(seen) < RECENT));
        if kept.len() != before {
            // Old ones left: a fast request may be kept again.
            self.bar_us.store(0, Ordering::Relaxed);
        }
        kept.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(slowest: &Slowest, ms: u64) -> bool {
        let mut described = false;
        slowest.offer(Duration::from_millis(ms), 200, || {
            described = true;
            (format!("GET /{ms}"), "id".into(), None)
        });
        described
    }

    #[test]
    fn only_the_slowest_few_are_kept_slowest_first() {
        let slowest = Slowest::default();
        for ms in 1..=30 {
            offer(&slowest, ms);
        }
        let list = slowest.list();
        assert_eq!(list.len(), KEPT);
        assert_eq!(list[0].route, "GET /30");
        assert_eq!(list[KEPT - 1].route, format!("GET /{}", 30 - KEPT + 1));
        assert!(
            !offer(&slowest, 5),
            "a fast request was looked at in a full list"
        );
        assert!(offer(&slowest, 100));
        assert_eq!(slowest.list()[0].route, "GET /100");
        assert_eq!(slowest.list().len(), KEPT);
    }
}
