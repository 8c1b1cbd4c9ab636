//! The last minutes of each service, for the status page's graphs: every
//! [`SAMPLE_EVERY`] the gateway reads every instance's `$SRV.STATS` and keeps, per
//! service, its requests per second and their average time over the interval; drawn as
//! small SVG polylines, server-side (no script).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How often the services' counters are read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Points kept per service: five minutes.
pub const POINTS: usize = 60;

/// One interval of one service.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Point {
    /// When the sample was taken.
    #[serde(skip)]
    pub at: Instant,
    pub requests_per_second: f64,
    /// Average time to answer in the interval, in milliseconds (0 without requests).
    pub average_ms: f64,
}

/// The counters of one instance at one moment: requests and total processing time.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    requests: u64,
    processing_ns: u128,
}

/// The series of every service, shared by the recorder and the pages.
#[derive(Debug, Clone, Default)]
pub struct History {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The last counters of each instance, by (service, instance id).
    last: HashMap<(String, String), Counters>,
    last_at: Option<Instant>,
    series: BTreeMap<String, VecDeque<Point>>,
}

/// A service's graphs, ready for the page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Graphs {
    pub service: String,
    pub requests_per_second: f64,
    pub average_ms: f64,
    /// An `<svg>` element of the requests per second over the kept minutes.
    pub rate_svg: String,
    /// An `<svg>` element of the average time.
    pub latency_svg: String,
    pub points: Vec<Point>,
}

impl History {
    /// Reads the services every [`SAMPLE_EVERY`] until `stop`.
    pub async fn record(self, nats: async_nats::Client, stop: CancellationToken) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let instances = crate::discovery::instances(&nats).await;
            let counters = instances
                .iter()
                .map(|instance| {
                    let counters =
                        instance
                            .endpoints
                            .iter()
                            .fold(Counters::default(), |c, e| Counters {
                                requests: c.requests + e.requests,
                                processing_ns: c.processing_ns + e.processing_ns,
                            });
                    ((instance.name.clone(), instance.id.clone()), counters)
                })
                .collect();
            self.add(Instant::now(), counters);
        }
    }

    /// Adds one sample: the counters of every instance found now.
    fn add(&self, now: Instant, counters: HashMap<(String, String), Counters>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = inner.last_at {
            let seconds = now.duration_since(before).as_secs_f64().max(1e-3);
            let mut per_service: BTreeMap<String, Counters> = BTreeMap::new();
            for ((service, id), now_counters) in &counters {
                // An instance seen for the first time, or restarted (its counters went
                // down), counts from zero.
                let then = inner
                    .last
                    .get(&(service.clone(), id.clone()))
                    .copied()
                    .unwrap_or_default();
                let then = if now_counters.requests < then.requests {
                    Counters::default()
                } else {
                    then
                };
                let sum = per_service.entry(service.clone()).or_default();
                sum.requests += now_counters.requests - then.requests;
                sum.processing_ns += now_counters
                    .processing_ns
                    .saturating_sub(then.processing_ns);
            }
            for (service, delta) in per_service {
                let point = Point {
                    at: now,
                    requests_per_second: delta.requests as f64 / seconds,
                    average_ms: if delta.requests == 0 {
                        0.0
                    } else {
                        delta.processing_ns as f64 / delta.requests as f64 / 1e6
                    },
                };
                let series = inner.series.entry(service).or_default();
                series.push_back(point);
                while series.len() > POINTS {
                    series.pop_front();
                }
            }
        }
        inner.last = counters;
        inner.last_at = Some(now);
    }

    /// The graphs of every service seen, by name.
    pub fn graphs(&self) -> Vec<Graphs> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .series
            .iter()
            .map(|(service, series)| {
                let points: Vec<Point> = series.iter().copied().collect();
                let latest = points.last().copied();
                Graphs {
                    service: service.clone(),
                    requests_per_second: latest.map_or(0.0, |p| p.requests_per_second),
                    average_ms: latest.map_or(0.0, |p| p.average_ms),
                    rate_svg: svg(
                        &points
                            .iter()
                            .map(|p| p.requests_per_second)
                            .collect::<Vec<_>>(),
                        "requêtes par seconde",
                    ),
                    latency_svg: svg(
                        &points.iter().map(|p| p.average_ms).collect::<Vec<_>>(),
                        "temps moyen en ms",
                    ),
                    points,
                }
            })
            .collect()
    }
}

/// A small line chart of `values` (oldest first, [`POINTS`] wide), scaled to its maximum.
pub fn svg(values: &[f64], label: &str) -> String {
    const WIDTH: f64 = 300.0;
    const HEIGHT: f64 = 60.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let scale = if max > 0.0 { (HEIGHT - 4.0) / max } else { 0.0 };
    let step = WIDTH / (POINTS.max(2) - 1) as f64;
    let offset = POINTS.saturating_sub(values.len());
    let mut points = String::new();
    for (i, value) in values.iter().enumerate() {
        let x = (offset + i) as f64 * step;
        let y = HEIGHT - 2.0 - value * scale;
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    let label = label.replace(['<', '>', '&', '"'], "");
    format!(
        r#"<svg class="graph" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{label}, maximum {max:.1}"><title>{label} (max {max:.1})</title><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>"#,
        points.trim_end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u64, processing_ms: u64) -> HashMap<(String, String), Counters> {
        HashMap::from([(
            ("orders".to_owned(), "a".to_owned()),
            Counters {
                requests,
                processing_ns: u128::from(processing_ms) * 1_000_000,
            },
        )])
    }

    #[test]
    fn rates_and_averages_come_from_the_counters_deltas() {
        let history = History::default();
        let start = Instant::now();
        history.add(start, sample(100, 100));
        history.add(start + Duration::from_secs(5), sample(600, 1100));
        // A restart: the counters start again from zero.
        history.add(start + Duration::from_secs(10), sample(50, 100));
        let graphs = history.graphs();
        assert_eq!(graphs.len(), 1);
        let points: Vec<(f64, f64)> = graphs[0]
            .points
            .iter()
            .map(|p| (p.requests_per_second, p.average_ms))
            .collect();
        assert_eq!(points, vec![(100.0, 2.0), (10.0, 2.0)]);
        assert!(graphs[0].rate_svg.starts_with("<svg") && graphs[0].rate_svg.contains("<polyline"));
    }

    #[test]
    fn an_empty_series_draws_an_empty_line_without_dividing_by_zero() {
        let drawn = svg(&[0.0, 0.0], "x");
        assert!(!drawn.contains("NaN") && !drawn.contains("inf"), "{drawn}");
    }
}
