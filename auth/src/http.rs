//! The HTTP door on :5001: the original's routes plus health, readiness and metrics.

use axum::{
    Json, Router,
    extract::State,
    http::{Extensions, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bus_schema::auth::{
    KeySet, LoginReply, LoginRequest, LogoutRequest, VerifyReply, VerifyRequest,
};
use serde_json::json;
use service_kit::{
    http::HttpError,
    http::{JsonBody, metrics_response, with_common_routes},
    metrics::Metrics,
    slots::Queues,
};

use crate::domain::Auth;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub core: Auth,
    pub nats: async_nats::Client,
    pub metrics: Metrics,
    /// Logins in flight per client address (the gateway has its own).
    pub logins: std::sync::Arc<Queues>,
}

/// Logins from one client address in flight at once on this door; more wait behind them
/// (up to [`LOGIN_WAIT`], then 429).
pub const MAX_LOGINS_IN_FLIGHT_PER_ADDRESS: usize = 4;
/// How long a login waits for a place among its address's logins in flight.
pub const LOGIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

pub fn router(state: HttpState) -> Router {
    let metrics = state.metrics.clone();
    let routes = Router::new()
        .route("/auth/login", post(login))
        .route("/auth/verify", post(verify))
        .route("/auth/logout", post(logout))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));
    with_common_routes(routes, metrics).with_state(state)
}

async fn login(
    State(state): State<HttpState>,
    client: Extensions,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, HttpError> {
    let _turn = service_kit::http::login_turn(&state.logins, &client).await?;
    Ok(Json(state.core.login(req).await?))
}

async fn verify(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyReply>, HttpError> {
    Ok(Json(state.core.verify(&req).await?))
}

/// `POST /auth/logout` with `Authorization: Bearer <token>`: 204, the token revoked.
async fn logout(
    State(state): State<HttpState>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, HttpError> {
    let token = service_kit::http::bearer_token(&headers)
        .ok_or(service_kit::tokens::TokenError::Required)
        .map_err(service_kit::tokens::TokenError::reply)?;
    state
        .core
        .logout(&LogoutRequest {
            token: token.to_owned(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that may have signed a valid token, as a JWK Set.
async fn jwks(State(state): State<HttpState>) -> Json<KeySet> {
    Json(state.core.verifier().key_set())
}

/// Ready when the bus is connected: logins need it, and auth keeps no other storage.
async fn readyz(State(state): State<HttpState>) -> Response {
    let nats = service_kit::runtime::is_connected(&state.nats);
    let status = if nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": nats, "nats": nats }))).into_response()
}

async fn metrics_text(State(state): State<HttpState>) -> Response {
    metrics_response(state.metrics.render())
}
