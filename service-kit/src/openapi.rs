//! The OpenAPI 3.1 document of an HTTP door, served at `GET /openapi.json`. It is made
//! from the door's own routes: each route is registered with its documentation in one
//! `OpenApiRouter` (utoipa-axum), so a route cannot exist without its entry, and the
//! bodies' schemas come from the types the handlers use.

use axum::{Json, Router, routing::get};
use serde::Serialize;
use utoipa::{
    Modify, ToSchema,
    openapi::{
        OpenApi,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The name of the Bearer token scheme in the documents.
pub const BEARER: &str = "bearer";

/// The body of every error answer, on every door.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// For a person; may change.
    pub error: String,
    /// Stable and machine-readable (`password_too_short`, `token_expired`, ...).
    pub reason: String,
    /// The number in the broken rule, when it has one.
    #[schema(required = false)]
    pub limit: Option<u64>,
}

/// Adds the Bearer scheme that protected operations name.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `GET /healthz`
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process runs: `{\"status\":\"ok\"}`", body = serde_json::Value)))]
pub async fn healthz() -> Json<serde_json::Value> {
    crate::http::healthz().await
}

/// The document's title and description, and the routes: adds `/healthz` and
/// `/openapi.json`, and returns the router with the document it serves.
pub fn finish<S>(routes: OpenApiRouter<S>, title: &str, description: &str) -> (Router<S>, OpenApi)
where
    S: Clone + Send + Sync + 'static,
{
    let (router, mut api) = routes.routes(routes!(healthz)).split_for_parts();
    api.info.title = title.to_owned();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.info.description = Some(description.to_owned());
    api.info.license = None;
    api.info.contact = None;
    BearerScheme.modify(&mut api);
    let served = api.clone();
    let router = router.route(
        "/openapi.json",
        get(move || std::future::ready(Json(served.clone()))),
    );
    (router, api)
}
