//! `POST /api/login`: a token for a username and password; `POST /api/logout`: the
//! Bearer token revoked (204).

use axum::{
    Json,
    extract::State,
    http::{Extensions, StatusCode},
};
use bus_schema::auth::{self, LoginReply, LoginRequest, LogoutRequest};
use service_kit::{
    http::{Caller, HttpError, JsonBody},
    openapi::ErrorBody,
};

use crate::{login, state::AppState};

/// A token for a username and password (also throttled per client address).
#[utoipa::path(post, path = "/login", tag = "account", request_body = LoginRequest,
    responses(
        (status = 200, body = LoginReply),
        (status = 400, body = ErrorBody),
        (status = 401, description = "Wrong password or unknown user (one answer)", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 429, description = "Too many failed logins (account or address)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: Extensions,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, HttpError> {
    Ok(Json(login::login(&state, &client, &request).await?))
}

/// Revokes the caller's token on every instance (other tokens of the person stay valid).
#[utoipa::path(post, path = "/logout", tag = "account", security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
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
