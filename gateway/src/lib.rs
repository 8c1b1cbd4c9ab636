//! The gateway: the shop's web pages and JSON API on :5000. It keeps no state (but
//! copies of histories, sent only when the stream or orders says they are whole) and talks to
//! the services over NATS only, through the typed calls of `bus-schema`.
//!
//! - [`config`]: flags and environment.
//! - [`state`]: [`state::AppState`], what every handler shares.
//! - [`api`]: the JSON API under `/api`, one module per resource.
//! - [`pages`]: the HTML pages, one module per resource.
//! - [`login`]: logging in with the per-address throttle, for the API and the form.
//! - [`session`]: the session and CSRF cookies, and the [`session::Session`] extractor.
//! - [`views`]: the minijinja templates (embedded) and the formatting of prices, dates
//!   and French messages.
//! - [`discovery`]: the service instances found on the bus (`$SRV.PING`, INFO, STATS).
//! - [`status`]: the status page's state: those instances, the NATS server's health
//!   and the graphs of [`history`].
//! - [`history`]: each service's requests per second and average time over the last
//!   minutes, drawn as small SVG graphs.
//! - [`kept`]: the whole histories sent, sent again while they are whole.
//! - [`reads`]: history reads that include every purchase acknowledged before them,
//!   the stream's end asked while orders reads.
//! - [`activity`]: the live feed of purchases and sign-ups (Server-Sent Events).
//! - [`startup`]: [`build`], which joins the bus and binds HTTP.

pub mod activity;
pub mod api;
pub mod config;
pub mod discovery;
pub mod history;
pub mod kept;
pub mod login;
pub mod pages;
pub mod reads;
pub mod session;
pub mod startup;
pub mod state;
pub mod status;
pub mod views;

pub use config::Config;
pub use startup::{App, build};
