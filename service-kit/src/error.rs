//! [`StartError`]: why a service could not start, with what to do about it. Shared by
//! the runtime (connecting, binding) and the micro service registration.

use std::net::SocketAddr;

/// Why a service could not start; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "cannot listen on {addr}: {source}; stop whatever uses that port or choose another address ({hint})"
    )]
    Bind {
        addr: SocketAddr,
        hint: &'static str,
        source: std::io::Error,
    },
    #[error(
        "cannot connect to NATS at {url}: {source}; start nats-server (`make run` does) or set NATS_URL"
    )]
    Nats {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("cannot register the {service} micro service on NATS: {reason}")]
    Service {
        service: &'static str,
        reason: String,
    },
    #[error("{0}")]
    Other(String),
}
