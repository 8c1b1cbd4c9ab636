//! Error codes, the failure a service replies with, and the failure a caller sees.

use std::fmt;

/// The status codes a service may answer with, on the bus and over HTTP alike.
///
/// On the bus the number travels in the `Nats-Service-Error-Code` header, over HTTP it
/// is the response status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or breaks a rule; the message names the rule.
    BadRequest,
    /// No identity, or a wrong password or token.
    Unauthorized,
    /// An identity that may not do this.
    Forbidden,
    /// The thing asked for does not exist.
    NotFound,
    /// The request body is larger than [`crate::MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// The body is not JSON (HTTP content type).
    UnsupportedMediaType,
    /// The thing to create exists already.
    Conflict,
    /// Too many attempts; try again later.
    TooManyRequests,
    /// A bug or a broken disk; the details are in the service's log, not in the reply.
    Internal,
    /// A service or the bus is down or did not answer in time.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    /// The code of an HTTP status; anything unknown is treated as internal.
    pub fn from_u16(status: u16) -> Self {
        match status {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            429 => Self::TooManyRequests,
            503 => Self::Unavailable,
            _ => Self::Internal,
        }
    }

    /// Whether the fault is the caller's (4xx).
    pub fn is_client_error(self) -> bool {
        self.as_u16() < 500
    }
}

/// A failure as a service answers it: a code and a message for a person.
///
/// Server errors carry a generic message; their cause goes to the log, never to the
/// caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({})", code.as_u16())]
pub struct ErrorReply {
    /// What kind of failure, and so which status.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
    /// For a 429: seconds until a new attempt may succeed (the `Retry-After` header on
    /// the bus and over HTTP).
    pub retry_after: Option<u64>,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 429 that says when to try again.
    pub fn too_many(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(ErrorCode::TooManyRequests, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A server-side failure: logs the cause and answers a generic message.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(cause), "internal error");
        Self::new(ErrorCode::Internal, "internal error, see the service's log")
    }
}

/// The header that carries [`ErrorReply::retry_after`].
pub const RETRY_AFTER_HEADER: &str = "Retry-After";

/// Refuses a body that is not a JSON object before serde sees it: serde would read a
/// struct from an array too (`[1]` as `{"article_id": 1}`), which surprises people.
pub fn require_object(body: &[u8]) -> Result<(), ErrorReply> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ErrorReply::bad_request(
            "the request body must be a JSON object, such as {\"username\": \"...\"}",
        )),
    }
}

/// Displays an error with all its sources, `outer: inner: innermost`.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// What a typed call on the bus can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The service answered with an error (its micro error headers).
    #[error("{0}")]
    Service(ErrorReply),
    /// Nobody answered: no responder, a timeout, or the connection is gone.
    #[error("the {service} service is unavailable ({reason}); try again in a moment")]
    Unavailable {
        service: &'static str,
        reason: String,
    },
    /// The reply could not be decoded: the two sides disagree on the contract.
    #[error("the {service} service sent a reply that does not match the contract: {reason}")]
    BadReply {
        service: &'static str,
        reason: String,
    },
}

impl CallError {
    /// The status this failure gets at an HTTP door.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Service(reply) => reply.code,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::BadReply { .. } => ErrorCode::Internal,
        }
    }

    /// The failure as it is passed on to the next caller.
    pub fn into_reply(self) -> ErrorReply {
        match self {
            Self::Service(reply) => reply,
            Self::Unavailable { .. } => ErrorReply::new(ErrorCode::Unavailable, self.to_string()),
            Self::BadReply { .. } => ErrorReply::internal(&self),
        }
    }
}

impl From<CallError> for ErrorReply {
    fn from(err: CallError) -> Self {
        err.into_reply()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_survives_a_round_trip_through_its_status() {
        use ErrorCode::*;
        for code in [
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            PayloadTooLarge,
            UnsupportedMediaType,
            Conflict,
            TooManyRequests,
            Internal,
            Unavailable,
        ] {
            assert_eq!(ErrorCode::from_u16(code.as_u16()), code);
        }
    }

    #[test]
    fn an_unknown_status_is_internal() {
        assert_eq!(ErrorCode::from_u16(418), ErrorCode::Internal);
    }
}
