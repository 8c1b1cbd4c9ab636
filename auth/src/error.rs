//! The failures of the auth service and the one place that maps them to a status.

use bus_schema::{CallError, ErrorCode, ErrorReply, Invalid, Reason};

/// Everything an auth operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request lacks a field or breaks a rule; the message says which.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Wrong password and unknown user alike: one message, so nobody learns which.
    #[error("invalid username or password")]
    BadCredentials,
    /// Too many failed logins for the account: the same answer whether it exists or not.
    #[error("too many failed logins for this account; try again in {0} seconds")]
    Throttled(u64),
    /// Missing, expired, not valid yet, revoked, malformed, tampered, signed with another
    /// key or algorithm; or the keys not loaded yet (503).
    #[error(transparent)]
    Token(#[from] service_kit::tokens::TokenError),
    /// The revocation could not be stored: nothing was revoked.
    #[error("the logout could not be recorded ({0}); try again")]
    NotRecorded(String),
    /// A call to another service failed (users down: 503).
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("cannot issue a token: {0}")]
    Issue(String),
}

impl AuthError {
    /// The status of this failure, on both doors.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::BadRequest,
            Self::BadCredentials => ErrorCode::Unauthorized,
            Self::Token(err) => err.reply().code,
            Self::NotRecorded(_) => ErrorCode::Unavailable,
            Self::Throttled(_) => ErrorCode::TooManyRequests,
            Self::Call(err) => err.code(),
            Self::Issue(_) => ErrorCode::Internal,
        }
    }

    fn reply(&self, reason: Reason) -> ErrorReply {
        ErrorReply::new(self.code(), self.to_string()).because(reason)
    }
}

impl From<AuthError> for ErrorReply {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Call(call) => call.into_reply(),
            AuthError::Invalid(invalid) => invalid.into(),
            AuthError::Throttled(secs) => {
                ErrorReply::too_many(err.to_string(), secs).because(Reason::TooManyFailedLogins)
            }
            AuthError::Issue(_) => ErrorReply::internal(&err),
            AuthError::BadCredentials => err.reply(Reason::BadCredentials),
            AuthError::Token(token) => token.reply(),
            AuthError::NotRecorded(_) => err.reply(Reason::EventStoreUnavailable),
        }
    }
}
