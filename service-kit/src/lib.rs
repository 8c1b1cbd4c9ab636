//! What every service process of the shop does, written once: the thin `main`, the NATS
//! connection, the two doors (a NATS micro service and an HTTP port) and running them
//! until a signal, request ids and metrics on both doors, and the small tools several
//! services need. The contract itself (subjects, bodies, typed calls) is `bus-schema`.
//!
//! - [`runtime`]: connecting, binding, logging and shutdown, the same in every binary.
//! - [`error`]: [`error::StartError`], why a service could not start.
//! - [`serve`]: runs a micro endpoint around a domain function.
//! - [`http`]: the HTTP doors' conventions: [`http::HttpError`] (the `{"error"}` body),
//!   the JSON extractor, the Bearer-token [`http::Caller`], request metrics, fallbacks.
//! - [`history`]: purchase histories on an HTTP door: a page with its `Link`, or the
//!   whole history streamed page after page.
//! - [`openapi`]: the OpenAPI document of a door, made from its routes.
//! - [`metrics`]: request counters and latency histograms in Prometheus text format.
//! - [`feed`]: reading a JetStream consumer in batches, and pausing before a retry.
//! - [`clock`] and [`random`]: the time as the shop writes it, random hex tokens.
//! - [`request_id`]: making and checking request ids.
//! - [`secret_file`]: secrets made on first start, kept in private files.
//! - [`pool`]: a few threads of one's own for short blocking work.
//! - [`private`]: data files 0600 and directories 0700, whoever creates them.
//! - [`throttle`]: failures counted per key in a sliding window (login throttling).
//! - [`slowest`]: the slowest recent requests, for the status page.
//! - [`slots`]: work in flight capped per key and in all (logins, live feeds).
//! - [`stream_tail`]: the end of a stream, so that a view can read its writes.
//! - [`tokens`]: checking tokens locally with the keys and revocations auth publishes.
//! - [`trace`]: exporting traces (OpenTelemetry, OTLP) when the environment asks.

pub mod clock;
pub mod error;
pub mod feed;
pub mod history;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod pool;
pub mod private;
pub mod random;
pub mod request_id;
pub mod runtime;
pub mod secret_file;
pub mod serve;
pub mod slots;
pub mod slowest;
pub mod stream_tail;
pub mod throttle;
pub mod tokens;
pub mod trace;
