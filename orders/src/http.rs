//! The HTTP door on :5003: the original's routes, each behind a Bearer token checked
//! here with the keys auth publishes, plus health, readiness and metrics.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{FromRef, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bus_schema::orders::{
    ArticlesReply, BuyBody, BuyReply, BuyRequest, PurchasesReply, PurchasesRequest, STREAM,
};
use serde_json::json;
use service_kit::{
    http::HttpError,
    http::{Caller, JsonBody, metrics_response, with_common_routes},
    metrics::Metrics,
};

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
    let routes = Router::new()
        .route("/orders/articles", get(articles))
        .route("/orders/{username}/purchases", get(purchases))
        .route("/orders/{username}/buy", post(buy))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text));
    with_common_routes(routes, metrics).with_state(state)
}

async fn articles(State(state): State<HttpState>, _caller: Caller) -> Json<ArticlesReply> {
    Json(state.core.articles())
}

async fn purchases(
    State(state): State<HttpState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<Json<PurchasesReply>, HttpError> {
    let username = state.core.authorize(&caller.username, &username)?;
    Ok(Json(
        state.core.purchases(&PurchasesRequest { username }).await?,
    ))
}

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
    metrics_response(text)
}
