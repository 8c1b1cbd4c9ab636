//! `GET /api/status`: the service instances on the bus and the NATS server's health, as
//! the status page shows them.

use axum::{Json, extract::State};

use crate::{state::AppState, status::Status};

pub async fn show(State(state): State<AppState>) -> Json<Status> {
    Json(state.status().await)
}
