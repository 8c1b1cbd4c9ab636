//! The failures of the users service and the one place that maps them to a status.

use bus_schema::{ErrorCode, ErrorReply, Invalid, Reason};

/// Everything a users operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The request breaks a rule; the message names it.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the username {0} is already taken")]
    Taken(String),
    #[error("no user named {0}")]
    NotFound(String),
    /// Too many passwords wait for a hasher: try again in a second.
    #[error("too many logins at once; try again in a moment")]
    Busy,
    /// Too many wrong passwords for the account: the same answer whether it exists.
    #[error("too many failed logins for this account; try again in {0} seconds")]
    Throttled(u64),
    #[error("the user database failed")]
    Storage(#[from] rusqlite::Error),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("cannot prepare the database: {0}")]
    Setup(String),
    /// The accounts stream or the view cannot serve now; the reason says which.
    #[error("{1}")]
    Unavailable(Reason, String),
    #[error("a worker thread failed")]
    Worker(#[from] tokio::task::JoinError),
}

impl UsersError {
    /// The status of this failure, on both doors.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::BadRequest,
            Self::Taken(_) => ErrorCode::Conflict,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Throttled(_) => ErrorCode::TooManyRequests,
            Self::Busy | Self::Unavailable(..) => ErrorCode::Unavailable,
            Self::Storage(_) | Self::Hashing(_) | Self::Setup(_) | Self::Worker(_) => {
                ErrorCode::Internal
            }
        }
    }
}

impl From<UsersError> for ErrorReply {
    fn from(err: UsersError) -> Self {
        match err {
            UsersError::Invalid(invalid) => invalid.into(),
            UsersError::Taken(_) => {
                ErrorReply::new(err.code(), err.to_string()).because(Reason::UsernameTaken)
            }
            UsersError::Busy => {
                let mut reply = ErrorReply::new(ErrorCode::Unavailable, err.to_string());
                reply.retry_after = Some(1);
                reply
            }
            UsersError::Throttled(secs) => {
                ErrorReply::too_many(err.to_string(), secs).because(Reason::TooManyFailedLogins)
            }
            UsersError::Unavailable(reason, message) => {
                ErrorReply::new(ErrorCode::Unavailable, message).because(reason)
            }
            UsersError::NotFound(_) => {
                ErrorReply::new(err.code(), err.to_string()).because(Reason::UnknownUser)
            }
            err => ErrorReply::internal(&err),
        }
    }
}
