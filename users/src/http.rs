//! The HTTP door on :5002: the original's routes plus health, readiness and metrics.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use bus_schema::users::{
    CreateReply, CreateRequest, GetReply, GetRequest, VerifyReply, VerifyRequest,
};
use serde_json::json;
use service_kit::{
    http::HttpError,
    http::{JsonBody, metrics_response, with_common_routes},
    metrics::Metrics,
    openapi::ErrorBody,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::service::Users;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub core: Users,
    pub nats: async_nats::Client,
    pub metrics: Metrics,
}

pub fn router(state: HttpState) -> Router {
    let metrics = state.metrics.clone();
    let (routes, _) = openapi();
    with_common_routes(routes, metrics).with_state(state)
}

/// The routes and the OpenAPI document made from them.
pub fn openapi() -> (Router<HttpState>, utoipa::openapi::OpenApi) {
    let routes = OpenApiRouter::new()
        .routes(routes!(create))
        // `GET /users/verify` is the account named "verify", not the password check.
        .routes(routes!(verify, get_verify))
        .routes(routes!(get_user))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text));
    service_kit::openapi::finish(
        routes,
        "users",
        "The shop's accounts: sign-up, password checks, public profiles.",
    )
}

/// Creates an account.
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateRequest,
    responses(
        (status = 201, description = "Created", body = CreateReply),
        (status = 400, description = "A rule is broken (the reason names it)", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, description = "The account store is unavailable", body = ErrorBody),
    ))]
async fn create(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<(StatusCode, Json<CreateReply>), HttpError> {
    let reply = state.core.create(req).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Checks a password: `valid` is false for a wrong password and an unknown user alike.
#[utoipa::path(post, path = "/users/verify", tag = "users", request_body = VerifyRequest,
    responses(
        (status = 200, body = VerifyReply),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, description = "Too many wrong passwords for this account", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
async fn verify(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyReply>, HttpError> {
    Ok(Json(state.core.verify(req).await?))
}

/// The public view of an account.
#[utoipa::path(get, path = "/users/{username}", tag = "users",
    params(("username" = String, Path, description = "1 to 32 of a-z 0-9 _ - (trimmed, lower-cased)")),
    responses(
        (status = 200, body = GetReply),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
async fn get_user(
    State(state): State<HttpState>,
    Path(username): Path<String>,
) -> Result<Json<GetReply>, HttpError> {
    Ok(Json(state.core.get(GetRequest { username }).await?))
}

/// The account named "verify" (the password check is the POST).
#[utoipa::path(get, path = "/users/verify", tag = "users",
    responses((status = 200, body = GetReply), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_verify(state: State<HttpState>) -> Result<Json<GetReply>, HttpError> {
    get_user(state, Path("verify".to_owned())).await
}

/// Ready when the bus is connected and the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`{ready, nats, database}`", body = serde_json::Value),
              (status = 503, description = "Not ready: the same body says what is missing", body = serde_json::Value)))]
async fn readyz(State(state): State<HttpState>) -> Response {
    let nats = service_kit::runtime::is_connected(&state.nats);
    let database = state.core.storage_ready().await;
    let status = if nats && database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": nats && database, "nats": nats, "database": database });
    (status, Json(body)).into_response()
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text(State(state): State<HttpState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str("# HELP shop_argon2_queue Password hashes waiting for a slot.\n");
    text.push_str("# TYPE shop_argon2_queue gauge\n");
    text.push_str(&format!(
        "shop_argon2_queue {}\n",
        state.core.hash_queue_len()
    ));
    text.push_str(&state.core.throttle().metrics("password_check"));
    text.push_str(&state.core.accounts().stream_end_metrics());
    metrics_response(text)
}
