//! The `auth` service: logins and JWT verification.

use serde::{Deserialize, Serialize};

/// Name of the micro service, as `nats micro ls` shows it.
pub const SERVICE: &str = "auth";

/// The subjects the `auth` service answers.
pub mod subject {
    /// Log in: [`super::LoginRequest`] -> [`super::LoginReply`].
    pub const LOGIN: &str = "auth.login";
    /// Check a token: [`super::VerifyRequest`] -> [`super::VerifyReply`].
    pub const VERIFY: &str = "auth.verify";
    /// Where auth instances share their login attempts per account (auth alone).
    pub const LOGIN_THROTTLE: &str = "auth.throttle.login";
}

/// A login attempt.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct LoginRequest {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// A token for the account that logged in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginReply {
    /// The JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The normalised username the token is for.
    pub username: String,
}

/// A token to check.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct VerifyRequest {
    #[serde(default)]
    pub token: String,
}

/// The identity a valid token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReply {
    pub username: String,
    /// Always `true`: an invalid token is a 401 error, not a reply.
    pub valid: bool,
}

redacted_debug!(LoginRequest, LoginReply, VerifyRequest);

typed_call!(
    /// `auth.login`: 401 for a wrong password or an unknown user alike.
    login, login_with: subject::LOGIN, LoginRequest => LoginReply
);
typed_call!(
    /// `auth.verify`: 401 for an invalid or expired token.
    verify, verify_with: subject::VERIFY, VerifyRequest => VerifyReply
);
