//! The failures of the users service and the one place that maps them to a status.

use bus_schema::{ErrorCode, ErrorReply};

/// Everything a users operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The request breaks a rule; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("the username {0} is already taken")]
    Taken(String),
    #[error("no user named {0}")]
    NotFound(String),
    #[error("the user database failed")]
    Storage(#[from] rusqlite::Error),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("cannot prepare the database: {0}")]
    Setup(String),
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
            Self::Storage(_) | Self::Hashing(_) | Self::Setup(_) | Self::Worker(_) => {
                ErrorCode::Internal
            }
        }
    }
}

impl From<UsersError> for ErrorReply {
    fn from(err: UsersError) -> Self {
        let code = err.code();
        if code.is_client_error() {
            ErrorReply::new(code, err.to_string())
        } else {
            ErrorReply::internal(&err)
        }
    }
}
