//! The HTTP door on :5001: the original's routes plus health, readiness and metrics.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bus_schema::auth::{LoginReply, LoginRequest, VerifyReply, VerifyRequest};
use serde_json::json;
use service_kit::{
    http::HttpError,
    http::{JsonBody, metrics_response, with_common_routes},
    metrics::Metrics,
};

use crate::domain::Auth;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub core: Auth,
    pub nats: async_nats::Client,
    pub metrics: Metrics,
}

pub fn router(state: HttpState) -> Router {
    let metrics = state.metrics.clone();
    let routes = Router::new()
        .route("/auth/login", post(login))
        .route("/auth/verify", post(verify))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));
    with_common_routes(routes, metrics).with_state(state)
}

async fn login(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, HttpError> {
    Ok(Json(state.core.login(req).await?))
}

async fn verify(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyReply>, HttpError> {
    Ok(Json(state.core.verify(&req)?))
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
