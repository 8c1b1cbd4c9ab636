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

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// The routes with their documentation, to be nested under `/api`; unknown paths there
/// get a JSON 404 (and a known path with another method a JSON 405, set on the whole
/// router in `startup`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(account::login))
        .routes(routes!(account::logout))
        .routes(routes!(purchases::list))
        .routes(routes!(purchases::buy))
        .routes(routes!(status::show))
        .fallback(service_kit::http::not_found)
}
