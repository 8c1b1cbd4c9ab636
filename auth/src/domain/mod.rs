//! The rules of the auth service, with no transport in sight.

pub mod keys;
pub mod tokens;

use std::sync::Arc;

use service_kit::{throttle::Throttle, tokens::Verifier};

use async_nats::{Client, jetstream};
use bus_schema::{
    CallError, ErrorCode, Invalid, Reason,
    auth::{
        LoginReply, LoginRequest, LogoutReply, LogoutRequest, Revoked, VerifyReply, VerifyRequest,
        subject,
    },
    users,
};

use crate::error::AuthError;
use tokens::Tokens;

/// The auth service's core: logins need the bus (to ask users), verification only the
/// keys and revocations in memory, a logout the revocations' stream.
#[derive(Debug, Clone)]
pub struct Auth {
    nats: Client,
    tokens: Arc<Tokens>,
    verifier: Verifier,
    /// Failed logins per account, shared by every auth instance.
    throttle: Arc<Throttle>,
}

impl Auth {
    pub fn new(nats: Client, tokens: Tokens, verifier: Verifier, throttle: Arc<Throttle>) -> Self {
        Self {
            nats,
            tokens: Arc::new(tokens),
            verifier,
            throttle,
        }
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The throttle of failed logins per account, shared with the other instances.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
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

    /// `auth.verify`: the identity a valid, unrevoked token carries, from memory.
    pub async fn verify(&self, req: &VerifyRequest) -> Result<VerifyReply, AuthError> {
        if req.token.trim().is_empty() {
            return Err(Invalid::new(Reason::TokenRequired, "token is required").into());
        }
        let verified = self.verifier.verify(&req.token).await?;
        Ok(VerifyReply {
            username: verified.username,
            valid: true,
        })
    }

    /// `auth.logout`: revokes the token everywhere (every verifier refuses it within a
    /// second, until it would have expired); the person's other tokens keep working.
    pub async fn logout(&self, req: &LogoutRequest) -> Result<LogoutReply, AuthError> {
        if req.token.trim().is_empty() {
            return Err(Invalid::new(Reason::TokenRequired, "token is required").into());
        }
        let verified = self.verifier.verify(&req.token).await?;
        let record = Revoked {
            jti: verified.jti.clone(),
            exp: verified.exp,
        };
        let body = serde_json::to_vec(&record).expect("BUG: a record always serialises");
        let span = bus_schema::trace::publishing(subject::REVOKED_PREFIX);
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in span.iter().flat_map(bus_schema::trace::Span::headers) {
            headers.insert(name, value.as_str());
        }
        let acked = async {
            jetstream::new(self.nats.clone())
                .publish_with_headers(subject::revoked(&record.jti), headers, body.into())
                .await?
                .await
        }
        .await;
        bus_schema::trace::published(span, &acked);
        acked.map_err(|err| AuthError::NotRecorded(err.to_string()))?;
        self.verifier.revoke(record.jti, record.exp);
        tracing::info!(username = verified.username, "logged out: token revoked");
        Ok(LogoutReply { revoked: true })
    }
}
