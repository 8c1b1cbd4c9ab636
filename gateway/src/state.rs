//! What every handler of the gateway shares, made once from the configuration.

use std::{sync::Arc, time::Duration};

use async_nats::Client;
use axum::extract::FromRef;
use bus_schema::CallOptions;
use service_kit::{
    metrics::Metrics,
    slots::{Queues, Slots},
    throttle::Throttle,
    tokens::Verifier,
};

/// Live activity feeds open at once, in all.
pub const MAX_FEEDS: usize = 256;
/// Live activity feeds open at once from one client address (a few browser tabs).
pub const MAX_FEEDS_PER_ADDRESS: usize = 4;

/// How long a login waits for a place among its address's logins in flight before a 429.
pub const LOGIN_WAIT: Duration = Duration::from_secs(1);

use crate::{Config, views::Views};

/// What every handler shares, behind one `Arc`: axum clones the state for each request
/// (and each extractor), and a clone of the fields one by one (clients, channels, a
/// dozen `Arc`s) showed in a profile of reads.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    pub nats: Client,
    /// Checks tokens with the keys and revocations auth publishes: no bus call.
    pub tokens: Verifier,
    pub views: Arc<Views>,
    pub metrics: Metrics,
    /// Options of every bus call (the timeout after which a service is unavailable).
    pub calls: CallOptions,
    pub secure_cookies: bool,
    /// Failed logins per client address.
    pub login_throttle: Arc<Throttle>,
    /// For the NATS server's monitoring port.
    pub http: reqwest::Client,
    /// The last minutes of each service, for the status page's graphs.
    pub history: crate::history::History,
    /// The monitoring address, if the status page should show the server.
    pub nats_monitor_url: Option<String>,
    /// The trace UI the status page links trace ids to, without a trailing `/`.
    pub trace_ui: Option<String>,
    /// Signs the CSRF tokens the gateway hands out, so that it adopts no token it did
    /// not make.
    pub csrf_key: Arc<[u8; 32]>,
    /// The live activity feeds open now, per client address.
    pub feeds: Arc<Slots>,
    /// Logins in flight, per client address: a flood from one address waits for none
    /// but itself.
    pub logins: Arc<Queues>,
    /// The whole histories sent, by user.
    pub kept: crate::kept::KeptHistories,
    /// Reads of histories, and the `ORDERS` stream's end they ask.
    pub reads: crate::reads::Reads,
}

impl AppState {
    /// The state of a gateway on `nats` configured by `config`, signing CSRF tokens with
    /// `csrf_key`.
    pub fn new(config: &Config, nats: Client, csrf_key: [u8; 32]) -> Self {
        let metrics = Metrics::new("gateway");
        Self(Arc::new(Shared {
            tokens: Verifier::follow(&config.tokens, &nats),
            reads: crate::reads::Reads::new(nats.clone()),
            nats,
            views: Arc::new(Views::new()),
            calls: CallOptions {
                timeout: Duration::from_millis(config.call_timeout_ms),
                observer: Some(Arc::new(metrics.clone())),
                ..CallOptions::default()
            },
            metrics,
            secure_cookies: config.secure_cookies,
            http: reqwest::Client::new(),
            history: crate::history::History::default(),
            nats_monitor_url: config.nats_monitor_url.clone().filter(|u| !u.is_empty()),
            trace_ui: config
                .trace_ui
                .as_deref()
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
            feeds: Slots::new(MAX_FEEDS_PER_ADDRESS, MAX_FEEDS),
            logins: Queues::new(config.max_logins_in_flight_per_address, LOGIN_WAIT),
            csrf_key: Arc::new(csrf_key),
            kept: crate::kept::KeptHistories::default(),
            login_throttle: Arc::new(Throttle::new(
                config.max_failed_logins_per_address,
                Duration::from_secs(config.failed_login_window_secs),
            )),
        }))
    }

    /// How to send `request` to `orders.buy`: sent again when no reply comes soon only
    /// when it carries an idempotency key (without one, a second request would be a
    /// second purchase).
    pub fn buy_calls(&self, request: &bus_schema::orders::BuyRequest) -> CallOptions {
        if request.idempotency_key.is_some() {
            self.calls.idempotent()
        } else {
            self.calls.clone()
        }
    }

    /// The services on the bus and the server's health.
    pub async fn status(&self) -> crate::status::Status {
        crate::status::collect(
            &self.nats,
            &self.http,
            self.nats_monitor_url.as_deref(),
            &self.history,
            crate::status::Slowest::of(&self.metrics, self.trace_ui.as_deref()),
        )
        .await
    }
}

impl FromRef<AppState> for Client {
    fn from_ref(state: &AppState) -> Self {
        state.nats.clone()
    }
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

impl FromRef<AppState> for CallOptions {
    fn from_ref(state: &AppState) -> Self {
        state.calls.clone()
    }
}
