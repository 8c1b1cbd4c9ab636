//! The rules of the auth service, with no transport in sight.

pub mod keys;
pub mod tokens;

use std::sync::Arc;

use service_kit::throttle::Throttle;

use async_nats::Client;
use bus_schema::{
    CallError, ErrorCode, Invalid, Reason,
    auth::{LoginReply, LoginRequest, VerifyReply, VerifyRequest},
    users,
};

use crate::error::AuthError;
use tokens::Tokens;

/// The auth service's core: logins need the bus (to ask users), verification needs
/// nothing but the key.
#[derive(Debug, Clone)]
pub struct Auth {
    nats: Client,
    tokens: Arc<Tokens>,
    /// Failed logins per account.
    throttle: Arc<Throttle>,
}

impl Auth {
    pub fn new(nats: Client, tokens: Tokens, throttle: Arc<Throttle>) -> Self {
        Self {
            nats,
            tokens: Arc::new(tokens),
            throttle,
        }
    }

    /// `auth.login`: checks the password with `users.verify`, then issues a token.
    pub async fn login(&self, req: LoginRequest) -> Result<LoginReply, AuthError> {
        let username = users::normalize_username(&req.username);
        if username.is_empty() || req.password.is_empty() {
            let reason = if username.is_empty() {
                Reason::UsernameRequired
            } else {
                Reason::PasswordRequired
            };
            return Err(Invalid::new(reason, "username and password are required").into());
        }
        // Reserved before the password is checked, so that parallel guesses cannot all
        // pass the limit, and a blocked account learns nothing new; counted by name, so
        // an unknown account is blocked the same way.
        let attempt = self
            .throttle
            .attempt(&username)
            .map_err(AuthError::Throttled)?;
        let check = users::VerifyRequest {
            username: username.clone(),
            password: req.password,
        };
        match users::verify(&self.nats, &check).await {
            Ok(reply) if reply.valid => attempt.succeeded(),
            Ok(_) => {
                attempt.failed();
                return Err(AuthError::BadCredentials);
            }
            // A name or password no account can have (users names the rule).
            Err(CallError::Service(err)) if err.code == ErrorCode::BadRequest => {
                attempt.not_counted();
                return Err(Invalid {
                    reason: err.reason,
                    limit: err.limit,
                    message: err.message,
                }
                .into());
            }
            Err(err) => {
                attempt.not_counted();
                return Err(err.into());
            }
        }
        let access_token = self.tokens.issue(&username)?;
        tracing::info!(username, "logged in");
        Ok(LoginReply {
            access_token,
            token_type: "Bearer".to_owned(),
            expires_in: self.tokens.ttl_secs(),
            username,
        })
    }

    /// `auth.verify`: the identity a token carries, without any I/O.
    pub fn verify(&self, req: &VerifyRequest) -> Result<VerifyReply, AuthError> {
        if req.token.trim().is_empty() {
            return Err(Invalid::new(Reason::TokenRequired, "token is required").into());
        }
        let username = self.tokens.verify(req.token.trim())?;
        Ok(VerifyReply {
            username,
            valid: true,
        })
    }
}
