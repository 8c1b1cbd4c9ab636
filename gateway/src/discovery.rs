//! What runs on the bus, found the way the `nats` CLI finds it: every instance that
//! answers `$SRV.PING`, with its `$SRV.INFO` and `$SRV.STATS`.

use std::time::Duration;

use async_nats::Client;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// How long to wait for instances to answer a PING.
const GATHER: Duration = Duration::from_millis(300);
/// How long one INFO or STATS request may take.
const ASK: Duration = Duration::from_secs(1);

/// One running instance of a service.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Instance {
    pub name: String,
    pub version: String,
    pub id: String,
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of an instance and its counters.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    pub name: String,
    pub subject: String,
    pub requests: u64,
    pub errors: u64,
    /// Average time to answer, in milliseconds.
    pub average_ms: f64,
    /// Total time spent answering, in nanoseconds.
    #[serde(skip)]
    pub processing_ns: u128,
}

// The replies of `$SRV.PING/INFO/STATS`, read leniently on purpose: async-nats's own
// `service::{PingResponse, Info, Stats}` require fields (`queue_group`, `started`,
// `description`) that micro services of other clients or older versions may leave out,
// and one such instance would then vanish from the status page.

#[derive(Deserialize)]
struct Ping {
    name: String,
    id: String,
    version: String,
}

#[derive(Deserialize)]
struct Info {
    #[serde(default)]
    endpoints: Vec<InfoEndpoint>,
}

#[derive(Deserialize)]
struct InfoEndpoint {
    name: String,
    subject: String,
}

#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    endpoints: Vec<StatsEndpoint>,
}

#[derive(Deserialize)]
struct StatsEndpoint {
    name: String,
    #[serde(default)]
    num_requests: u64,
    #[serde(default)]
    num_errors: u64,
    /// Nanoseconds.
    #[serde(default)]
    average_processing_time: u64,
    /// Nanoseconds, in all.
    #[serde(default)]
    processing_time: u128,
}

/// Every instance that answers a PING, with its endpoints and counters.
pub async fn instances(nats: &Client) -> Vec<Instance> {
    let inbox = nats.new_inbox();
    let Ok(mut replies) = nats.subscribe(inbox.clone()).await else {
        return Vec::new();
    };
    if nats
        .publish_with_reply(bus_schema::discovery::ping(None), inbox, "".into())
        .await
        .is_err()
    {
        return Vec::new();
    }
    let mut pings = Vec::new();
    let deadline = tokio::time::sleep(GATHER);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            reply = replies.next() => match reply {
                Some(message) => {
                    if let Ok(ping) = serde_json::from_slice::<Ping>(&message.payload) {
                        pings.push(ping);
                    }
                }
                None => break,
            },
        }
    }
    let mut found: Vec<Instance> =
        futures_util::future::join_all(pings.into_iter().map(|ping| describe(nats, ping))).await;
    found.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    found
}

async fn describe(nats: &Client, ping: Ping) -> Instance {
    let info: Option<Info> = ask(nats, bus_schema::discovery::info(&ping.name, &ping.id)).await;
    let stats: Option<Stats> = ask(nats, bus_schema::discovery::stats(&ping.name, &ping.id)).await;
    let stats = stats.map(|s| s.endpoints).unwrap_or_default();
    let endpoints = info
        .map(|i| i.endpoints)
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let counters = stats.iter().find(|s| s.name == e.name);
            Endpoint {
                requests: counters.map_or(0, |s| s.num_requests),
                errors: counters.map_or(0, |s| s.num_errors),
                average_ms: counters.map_or(0.0, |s| s.average_processing_time as f64 / 1e6),
                processing_ns: counters.map_or(0, |s| s.processing_time),
                name: e.name,
                subject: e.subject,
            }
        })
        .collect();
    Instance {
        name: ping.name,
        version: ping.version,
        id: ping.id,
        endpoints,
    }
}

async fn ask<T: serde::de::DeserializeOwned>(nats: &Client, subject: String) -> Option<T> {
    let request = async_nats::Request::new().timeout(Some(ASK));
    let reply = nats.send_request(subject, request).await.ok()?;
    serde_json::from_slice(&reply.payload).ok()
}
