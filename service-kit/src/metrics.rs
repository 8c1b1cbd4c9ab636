//! Request counters and latency histograms, rendered in the Prometheus text format.
//!
//! Small on purpose: one mutex-guarded map keyed by door, operation and status, updated
//! once per request. Each service adds its own gauges when rendering.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

use bus_schema::trace::ServiceTracer;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
}

/// Series by door, then operation, then status: nested so that counting a request
/// looks up borrowed keys and allocates nothing once a series exists.
type Table = HashMap<&'static str, HashMap<String, BTreeMap<u16, Series>>>;

/// The telemetry of one service, shared by its two doors: its metrics, its slowest
/// recent requests, and its tracer when traces are exported.
#[derive(Debug, Clone)]
pub struct Metrics {
    service: &'static str,
    series: Arc<Mutex<Table>>,
    slowest: Arc<crate::slowest::Slowest>,
    tracer: Option<ServiceTracer>,
}

impl Metrics {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            series: Arc::default(),
            slowest: Arc::default(),
            tracer: crate::trace::tracer(service),
        }
    }

    /// The service's tracer, when traces are exported ([`crate::trace`]).
    pub fn tracer(&self) -> Option<&ServiceTracer> {
        self.tracer.as_ref()
    }

    /// The slowest requests of the last minutes on the service's HTTP door.
    pub fn slowest(&self) -> &crate::slowest::Slowest {
        &self.slowest
    }

    /// The service these metrics belong to.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Counts one request of `op` that came through `door` ("http" or "nats") and was
    /// answered with `status` after `elapsed`.
    pub fn record(&self, door: &'static str, op: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        let mut table = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let ops = table.entry(door).or_default();
        let statuses = match ops.get_mut(op) {
            Some(statuses) => statuses,
            None => ops.entry(op.to_owned()).or_default(),
        };
        let entry = statuses.entry(status).or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        entry.buckets[slot] += 1;
    }

    /// How many requests of `op` through `door` got `status` so far.
    pub fn count(&self, door: &'static str, op: &str, status: u16) -> u64 {
        let table = self.series.lock().unwrap_or_else(|p| p.into_inner());
        table
            .get(door)
            .and_then(|ops| ops.get(op))
            .and_then(|statuses| statuses.get(&status))
            .map_or(0, |s| s.count)
    }

    /// The Prometheus text of every series.
    pub fn render(&self) -> String {
        let series: BTreeMap<(&str, String, u16), Series> = {
            let table = self.series.lock().unwrap_or_else(|p| p.into_inner());
            table
                .iter()
                .flat_map(|(door, ops)| {
                    ops.iter().flat_map(move |(op, statuses)| {
                        statuses
                            .iter()
                            .map(move |(status, s)| ((*door, op.clone(), *status), s.clone()))
                    })
                })
                .collect()
        };
        let svc = self.service;
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP shop_requests_total Requests answered, by door, operation and status.\n",
        );
        out.push_str("# TYPE shop_requests_total counter\n");
        for ((door, op, status), s) in &series {
            let _ = writeln!(
                out,
                "shop_requests_total{{service=\"{svc}\",door=\"{door}\",op=\"{op}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP shop_request_duration_seconds Time to answer a request.\n");
        out.push_str("# TYPE shop_request_duration_seconds histogram\n");
        let mut merged: BTreeMap<(&str, &str), Series> = BTreeMap::new();
        for ((door, op, _), s) in &series {
            let m = merged.entry((door, op.as_str())).or_default();
            m.count += s.count;
            m.sum_seconds += s.sum_seconds;
            for (total, n) in m.buckets.iter_mut().zip(s.buckets) {
                *total += n;
            }
        }
        for ((door, op), s) in &merged {
            let labels = format!("service=\"{svc}\",door=\"{door}\",op=\"{op}\"");
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "shop_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "shop_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "shop_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "shop_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

/// Calls made through the typed calls are counted as `door="bus"`, by subject.
impl bus_schema::CallObserver for Metrics {
    fn observe(&self, subject: &'static str, status: u16, elapsed: Duration) {
        self.record("bus", subject, status, elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_request_shows_in_its_counter_and_histogram() {
        let m = Metrics::new("users");
        m.record("http", "create", 201, Duration::from_millis(3));
        m.record("http", "create", 201, Duration::from_secs(2));
        m.record("nats", "create", 409, Duration::from_millis(1));
        let text = m.render();
        assert!(text.contains(
            "shop_requests_total{service=\"users\",door=\"http\",op=\"create\",status=\"201\"} 2"
        ));
        assert!(text.contains(
            "shop_request_duration_seconds_bucket{service=\"users\",door=\"http\",op=\"create\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "shop_request_duration_seconds_bucket{service=\"users\",door=\"http\",op=\"create\",le=\"+Inf\"} 2"
        ));
        assert_eq!(m.count("nats", "create", 409), 1);
    }
}
