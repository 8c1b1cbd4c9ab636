//! The JSON API: `POST /api/login`, `GET /api/purchases`, `POST /api/buy`. The token is
//! checked with `auth.verify` on every request; a service's failure keeps its status.

use axum::{
    Json, Router,
    extract::State,
    http::{Extensions, HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bus_schema::{
    auth::{LoginReply, LoginRequest},
    orders::{self, BuyBody, BuyReply, BuyRequest, PurchasesRequest},
};
use service_kit::http::{Caller, HttpError, JsonBody, idempotency_key};

use crate::startup::AppState;

/// The routes, to be nested under `/api`; unknown paths there get a JSON 404.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/purchases", get(purchases))
        .route("/buy", post(buy))
        .fallback(service_kit::http::not_found)
        .method_not_allowed_fallback(service_kit::http::method_not_allowed)
}

async fn login(
    State(state): State<AppState>,
    client: Extensions,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginReply>, HttpError> {
    Ok(Json(state.login(&client, &request).await?))
}

/// The history as orders sent it: passed on without decoding and encoding it again.
async fn purchases(State(state): State<AppState>, caller: Caller) -> Result<Response, HttpError> {
    let request = PurchasesRequest {
        username: caller.username,
    };
    let body = orders::purchases_bytes(&state.nats, &request, &state.calls.idempotent()).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn buy(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BuyBody>,
) -> Result<(StatusCode, Json<BuyReply>), HttpError> {
    let request = BuyRequest {
        username: caller.username,
        article_id: body.article_id,
        idempotency_key: idempotency_key(&headers)?,
    };
    let reply = orders::buy_with(&state.nats, &request, &state.buy_calls(&request)).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}
