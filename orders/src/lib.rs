//! The orders service: the catalogue, purchases recorded as JetStream events and kept in
//! `purchases.json`, and each user's history, behind two doors.
//!
//! - [`config`]: flags and environment.
//! - [`service`]: [`service::Orders`], the operations both doors call.
//! - [`domain`]: the rules; [`domain::catalog`] the articles, [`domain::purchase`] a
//!   purchase as recorded.
//! - [`events`]: the `ORDERS` stream and the appender that follows it into the file.
//! - [`store`]: [`store::journal`] the `purchases.json` file, [`store::index`] the
//!   history index on disk beside it, [`store::flask`] the conversion of the original's
//!   file.
//! - [`bus`]: the NATS micro service `orders`.
//! - [`http`]: the axum routes on :5003 (the Bearer token checked here, with the public
//!   keys auth publishes: no bus call).
//! - [`error`]: [`error::OrdersError`] and its single status mapping.
//! - [`startup`]: [`build`], which loads, recovers, joins and binds everything.

pub mod bus;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod service;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::{App, build};
