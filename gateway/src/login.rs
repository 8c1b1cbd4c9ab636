//! Logging in through the gateway, on the API and the form alike: `auth.login`, refused
//! with 429 for a client address that failed too often. Only failures count against it.

use axum::http::Extensions;
use bus_schema::{
    ErrorCode, ErrorReply, Reason,
    auth::{self, LoginReply, LoginRequest},
};

use crate::state::AppState;

/// `auth.login` for the client whose connection `client` describes.
pub async fn login(
    state: &AppState,
    client: &Extensions,
    request: &LoginRequest,
) -> Result<LoginReply, ErrorReply> {
    let address = service_kit::http::client_address(client);
    // A flood from one address waits for itself only.
    let _turn = service_kit::http::login_turn(&state.logins, client).await?;
    // Reserved before auth answers, so that parallel failures cannot all pass the limit.
    let attempt = state.login_throttle.attempt(&address).map_err(|secs| {
        ErrorReply::too_many(
            format!("too many failed logins from your address; try again in {secs} seconds"),
            secs,
        )
        .because(Reason::TooManyFailedLogins)
    })?;
    match auth::login_with(&state.nats, request, &state.calls).await {
        Ok(reply) => {
            // A success of this address does not forgive its other failures.
            attempt.not_counted();
            Ok(reply)
        }
        Err(err) => {
            if err.code() == ErrorCode::Unauthorized {
                attempt.failed();
            } else {
                attempt.not_counted();
            }
            Err(err.into_reply())
        }
    }
}
