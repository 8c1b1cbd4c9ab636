//! The shop end to end, in one test binary: every service in this process against a
//! real nats-server (or, for the launcher, the real `stack` binary), the gateway's
//! router, API and pages, the bad-input sweep, request ids, the bus permissions of
//! `nats.conf`, and a real browser.

mod api;
mod bad_input;
mod browser;
mod helpers;
mod history;
mod launcher;
mod pages;
mod permissions;
mod request_ids;
mod router;
mod tokens;
mod watching;
