//! The users service: accounts in SQLite with argon2id hashes, behind two doors.
//!
//! - [`config`]: flags and environment.
//! - [`domain`]: the rules (usernames, passwords, hashing, storage) and [`domain::Users`],
//!   the one core both doors call.
//! - [`bus`]: the NATS micro service `users` (`users.create`, `users.verify`, `users.get`).
//! - [`http`]: the axum routes on :5002.
//! - [`error`]: [`error::UsersError`] and its single status mapping.
//! - [`startup`]: [`build`], which opens, joins and binds everything into an [`App`].

pub mod bus;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod startup;

pub use config::Config;
pub use startup::{App, build};
