//! `POST /api/login`: a token for a username and password.

use axum::{Json, extract::State, http::Extensions};
use bus_schema::auth::{LoginReply, LoginRequest};
use service_kit::http::{HttpError, JsonBody};

use crate::{login, state::AppState};

pub async fn login(
    State(state): State<AppState>,
    client: Extensions,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, HttpError> {
    Ok(Json(login::login(&state, &client, &request).await?))
}
