//! The users service: accounts in a JetStream stream, each instance's view in SQLite,
//! argon2id hashes, behind two doors.
//!
//! - [`config`]: flags and environment.
//! - [`service`]: [`service::Users`], the operations both doors call.
//! - [`domain`]: the rules: usernames and passwords that can only be built valid.
//! - [`hasher`]: argon2id on its own threads, with bounded memory.
//! - [`record`]: [`record::AccountRecord`], one account as the accounts stream holds it.
//! - [`accounts`]: the accounts stream (the truth) and keeping this instance's view.
//! - [`store`]: the view, `users.db` in SQLite, off the async runtime.
//! - [`werkzeug`]: the Flask original's password hashes, for imported accounts.
//! - [`bus`]: the NATS micro service `users` (`users.create`, `users.verify`, `users.get`).
//! - [`http`]: the axum routes on :5002.
//! - [`error`]: [`error::UsersError`] and its single status mapping.
//! - [`startup`]: [`build`], which opens, joins and binds everything into an [`App`].

pub mod accounts;
pub mod bus;
pub mod config;
pub mod domain;
pub mod error;
pub mod hasher;
pub mod http;
pub mod record;
pub mod service;
pub mod startup;
pub mod store;
pub mod werkzeug;

pub use config::Config;
pub use startup::{App, build};
