//! `GET /api/purchases` and `POST /api/buy`, for the caller of the Bearer token.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use bus_schema::orders::{self, BuyBody, BuyReply, BuyRequest, PurchasesRequest};
use service_kit::{
    http::{Caller, HttpError, JsonBody, idempotency_key},
    openapi::ErrorBody,
};

use crate::state::AppState;

/// The caller's history, oldest first (as orders sent it: passed on without decoding
/// and encoding it again).
#[utoipa::path(get, path = "/purchases", tag = "purchases", security(("bearer" = [])),
    responses(
        (status = 200, body = orders::PurchasesReply),
        (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, HttpError> {
    let request = PurchasesRequest {
        username: caller.username,
    };
    let calls = state.calls.idempotent().bearer(&caller.token);
    let body = orders::purchases_bytes(&state.nats, &request, &calls).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// A purchase; the `Idempotency-Key` header makes a retry answer the first one.
#[utoipa::path(post, path = "/buy", tag = "purchases", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters: a retry answers the key's first purchase")),
    request_body = BuyBody,
    responses(
        (status = 201, body = BuyReply),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such article", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, description = "Not recorded, or maybe recorded: repeat with the same key", body = ErrorBody),
    ))]
pub async fn buy(
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
    let calls = state.buy_calls(&request).bearer(&caller.token);
    let reply = orders::buy_with(&state.nats, &request, &calls).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}
