//! The HTTP door on :5001: the original's routes plus health, readiness and metrics.

use axum::{
    Json, Router,
    extract::State,
    http::{Extensions, StatusCode},
    response::{IntoResponse, Response},
};
use bus_schema::auth::{
    KeySet, LoginReply, LoginRequest, LogoutRequest, VerifyReply, VerifyRequest,
};
use serde_json::json;
use service_kit::{
    http::HttpError,
    http::{JsonBody, metrics_response, with_common_routes},
    metrics::Metrics,
    openapi::ErrorBody,
    slots::Queues,
};
use utoipa_axum::{router::OpenApiRouter, routes};

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
    let (routes, _) = openapi();
    with_common_routes(routes, metrics).with_state(state)
}

/// The routes and the OpenAPI document made from them.
pub fn openapi() -> (Router<HttpState>, utoipa::openapi::OpenApi) {
    let routes = OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(verify))
        .routes(routes!(logout))
        .routes(routes!(jwks))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text));
    service_kit::openapi::finish(
        routes,
        "auth",
        "Logins, EdDSA tokens, their public keys (JWK Set) and logouts.",
    )
}

/// A token for a username and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginReply),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Wrong password or unknown user (one answer)", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, description = "Too many failed logins, or logins in flight", body = ErrorBody),
        (status = 503, description = "users is down", body = ErrorBody),
    ))]
async fn login(
    State(state): State<HttpState>,
    client: Extensions,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, HttpError> {
    let _turn = service_kit::http::login_turn(&state.logins, &client).await?;
    Ok(Json(state.core.login(req).await?))
}

/// The identity a valid, unrevoked token carries.
#[utoipa::path(post, path = "/auth/verify", tag = "auth", request_body = VerifyRequest,
    responses(
        (status = 200, body = VerifyReply),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Expired, not valid yet, revoked or invalid", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
async fn verify(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyReply>, HttpError> {
    Ok(Json(state.core.verify(&req).await?))
}

/// `POST /auth/logout` with `Authorization: Bearer <token>`: 204, the token revoked.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked on every verifier"),
        (status = 401, body = ErrorBody),
        (status = 503, description = "The revocation could not be stored", body = ErrorBody),
    ))]
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
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, body = KeySet)))]
async fn jwks(State(state): State<HttpState>) -> Json<KeySet> {
    Json(state.core.verifier().key_set())
}

/// Ready when the bus is connected: logins need it, and auth keeps no other storage.
/// Ready when the bus is connected.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`{ready, nats}`", body = serde_json::Value),
              (status = 503, description = "Not ready", body = serde_json::Value)))]
async fn readyz(State(state): State<HttpState>) -> Response {
    let nats = service_kit::runtime::is_connected(&state.nats);
    let status = if nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": nats, "nats": nats }))).into_response()
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text(State(state): State<HttpState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(&state.core.throttle().metrics("login_account"));
    metrics_response(text)
}
