//! The state of the shop for the status page: the instances found on the bus
//! ([`crate::discovery`]), the NATS server's own health from its monitoring port,
//! each service's recent graphs ([`crate::history`]), and this gateway's slowest recent
//! requests with their traces.

use std::time::Duration;

use async_nats::Client;
use serde::Serialize;
use service_kit::{metrics::Metrics, slowest::SlowRequest};

use crate::{
    discovery::{Instance, instances},
    history::{Graphs, History},
};

/// How long one monitoring request may take.
const ASK: Duration = Duration::from_secs(1);

/// The state of the shop.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    pub nats: NatsHealth,
    /// Every instance found, by service name then id.
    pub services: Vec<Instance>,
    /// Each service's requests per second and average time over the last minutes.
    pub history: Vec<Graphs>,
    /// This gateway's slowest requests of the last minutes.
    pub slowest: Slowest,
}

/// The slowest recent requests of this gateway, slowest first, each with its trace.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Slowest {
    /// At most [`service_kit::slowest::KEPT`], from the last
    /// [`service_kit::slowest::RECENT`].
    pub requests: Vec<SlowRequest>,
    /// Where a trace id is opened (`<trace_ui>/trace/<id>`), when a trace UI is
    /// configured (`GATEWAY_TRACE_UI`).
    pub trace_ui: Option<String>,
    /// Whether this gateway exports traces (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub tracing: bool,
}

impl Slowest {
    pub fn of(metrics: &Metrics, trace_ui: Option<&str>) -> Self {
        Self {
            requests: metrics.slowest().list(),
            trace_ui: trace_ui.map(str::to_owned),
            tracing: metrics.tracer().is_some(),
        }
    }
}

/// The NATS server, from its monitoring port.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct NatsHealth {
    /// `/healthz` said ok.
    pub healthy: bool,
    pub version: Option<String>,
    pub connections: Option<u64>,
    pub in_msgs: Option<u64>,
    pub out_msgs: Option<u64>,
    pub uptime: Option<String>,
    /// Why the figures are missing, if they are.
    pub error: Option<String>,
}

/// Gathers the status; never fails, missing parts are left empty.
pub async fn collect(
    nats: &Client,
    http: &reqwest::Client,
    monitor: Option<&str>,
    history: &History,
    slowest: Slowest,
) -> Status {
    let (services, nats_health) = tokio::join!(instances(nats), server_health(http, monitor));
    Status {
        nats: nats_health,
        services,
        history: history.graphs(),
        slowest,
    }
}

async fn server_health(http: &reqwest::Client, monitor: Option<&str>) -> NatsHealth {
    let Some(monitor) = monitor else {
        return NatsHealth {
            error: Some("no monitoring address configured".into()),
            ..NatsHealth::default()
        };
    };
    let healthy = async {
        let response = http
            .get(format!("{monitor}/healthz"))
            .timeout(ASK)
            .send()
            .await
            .ok()?;
        Some(response.status().is_success())
    };
    let varz = async {
        let response = http
            .get(format!("{monitor}/varz"))
            .timeout(ASK)
            .send()
            .await;
        match response {
            Ok(r) => r
                .json::<serde_json::Value>()
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let (healthy, varz) = tokio::join!(healthy, varz);
    match varz {
        Ok(v) => NatsHealth {
            healthy: healthy.unwrap_or(false),
            version: v["version"].as_str().map(str::to_owned),
            connections: v["connections"].as_u64(),
            in_msgs: v["in_msgs"].as_u64(),
            out_msgs: v["out_msgs"].as_u64(),
            uptime: v["uptime"].as_str().map(str::to_owned),
            error: None,
        },
        Err(err) => NatsHealth {
            healthy: false,
            error: Some(format!("the monitoring port did not answer: {err}")),
            ..NatsHealth::default()
        },
    }
}
