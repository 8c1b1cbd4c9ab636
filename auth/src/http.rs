//! The HTTP door on :5001: the original's routes plus health, readiness and metrics.

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bus_schema::{
    ErrorReply, MAX_BODY_BYTES,
    auth::{LoginReply, LoginRequest, VerifyReply, VerifyRequest},
    http::{JsonBody, metrics_response},
    metrics::Metrics,
};
use serde_json::json;

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
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/verify", post(verify))
        .route("/healthz", get(bus_schema::http::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(bus_schema::http::not_found)
        .method_not_allowed_fallback(bus_schema::http::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            metrics,
            bus_schema::http::track,
        ))
        .with_state(state)
}

async fn login(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, ErrorReply> {
    Ok(Json(state.core.login(req).await?))
}

async fn verify(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyReply>, ErrorReply> {
    Ok(Json(state.core.verify(&req)?))
}

/// Ready when the bus is connected: logins need it, and auth keeps no other storage.
async fn readyz(State(state): State<HttpState>) -> Response {
    let nats = bus_schema::runtime::is_connected(&state.nats);
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
