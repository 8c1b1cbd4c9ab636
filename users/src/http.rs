//! The HTTP door on :5002: the original's routes plus health, readiness and metrics.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bus_schema::users::{
    CreateReply, CreateRequest, GetReply, GetRequest, VerifyReply, VerifyRequest,
};
use serde_json::json;
use service_kit::{
    http::HttpError,
    http::{JsonBody, metrics_response, with_common_routes},
    metrics::Metrics,
};

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
    let routes = Router::new()
        .route("/users", post(create))
        // `GET /users/verify` is the account named "verify", not the password check.
        .route("/users/verify", post(verify).get(get_verify))
        .route("/users/{username}", get(get_user))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));
    with_common_routes(routes, metrics).with_state(state)
}

async fn create(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<(StatusCode, Json<CreateReply>), HttpError> {
    let reply = state.core.create(req).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

async fn verify(
    State(state): State<HttpState>,
    JsonBody(req): JsonBody<VerifyRequest>,
) -> Result<Json<VerifyReply>, HttpError> {
    Ok(Json(state.core.verify(req).await?))
}

async fn get_user(
    State(state): State<HttpState>,
    Path(username): Path<String>,
) -> Result<Json<GetReply>, HttpError> {
    Ok(Json(state.core.get(GetRequest { username }).await?))
}

async fn get_verify(state: State<HttpState>) -> Result<Json<GetReply>, HttpError> {
    get_user(state, Path("verify".to_owned())).await
}

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

async fn metrics_text(State(state): State<HttpState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str("# HELP shop_argon2_queue Password hashes waiting for a slot.\n");
    text.push_str("# TYPE shop_argon2_queue gauge\n");
    text.push_str(&format!(
        "shop_argon2_queue {}\n",
        state.core.hash_queue_len()
    ));
    metrics_response(text)
}
