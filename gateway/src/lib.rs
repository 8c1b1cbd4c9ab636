//! The gateway: the shop's web pages and JSON API on :5000. It keeps no state and
//! talks to the services over NATS only, through the typed calls of `bus-schema`.
//!
//! - [`config`]: flags and environment.
//! - [`api`]: `/api/login`, `/api/purchases`, `/api/buy` (JSON, Bearer token).
//! - [`pages`]: the HTML pages (login, register, home, buy, purchases, logout).
//! - [`session`]: the session and CSRF cookies, and the [`session::Session`] extractor.
//! - [`views`]: the minijinja templates (embedded) and the formatting of prices, dates
//!   and French messages.
//! - [`status`]: the services found on the bus and the NATS server's health.
//! - [`activity`]: the live feed of purchases and sign-ups (Server-Sent Events).
//! - [`startup`]: [`build`], which joins the bus and binds HTTP.

pub mod activity;
pub mod api;
pub mod config;
pub mod pages;
pub mod session;
pub mod startup;
pub mod status;
pub mod views;

pub use config::Config;
pub use startup::{App, build};
