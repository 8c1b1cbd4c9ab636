//! The contract between the parts of the shop: what crosses NATS, and nothing else.
//!
//! Every subject, request, reply and event is defined here, once, with the typed calls
//! that callers use instead of spelling subjects or parsing replies by hand, and the way
//! a failure travels (micro error headers). It depends on no HTTP, CLI or logging-setup
//! crate, so that anything that speaks to the shop can use it; what every service
//! process does around it lives in the `service-kit` crate.
//!
//! - [`users`], [`auth`], [`orders`]: one module per service: subjects, bodies, calls.
//! - [`error`]: the error codes, [`ErrorReply`] (a failure a service answers with) and
//!   [`CallError`] (what a caller gets back).
//! - [`discovery`]: the `$SRV` subjects that find running service instances.
//! - [`call`]: the request/reply primitive with a bounded time.
//! - [`request_id`]: the id of the request being served, carried across the bus.
//! - [`trace`]: the W3C trace context in NATS headers, and the spans around the work.

/// Implements `Debug` for request types that carry a secret, showing the type name only.
macro_rules! redacted_debug {
    ($($ty:ident),+) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    )+};
}

/// Defines a typed call `name(nats, req)` and `name_with(nats, req, opts)` for one
/// subject of the module's `SERVICE`.
macro_rules! typed_call {
    ($(#[$doc:meta])* $name:ident, $with:ident: $subject:expr, $req:ty => $rep:ty) => {
        $(#[$doc])*
        pub async fn $name(
            nats: &async_nats::Client,
            req: &$req,
        ) -> Result<$rep, $crate::CallError> {
            $with(nats, req, &$crate::CallOptions::default()).await
        }

        $(#[$doc])*
        /// With explicit [`CallOptions`](crate::CallOptions) (timeout, request id).
        pub async fn $with(
            nats: &async_nats::Client,
            req: &$req,
            opts: &$crate::CallOptions,
        ) -> Result<$rep, $crate::CallError> {
            $crate::call::request(nats, SERVICE, $subject, req, opts).await
        }
    };
}

pub mod asyncapi;
pub mod auth;
pub mod call;
pub mod discovery;
pub mod error;
pub mod orders;
pub mod request_id;
pub mod trace;
pub mod users;

pub use call::{CallObserver, CallOptions};
pub use error::{CallError, ErrorCode, ErrorReply, Invalid, Reason};

/// The largest request body either door accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The header that carries a request id across the bus.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
