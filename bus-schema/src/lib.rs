//! The contract between the parts of the shop.
//!
//! Every subject, request, reply and event that crosses NATS is defined here, once, with
//! the typed calls that callers use instead of spelling subjects or parsing replies by
//! hand. The conventions shared by the services' two doors live here too, because they
//! are part of the same contract: how a failure is encoded (micro error headers on the
//! bus, `{"error": "..."}` over HTTP), how a bus endpoint is served, and the metrics
//! every service exposes.
//!
//! - [`users`], [`auth`], [`orders`]: one module per service: subjects, bodies, calls.
//! - [`error`]: the error codes, [`ErrorReply`] (a failure a service answers with) and
//!   [`CallError`] (what a caller gets back).
//! - [`discovery`]: the `$SRV` subjects that find running service instances.
//! - [`call`]: the request/reply primitive with a bounded time.
//! - [`serve`]: runs a micro endpoint around a domain function.
//! - [`http`]: the JSON extractor and error body of the HTTP doors.
//! - [`metrics`]: request counters and latency histograms in Prometheus text format.
//! - [`request_id`]: the id of the request being served, carried across the bus.
//! - [`runtime`]: connecting, binding, logging and shutdown, the same in every binary.
//! - [`secret_file`]: secrets made on first start, kept in private files.
//! - [`throttle`]: failures counted per key in a sliding window (login throttling).

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

pub mod auth;
pub mod call;
pub mod discovery;
pub mod error;
pub mod http;
pub mod metrics;
pub mod orders;
pub mod request_id;
pub mod runtime;
pub mod secret_file;
pub mod serve;
pub mod throttle;
pub mod users;

pub use call::CallOptions;
pub use error::{CallError, ErrorCode, ErrorReply};

/// The largest request body either door accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The header that carries a request id across the bus.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
