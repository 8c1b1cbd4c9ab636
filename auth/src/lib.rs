//! The auth service: logs people in (asking `users.verify` over NATS), issues EdDSA
//! JWTs, publishes their public keys and revokes tokens at logout, behind two doors.
//!
//! - [`config`]: flags and environment.
//! - [`domain`]: [`domain::Auth`], the core both doors call; [`domain::keys`] makes,
//!   publishes and rotates the signing keys; [`domain::tokens`] issues tokens.
//! - [`bus`]: the NATS micro service `auth` (`auth.login`, `auth.verify`, `auth.logout`).
//! - [`http`]: the axum routes on :5001.
//! - [`error`]: [`error::AuthError`] and its single status mapping.
//! - [`startup`]: [`build`], which loads, joins and binds everything into an [`App`].

pub mod bus;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod startup;

pub use config::Config;
pub use startup::{App, build};
