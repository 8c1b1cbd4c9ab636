//! The HTTP door on :5003: the original's routes, each behind a Bearer token checked
//! here with the keys auth publishes, plus health, readiness and metrics.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{FromRef, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use bus_schema::orders::{ArticlesReply, BuyBody, BuyReply, BuyRequest, PurchasesRequest, STREAM};
use serde_json::json;
use service_kit::{
    history::{self, HistoryPage, HistoryQuery},
    http::HttpError,
    http::{Caller, JsonBody, metrics_response, with_common_routes},
    metrics::Metrics,
};

use service_kit::openapi::ErrorBody;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::service::Orders;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub core: Orders,
    pub nats: async_nats::Client,
    pub metrics: Metrics,
}

impl FromRef<HttpState> for service_kit::tokens::Verifier {
    fn from_ref(state: &HttpState) -> Self {
        state.core.verifier().clone()
    }
}

pub fn router(state: HttpState) -> Router {
    let metrics = state.metrics.clone();
    let (routes, _) = openapi();
    with_common_routes(routes, metrics).with_state(state)
}

/// The routes and the OpenAPI document made from them.
pub fn openapi() -> (Router<HttpState>, utoipa::openapi::OpenApi) {
    let routes = OpenApiRouter::new()
        .routes(routes!(articles))
        .routes(routes!(purchases))
        .routes(routes!(buy))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text));
    service_kit::openapi::finish(
        routes,
        "orders",
        "The catalogue, durable purchases (an Idempotency-Key makes a retry answer the first one) and the history.",
    )
}

/// The catalogue.
#[utoipa::path(get, path = "/orders/articles", tag = "orders", security(("bearer" = [])),
    responses((status = 200, body = ArticlesReply), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn articles(State(state): State<HttpState>, _caller: Caller) -> Json<ArticlesReply> {
    Json(state.core.articles())
}

/// The caller's own history: the whole of it, oldest first, however long (streamed),
/// or with `limit`, `cursor` or `order` one page, its next page's address in `next_url`
/// and a `Link` header. A whole history of one page carries its tag as `ETag`, and a
/// request whose `If-None-Match` names it is answered 304.
#[utoipa::path(get, path = "/orders/{username}/purchases", tag = "orders", security(("bearer" = [])),
    params(("username" = String, Path, description = "The caller's own name"), HistoryQuery,
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a whole history read before: 304 while it is the same")),
    responses(
        (status = 200, body = HistoryPage, headers(
            ("ETag" = String, description = "The whole history's tag (not on a page, nor on a history longer than one bus reply)"))),
        (status = 304, description = "The whole history is still the one of `If-None-Match`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Another user's history", body = ErrorBody),
        (status = 503, description = "The history could not be confirmed current", body = ErrorBody),
    ))]
async fn purchases(
    State(state): State<HttpState>,
    caller: Caller,
    Path(username): Path<String>,
    Query(query): Query<HistoryQuery>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let username = state.core.authorize(&caller.username, &username)?;
    let path = format!("/orders/{username}/purchases");
    if let Some(request) = query.request(&username)? {
        let reply = state.core.purchases(&request).await?.reply;
        return Ok(history::page_response_bytes(&path, &request, reply)?);
    }
    let first = state.core.page(&PurchasesRequest::of(&username)).await?;
    let etag = history::whole_etag(&first.reply, Some(first.tag.to_string()));
    if let Some(response) = etag
        .as_ref()
        .and_then(|e| history::not_modified(&headers, e))
    {
        return Ok(response);
    }
    let core = state.core.clone();
    let response = history::whole_response_bytes(first.reply, move |cursor| {
        let (core, username) = (core.clone(), username.clone());
        async move {
            let request = PurchasesRequest {
                cursor: Some(cursor),
                ..PurchasesRequest::of(username)
            };
            core.purchases_page(&request).await
        }
    })?;
    Ok(history::tagged(response, etag))
}

/// Buys an article; answered once the purchase is in the stream and on disk.
#[utoipa::path(post, path = "/orders/{username}/buy", tag = "orders", security(("bearer" = [])),
    params(
        ("username" = String, Path, description = "The caller's own name"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters: a retry answers the key's first purchase"),
    ),
    request_body = BuyBody,
    responses(
        (status = 201, body = BuyReply),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such article", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, description = "Not recorded, or maybe recorded: repeat with the same key", body = ErrorBody),
    ))]
async fn buy(
    State(state): State<HttpState>,
    caller: Caller,
    Path(username): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<BuyBody>,
) -> Result<(StatusCode, Json<BuyReply>), HttpError> {
    let username = state.core.authorize(&caller.username, &username)?;
    let idempotency_key = service_kit::http::idempotency_key(&headers)?;
    let request = BuyRequest {
        username,
        article_id: body.article_id,
        idempotency_key,
    };
    let reply = state.core.buy(request).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

/// Ready when the bus is connected and the `ORDERS` stream answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "`{ready, nats, stream}`", body = serde_json::Value),
              (status = 503, description = "Not ready", body = serde_json::Value)))]
async fn readyz(State(state): State<HttpState>) -> Response {
    let nats = service_kit::runtime::is_connected(&state.nats);
    let stream = nats
        && tokio::time::timeout(
            Duration::from_secs(2),
            state.core.jetstream().get_stream(STREAM),
        )
        .await
        .is_ok_and(|found| found.is_ok());
    let ready = nats && stream;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": ready, "nats": nats, "stream": stream });
    (status, Json(body)).into_response()
}

/// Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text(State(state): State<HttpState>) -> Response {
    let mut text = state.metrics.render();
    text.push_str(
        "# HELP shop_purchases_appended_total Purchases written to purchases.json since start.\n",
    );
    text.push_str("# TYPE shop_purchases_appended_total counter\n");
    text.push_str(&format!(
        "shop_purchases_appended_total {}\n",
        state.core.appended()
    ));
    if let Some(unwritten) = state.core.unwritten().await {
        text.push_str(
            "# HELP shop_purchases_unwritten Purchase events in the stream not yet read into purchases.json.\n",
        );
        text.push_str("# TYPE shop_purchases_unwritten gauge\n");
        text.push_str(&format!("shop_purchases_unwritten {unwritten}\n"));
    }
    text.push_str("# HELP shop_purchases_recorded Purchases in purchases.json.\n");
    text.push_str("# TYPE shop_purchases_recorded gauge\n");
    text.push_str(&format!(
        "shop_purchases_recorded {}\n",
        state.core.recorded()
    ));
    text.push_str(
        "# HELP shop_purchases_read_at_start Lines of purchases.json read at start: those its index lacked.\n",
    );
    text.push_str("# TYPE shop_purchases_read_at_start gauge\n");
    text.push_str(&format!(
        "shop_purchases_read_at_start {}\n",
        state.core.lines_read_at_start()
    ));
    text.push_str(&state.core.read_metrics());
    metrics_response(text)
}
