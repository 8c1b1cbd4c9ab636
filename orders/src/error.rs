//! The failures of the orders service and the one place that maps them to a status.

use bus_schema::{CallError, ErrorCode, ErrorReply, Invalid, Reason};

/// Everything an orders operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OrdersError {
    /// The request breaks a rule; the message names it.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    Forbidden(String),
    #[error("no article with id {0}")]
    UnknownArticle(i64),
    /// JetStream or the journal cannot take the purchase now; the reason says what
    /// became of it.
    #[error("{1}")]
    Unavailable(Reason, String),
    #[error(transparent)]
    Call(#[from] CallError),
    /// No token, or a bad or revoked one, on a bus request that acts for a user.
    #[error(transparent)]
    Token(#[from] service_kit::tokens::TokenError),
}

impl OrdersError {
    /// The status of this failure, on both doors.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::BadRequest,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::UnknownArticle(_) => ErrorCode::NotFound,
            Self::Unavailable(..) => ErrorCode::Unavailable,
            Self::Call(err) => err.code(),
            Self::Token(err) => err.reply().code,
        }
    }
}

impl From<OrdersError> for ErrorReply {
    fn from(err: OrdersError) -> Self {
        match err {
            OrdersError::Call(call) => call.into_reply(),
            OrdersError::Token(token) => token.reply(),
            OrdersError::Invalid(invalid) => invalid.into(),
            OrdersError::Forbidden(_) => {
                ErrorReply::new(err.code(), err.to_string()).because(Reason::OtherUser)
            }
            OrdersError::UnknownArticle(_) => {
                ErrorReply::new(err.code(), err.to_string()).because(Reason::UnknownArticle)
            }
            OrdersError::Unavailable(reason, message) => {
                ErrorReply::new(ErrorCode::Unavailable, message).because(reason)
            }
        }
    }
}
