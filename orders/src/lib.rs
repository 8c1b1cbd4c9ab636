//! The orders service: the catalogue, purchases recorded as JetStream events and kept in
//! `purchases.json`, and each user's history, behind two doors.
//!
//! - [`config`]: flags and environment.
//! - [`domain`]: [`domain::Orders`], the core both doors call; [`domain::catalog`] the
//!   articles; [`domain::journal`] the `purchases.json` file; [`domain::index`] the
//!   per-user history in memory; [`domain::appender`] the durable consumer that writes
//!   the file; [`domain::flask`] the conversion of the original's file.
//! - [`bus`]: the NATS micro service `orders`.
//! - [`http`]: the axum routes on :5003 (Bearer token checked with `auth.verify`).
//! - [`error`]: [`error::OrdersError`] and its single status mapping.
//! - [`startup`]: [`build`], which loads, recovers, joins and binds everything.

pub mod bus;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod startup;

pub use config::Config;
pub use startup::{App, build};
