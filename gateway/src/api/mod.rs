//! The JSON API under `/api`, one module per resource: [`account`] (`POST /api/login`),
//! [`purchases`] (`GET /api/purchases`, `POST /api/buy`) and [`status`]
//! (`GET /api/status`), `POST /api/logout`. The token is checked here, with the keys
//! auth publishes, on every request that needs one; a service's failure keeps its
//! status and reason ([`HttpError`]).
//!
//! [`HttpError`]: service_kit::http::HttpError

mod account;
mod purchases;
mod status;

use axum::{
    Router,
    routing::{get, post},
};

use crate::state::AppState;

/// The routes, to be nested under `/api`; unknown paths there get a JSON 404.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(account::login))
        .route("/logout", post(account::logout))
        .route("/purchases", get(purchases::list))
        .route("/buy", post(purchases::buy))
        .route("/status", get(status::show))
        .fallback(service_kit::http::not_found)
        .method_not_allowed_fallback(service_kit::http::method_not_allowed)
}
