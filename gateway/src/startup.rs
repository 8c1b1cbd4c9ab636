//! Building the gateway: the bus connection, the routes, and the headers every
//! response carries.

use std::time::Duration;

use async_nats::Client;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bus_schema::auth;
use serde_json::json;
use service_kit::{
    error::StartError,
    http::metrics_response,
    runtime::{self, Doors, Workers},
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{Config, api, pages, state::AppState};

/// A gateway that is built and ready to run with [`Doors::run_until_stopped`].
pub type App = Doors;

/// Joins NATS and binds the web port.
pub async fn build(config: Config) -> Result<App, StartError> {
    let listener = runtime::bind(config.http_addr, "--http-addr / GATEWAY_HTTP_ADDR").await?;
    let nats = runtime::connect(&config.nats, "gateway").await?;
    let csrf_key = crate::session::csrf_key(config.secrets_dir.as_deref())
        .await
        .map_err(StartError::Other)?;
    let state = AppState::new(&config, nats.clone(), csrf_key);
    state.tokens.ready_before_serving().await;
    state
        .login_throttle
        .share(
            &nats,
            bus_schema::discovery::GATEWAY_LOGIN_THROTTLE.to_owned(),
        )
        .await
        .map_err(|err| StartError::Other(format!("cannot share the login throttle: {err}")))?;
    let workers = Workers::default();
    workers.tasks.spawn(
        state
            .history
            .clone()
            .record(nats.clone(), workers.stop.clone()),
    );
    runtime::subscribed(&nats, "gateway").await?;
    Ok(Doors {
        name: "gateway",
        listener,
        router: router(state),
        nats,
        micro: None,
        workers,
    })
}

/// Every route of the gateway.
pub fn router(state: AppState) -> Router {
    let (documented, _) = openapi();
    let routes = documented
        .merge(pages::router())
        .method_not_allowed_fallback(service_kit::http::method_not_allowed);
    let routes = security_headers(routes);
    service_kit::http::harden(routes, state.metrics.clone()).with_state(state)
}

/// The JSON API and the health routes, with the OpenAPI document made from them (the
/// HTML pages are not in it).
pub fn openapi() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let routes = utoipa_axum::router::OpenApiRouter::new()
        .nest("/api", api::router())
        .routes(utoipa_axum::routes!(asyncapi))
        .routes(utoipa_axum::routes!(readyz))
        .routes(utoipa_axum::routes!(metrics_text));
    service_kit::openapi::finish(
        routes,
        "gateway",
        "The shop's JSON API: log in and out, buy, the history, the state of the system.",
    )
}

/// Pages may load nothing but our own stylesheet and script (the activity feed's), send
/// forms only here, and not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The headers every response of the gateway carries.
fn security_headers<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ]
    .into_iter()
    .fold(routes, |routes, (name, value)| {
        routes.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// The AsyncAPI 3.0 document of the bus (subjects, bodies, queue group, error headers,
/// events), made from `bus-schema`.
#[utoipa::path(get, path = "/asyncapi.json", tag = "contracts",
    responses((status = 200, description = "AsyncAPI 3.0", body = serde_json::Value)))]
async fn asyncapi() -> Json<serde_json::Value> {
    Json(bus_schema::asyncapi::document(env!("CARGO_PKG_VERSION")))
}

/// Ready when the bus is connected and every service answers `$SRV.PING`.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`{ready, nats, services}`", body = serde_json::Value),
              (status = 503, description = "Not ready", body = serde_json::Value)))]
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

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(&state.login_throttle.metrics("login_address"));
    text.push_str(&state.reads.metrics());
    metrics_response(text)
}
