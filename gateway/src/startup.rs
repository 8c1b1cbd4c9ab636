//! Building the gateway: the bus connection, the routes, and the headers every
//! response carries.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_nats::Client;
use axum::{
    Json, Router,
    extract::{ConnectInfo, FromRef, Request, State},
    http::{Extensions, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use bus_schema::{
    CallOptions, ErrorCode, ErrorReply,
    auth::{self, LoginReply, LoginRequest},
};
use serde_json::json;
use service_kit::{
    http::metrics_response,
    metrics::Metrics,
    runtime::{self, Doors, StartError, Workers},
    throttle::Throttle,
};

use crate::{Config, api, pages, views::Views};

/// A gateway that is built and ready to run with [`Doors::run_until_stopped`].
pub type App = Doors;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub nats: Client,
    pub views: Arc<Views>,
    pub metrics: Metrics,
    /// Options of every bus call (the timeout after which a service is unavailable).
    pub calls: CallOptions,
    pub secure_cookies: bool,
    /// Failed logins per client address.
    pub login_throttle: Arc<Throttle>,
    /// For the NATS server's monitoring port.
    pub http: reqwest::Client,
    /// The monitoring address, if the status page should show the server.
    pub nats_monitor_url: Option<String>,
}

impl AppState {
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
        crate::status::collect(&self.nats, &self.http, self.nats_monitor_url.as_deref()).await
    }

    /// `auth.login`, refused with 429 for an address that failed too often; only
    /// failures count against it.
    pub async fn login(
        &self,
        client: &Extensions,
        request: &LoginRequest,
    ) -> Result<LoginReply, ErrorReply> {
        let address = client
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string());
        self.login_throttle.check(&address).map_err(|secs| {
            ErrorReply::too_many(
                format!("too many failed logins from your address; try again in {secs} seconds"),
                secs,
            )
            .because(bus_schema::Reason::TooManyFailedLogins)
        })?;
        match auth::login_with(&self.nats, request, &self.calls).await {
            Ok(reply) => Ok(reply),
            Err(err) => {
                if err.code() == ErrorCode::Unauthorized {
                    self.login_throttle.fail(&address);
                }
                Err(err.into_reply())
            }
        }
    }
}

impl FromRef<AppState> for Client {
    fn from_ref(state: &AppState) -> Self {
        state.nats.clone()
    }
}

impl FromRef<AppState> for CallOptions {
    fn from_ref(state: &AppState) -> Self {
        state.calls.clone()
    }
}

/// Joins NATS and binds the web port.
pub async fn build(config: Config) -> Result<App, StartError> {
    let listener = runtime::bind(config.http_addr, "--http-addr / GATEWAY_HTTP_ADDR").await?;
    let nats = runtime::connect(&config.nats, "gateway").await?;
    let metrics = Metrics::new("gateway");
    let state = AppState {
        nats: nats.clone(),
        views: Arc::new(Views::new()),
        calls: CallOptions {
            timeout: Duration::from_millis(config.call_timeout_ms),
            observer: Some(Arc::new(metrics.clone())),
            ..CallOptions::default()
        },
        metrics,
        secure_cookies: config.secure_cookies,
        http: reqwest::Client::new(),
        nats_monitor_url: config.nats_monitor_url.filter(|u| !u.is_empty()),
        login_throttle: Arc::new(Throttle::new(
            config.max_failed_logins_per_address,
            Duration::from_secs(config.failed_login_window_secs),
        )),
    };
    Ok(Doors {
        name: "gateway",
        listener,
        router: router(state),
        nats,
        micro: None,
        workers: Workers::default(),
    })
}

/// Every route of the gateway.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .nest("/api", api::router())
        .merge(pages::router())
        .route("/healthz", get(service_kit::http::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(middleware::from_fn(security_headers));
    service_kit::http::harden(routes, state.metrics.clone()).with_state(state)
}

/// Pages may load nothing but our own stylesheet, run no script, and not be framed.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Ready when the bus is connected and every service answers `$SRV.PING`.
async fn readyz(State(state): State<AppState>) -> Response {
    let nats = runtime::is_connected(&state.nats);
    let mut services = serde_json::Map::new();
    let mut ready = nats;
    for name in [
        auth::SERVICE,
        bus_schema::users::SERVICE,
        bus_schema::orders::SERVICE,
    ] {
        let up = nats && ping(&state.nats, name).await;
        ready &= up;
        services.insert(name.to_owned(), up.into());
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": ready, "nats": nats, "services": services });
    (status, Json(body)).into_response()
}

async fn ping(nats: &Client, service: &str) -> bool {
    let request = async_nats::Request::new().timeout(Some(Duration::from_secs(1)));
    nats.send_request(bus_schema::discovery::ping(Some(service)), request)
        .await
        .is_ok()
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    metrics_response(state.metrics.render())
}
