//! The HTML pages, in French as in the original, one module per resource: [`account`]
//! (log in, register, log out), [`shop`] (catalogue, buy, purchases), [`watch`] (status
//! and activity) and [`assets`]. No state changes on a GET (but the logout link, as in
//! the original); every POST form carries a CSRF token.
//!
//! A handler returns `Result<Response, PageError>` ([`page`]): a failure is a page too
//! (the error page, or the form shown again), so `?` works on the way.

mod account;
mod assets;
mod page;
mod shop;
mod watch;

use axum::{Router, extract::State, routing::get};
use bus_schema::ErrorReply;

pub use page::PageError;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(account::login_page).post(account::login))
        .route(
            "/register",
            get(account::register_page).post(account::register),
        )
        .route("/logout", get(account::logout))
        .route("/home", get(shop::home))
        .route("/buy/{id}", get(shop::confirm).post(shop::buy))
        .route("/purchases", get(shop::purchases))
        .route("/status", get(watch::status))
        .route("/activity", get(watch::activity))
        .route("/activity/events", get(crate::activity::events))
        .route("/static/style.css", get(assets::stylesheet))
        .route("/static/activity.js", get(assets::activity_script))
        .fallback(not_found)
}

async fn not_found(State(state): State<AppState>) -> PageError {
    state.failed(ErrorReply::not_found("no such page"), None)
}
