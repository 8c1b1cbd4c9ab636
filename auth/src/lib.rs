//! The auth service: logs people in (asking `users.verify` over NATS) and issues and
//! verifies HS256 JWTs, behind two doors.
//!
//! - [`config`]: flags and environment (the key is never printed).
//! - [`domain`]: [`domain::Auth`], the core both doors call; [`domain::keys`] loads or
//!   creates the signing key; [`domain::tokens`] issues and checks tokens.
//! - [`bus`]: the NATS micro service `auth` (`auth.login`, `auth.verify`).
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
