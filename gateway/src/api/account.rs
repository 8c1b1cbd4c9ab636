//! `POST /api/login`: a token for a username and password; `POST /api/logout`: the
//! Bearer token revoked (204).

use axum::{
    Json,
    extract::State,
    http::{Extensions, StatusCode},
};
use bus_schema::auth::{self, LoginReply, LoginRequest, LogoutRequest};
use service_kit::http::{Caller, HttpError, JsonBody};

use crate::{login, state::AppState};

pub async fn login(
    State(state): State<AppState>,
    client: Extensions,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, HttpError> {
    Ok(Json(login::login(&state, &client, &request).await?))
}

/// Revokes the caller's token on every instance (other tokens of the person stay valid).
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, HttpError> {
    let request = LogoutRequest {
        token: caller.token,
    };
    auth::logout_with(&state.nats, &request, &state.calls).await?;
    Ok(StatusCode::NO_CONTENT)
}
