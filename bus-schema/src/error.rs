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

/// Defines [`Reason`] with the stable name of each variant, written once.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)+) => {
        /// Why a request failed, as a stable machine-readable name: the
        /// [`REASON_HEADER`] header on the bus and the `reason` field of an HTTP error
        /// body. Callers decide on the reason, never on the message, which is for a
        /// person and may change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)+
        }

        impl Reason {
            /// Every reason, for tests and documentation.
            pub const ALL: &'static [Reason] = &[$(Self::$variant,)+];

            /// The stable name, e.g. `password_too_short`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// The reason of a stable name, if it is one.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    /// A 400 without a more precise reason.
    InvalidRequest = "invalid_request",
    /// The body is not a JSON object of the expected shape.
    MalformedBody = "malformed_body",
    /// The body is larger than [`crate::MAX_BODY_BYTES`] (the limit).
    BodyTooLarge = "body_too_large",
    /// The HTTP body is not `application/json`.
    NotJson = "not_json",
    UsernameRequired = "username_required",
    /// The username is longer than the limit.
    UsernameTooLong = "username_too_long",
    /// The username has a character outside `a-z 0-9 _ -`.
    UsernameInvalid = "username_invalid",
    PasswordRequired = "password_required",
    /// A new password is shorter than the limit.
    PasswordTooShort = "password_too_short",
    /// The password is longer than the limit.
    PasswordTooLong = "password_too_long",
    UsernameTaken = "username_taken",
    UnknownUser = "unknown_user",
    /// Wrong password or unknown user: one reason, so nobody learns which.
    BadCredentials = "bad_credentials",
    /// Too many failed logins; `Retry-After` says when to try again.
    TooManyFailedLogins = "too_many_failed_logins",
    TokenRequired = "token_required",
    TokenExpired = "token_expired",
    TokenNotYetValid = "token_not_yet_valid",
    TokenInvalid = "token_invalid",
    /// The token was revoked (its owner logged out).
    TokenRevoked = "token_revoked",
    /// A caller acting on another user's account.
    OtherUser = "other_user",
    ArticleIdRequired = "article_id_required",
    ArticleIdNotInteger = "article_id_not_integer",
    UnknownArticle = "unknown_article",
    /// The idempotency key is empty, too long (the limit) or not visible ASCII.
    IdempotencyKeyInvalid = "idempotency_key_invalid",
    /// A page size that is not a whole number from 1 to the limit.
    PageLimitInvalid = "page_limit_invalid",
    /// A page cursor that no reply gave (it comes from a reply's `next`).
    CursorInvalid = "cursor_invalid",
    /// A form without the CSRF token of the browser's cookie.
    CsrfTokenInvalid = "csrf_token_invalid",
    /// A 404 without a more precise reason (no such endpoint or page).
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    /// A 403 without a more precise reason.
    Forbidden = "forbidden",
    /// A 409 without a more precise reason.
    Conflict = "conflict",
    /// A 429 without a more precise reason.
    TooManyRequests = "too_many_requests",
    /// A 401 without a more precise reason.
    Unauthorized = "unauthorized",
    Internal = "internal",
    /// A service or the bus is down or did not answer in time.
    Unavailable = "unavailable",
    /// JetStream refused or could not be reached: nothing was recorded.
    EventStoreUnavailable = "event_store_unavailable",
    /// The purchase is in the stream but not yet in the file: repeat with the same key.
    NotOnDiskYet = "not_on_disk_yet",
    /// JetStream did not confirm: the purchase may have been recorded.
    MaybeRecorded = "maybe_recorded",
    /// This instance could not confirm that its view holds every change the stream
    /// holds (JetStream unreachable, or the view too far behind): try again.
    ViewBehind = "view_behind",
}

impl Reason {
    /// The reason of a failure that says nothing more precise than its code.
    pub fn of_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::BadRequest => Self::InvalidRequest,
            ErrorCode::Unauthorized => Self::Unauthorized,
            ErrorCode::Forbidden => Self::Forbidden,
            ErrorCode::NotFound => Self::NotFound,
            ErrorCode::PayloadTooLarge => Self::BodyTooLarge,
            ErrorCode::UnsupportedMediaType => Self::NotJson,
            ErrorCode::Conflict => Self::Conflict,
            ErrorCode::TooManyRequests => Self::TooManyRequests,
            ErrorCode::Internal => Self::Internal,
            ErrorCode::Unavailable => Self::Unavailable,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header that carries [`ErrorReply::reason`] on the bus.
pub const REASON_HEADER: &str = "Shop-Error-Reason";
/// The header that carries [`ErrorReply::limit`] on the bus.
pub const LIMIT_HEADER: &str = "Shop-Error-Limit";

/// A request that breaks a rule: a 400 with its reason, the limit it crossed if any,
/// and a message for a person. What the parsing domain types fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub reason: Reason,
    pub limit: Option<u64>,
    pub message: String,
}

impl Invalid {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            limit: None,
            message: message.into(),
        }
    }

    /// A rule with a number in it (a length).
    pub fn limit(reason: Reason, limit: usize, message: impl Into<String>) -> Self {
        Self {
            limit: u64::try_from(limit).ok(),
            ..Self::new(reason, message)
        }
    }
}

impl From<Invalid> for ErrorReply {
    fn from(err: Invalid) -> Self {
        Self {
            reason: err.reason,
            limit: err.limit,
            ..Self::new(ErrorCode::BadRequest, err.message)
        }
    }
}

/// A failure as a service answers it: a code, a stable reason and a message for a
/// person.
///
/// Server errors carry a generic message; their cause goes to the log, never to the
/// caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({})", code.as_u16())]
pub struct ErrorReply {
    /// What kind of failure, and so which status.
    pub code: ErrorCode,
    /// Why, for a program.
    pub reason: Reason,
    /// The number a rule allows (a length, say), when the reason is about one.
    pub limit: Option<u64>,
    /// What went wrong, for a person.
    pub message: String,
    /// For a 429: seconds until a new attempt may succeed (the `Retry-After` header on
    /// the bus and over HTTP).
    pub retry_after: Option<u64>,
}

impl ErrorReply {
    /// A failure with the plain reason of its code ([`Reason::of_code`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: Reason::of_code(code),
            limit: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// This failure with a more precise reason.
    pub fn because(self, reason: Reason) -> Self {
        Self { reason, ..self }
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
        )
        .because(Reason::MalformedBody)),
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
        let known = [400, 401, 403, 404, 409, 413, 415, 429, 500, 503];
        for status in known {
            assert_eq!(ErrorCode::from_u16(status).as_u16(), status);
        }
        // Every other status is internal: nothing is lost or made up on the way.
        for status in (100..600).filter(|s| !known.contains(s)) {
            assert_eq!(ErrorCode::from_u16(status), ErrorCode::Internal, "{status}");
        }
    }

    #[test]
    fn every_reason_has_one_stable_snake_case_name() {
        let mut names = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let name = reason.as_str();
            assert!(names.insert(name), "{name} twice");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert_eq!(Reason::parse(name), Some(*reason));
        }
        assert_eq!(Reason::parse("no_such_reason"), None);
    }

    #[test]
    fn an_unknown_status_is_internal() {
        assert_eq!(ErrorCode::from_u16(418), ErrorCode::Internal);
    }
}
