//! `GET /api/status`: the service instances on the bus and the NATS server's health, as
//! the status page shows them.

use axum::{Json, extract::State};

use crate::{state::AppState, status::Status};

/// The service instances on the bus, the NATS server's health and each service's last
/// minutes.
#[utoipa::path(get, path = "/status", tag = "status", responses((status = 200, body = Status)))]
pub async fn show(State(state): State<AppState>) -> Json<Status> {
    Json(state.status().await)
}
