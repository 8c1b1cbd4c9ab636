//! The gateway's JSON API: log in, buy, list; bad tokens; services that stop or lose
//! requests.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{Shop, browser, json_of, text};

#[tokio::test]
async fn the_api_logs_in_buys_and_lists_purchases() {
    let shop = Shop::start().await;
    let http = reqwest::Client::new();
    let (status, login) = json_of(
        http.post(shop.url("/api/login"))
            .json(&json!({ "username": "Victor", "password": "1234" }))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login["username"], "victor");
    let token = login["access_token"].as_str().expect("token").to_owned();

    let (status, bought) = json_of(
        http.post(shop.url("/api/buy"))
            .header(header::AUTHORIZATION, format!("bearer {token}"))
            .header("Idempotency-Key", "k1")
            .json(&json!({ "article_id": 3 }))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bought}");
    assert_eq!(bought["article"]["name"], "Article 3");
    assert_eq!(bought["user"], "victor");

    let (status, history) = json_of(
        http.get(shop.url("/api/purchases"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["user"], "victor");
    assert_eq!(history["purchases"], json!(["Article 3"]));
    assert_eq!(shop.purchase_lines(), 1);

    // Each bus call the gateway made is counted with its latency.
    let metrics = http
        .get(shop.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    // Tokens are checked in the gateway itself: no auth.verify call at all.
    assert!(!metrics.contains("op=\"auth.verify\""), "{metrics}");
    for (op, calls) in [
        ("auth.login", 1),
        ("orders.buy", 1),
        ("orders.purchases", 1),
    ] {
        assert!(
            metrics.contains(&format!(
                "door=\"bus\",op=\"{op}\",status=\"200\"}} {calls}"
            )),
            "{op} in {metrics}"
        );
        assert!(metrics.contains(&format!(
            "shop_request_duration_seconds_count{{service=\"gateway\",door=\"bus\",op=\"{op}\"}}"
        )));
    }
}

#[tokio::test]
async fn the_api_refuses_missing_and_bad_tokens_and_keeps_service_statuses() {
    let shop = Shop::start().await;
    let http = reqwest::Client::new();
    let (status, body) = json_of(
        http.get(shop.url("/api/purchases"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].is_string());
    let (status, body) = json_of(
        http.get(shop.url("/api/purchases"))
            .bearer_auth("nope")
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "the token is invalid");
    let (status, body) = json_of(
        http.post(shop.url("/api/login"))
            .json(&json!({ "username": "victor", "password": "wrong" }))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid username or password");

    let token = shop.token("victor", "1234").await;
    for (body, status) in [
        (json!({ "article_id": 99 }), StatusCode::NOT_FOUND),
        (json!({ "article_id": "x" }), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
    ] {
        let (got, reply) = json_of(
            http.post(shop.url("/api/buy"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(got, status, "{body}");
        assert!(reply["error"].is_string());
    }
    let response = http
        .post(shop.url("/api/buy"))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(shop.purchase_lines(), 0);
}

#[tokio::test]
async fn a_stopped_service_is_a_quick_503_on_the_api_the_pages_and_readyz() {
    let mut shop = Shop::start().await;
    let http = browser();
    let token = shop.token("victor", "1234").await;
    assert_eq!(
        http.get(shop.url("/readyz"))
            .send()
            .await
            .expect("sent")
            .status(),
        StatusCode::OK
    );
    shop.orders.stop().await;

    // A hang would fail here (the request's own limit), not pass slowly.
    let (status, body) = json_of(
        http.get(shop.url("/api/purchases"))
            .bearer_auth(&token)
            .timeout(testkit::PATIENCE)
            .send()
            .await
            .expect("answered, not hung"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("orders service is unavailable")),
        "{body}"
    );

    let page = http
        .get(shop.url("/home"))
        .header(header::COOKIE, format!("shop_session={token}"))
        .send()
        .await
        .expect("sent");
    let (status, html) = text(page).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(html.contains("Service indisponible"));

    let (status, ready) = json_of(http.get(shop.url("/readyz")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["services"]["orders"], false);
    assert_eq!(ready["services"]["auth"], true);

    shop.auth.stop().await;
    let (status, _) = json_of(
        http.get(shop.url("/api/purchases"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no auth: 503, not 401"
    );
}

/// Stands in for orders instances of which every other one dies holding its request (as
/// one killed mid-flight does): of each subject's requests, the 1st, 3rd, ... are never
/// answered, the 2nd, 4th, ... are. Returns how many requests each subject received.
async fn orders_that_lose_every_other_request(
    nats: &async_nats::Client,
) -> std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> {
    use futures_util::StreamExt;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let mut requests = nats.subscribe("orders.>").await.expect("subscribe");
    // Its own probe coming back proves the server has the subscription.
    nats.publish("orders.probe", "".into())
        .await
        .expect("probe");
    while requests.next().await.expect("subscribed").subject.as_str() != "orders.probe" {}
    let (nats, counts) = (nats.clone(), std::sync::Arc::clone(&seen));
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let subject = request.subject.to_string();
            let n = {
                let mut counts = counts.lock().expect("lock");
                let n = counts.entry(subject.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let (Some(reply), true) = (request.reply, n % 2 == 0) else {
                continue;
            };
            let body = if subject == "orders.buy" {
                json!({"message": "Purchase successful", "article": {"id": 1, "name": "Article 1", "price": 1000},
                       "user": "victor", "id": "019a0000-0000-7000-8000-000000000001", "purchased_at": "2026-11-25T10:00:00Z"})
            } else {
                json!({"user": "victor", "purchases": [], "items": []})
            };
            // A view past any end of the stream: the gateway takes the page as it is.
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                bus_schema::orders::VIEW_NEXT_HEADER,
                u64::MAX.to_string().as_str(),
            );
            let _ = nats
                .publish_with_headers(reply, headers, body.to_string().into())
                .await;
        }
    });
    seen
}

#[tokio::test]
async fn a_request_lost_with_its_responder_is_sent_again_only_when_it_may_arrive_twice() {
    let mut shop = Shop::start().await;
    let http = browser();
    let token = shop.token("victor", "1234").await;
    shop.orders.stop().await;
    let seen = orders_that_lose_every_other_request(&shop.nats).await;
    let count = |subject: &str| {
        seen.lock()
            .expect("lock")
            .get(subject)
            .copied()
            .unwrap_or(0)
    };

    // A read may arrive twice: the second request is answered.
    let (status, body) = json_of(
        http.get(shop.url("/api/purchases"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count("orders.purchases"), 2);

    let buy = |key: Option<&'static str>| {
        let mut request = http
            .post(shop.url("/api/buy"))
            .bearer_auth(&token)
            .json(&json!({ "article_id": 1 }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move { json_of(request.send().await.expect("sent")).await }
    };
    // So may a buy with an idempotency key (the service records one purchase per key).
    let (status, body) = buy(Some("order-7")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(count("orders.buy"), 2);

    // A buy without a key is sent once: a second request would be a second purchase.
    let (status, body) = buy(None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(count("orders.buy"), 3);
}

#[tokio::test]
async fn the_gateways_openapi_document_lists_the_json_api_and_each_route_answers() {
    let shop = Shop::start().await;
    let doc: serde_json::Value = reqwest::get(shop.url("/openapi.json"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let token = shop.token("victor", "1234").await;
    testkit::check_openapi(
        &doc,
        &shop.url(""),
        Some(&token),
        &[
            "/api/login",
            "/api/logout",
            "/api/purchases",
            "/api/buy",
            "/api/status",
            "/readyz",
            "/metrics",
            "/healthz",
        ],
    )
    .await;
    // The HTML pages are not part of the JSON API's document.
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.contains_key("/") && !paths.contains_key("/home"));
}

#[tokio::test]
async fn the_gateway_serves_the_asyncapi_document_kept_in_docs() {
    let shop = Shop::start().await;
    let served: serde_json::Value = reqwest::get(shop.url("/asyncapi.json"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(served["asyncapi"], "3.0.0");
    assert_eq!(
        served["operations"]["orders.buy"]["bindings"]["nats"]["queue"],
        "q"
    );
    let kept = testkit::project_dir().join("docs/asyncapi.json");
    let pretty = serde_json::to_string_pretty(&served).expect("json") + "\n";
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&kept, &pretty).expect("write docs/asyncapi.json");
    }
    let on_disk = std::fs::read_to_string(&kept).unwrap_or_default();
    assert!(
        on_disk == pretty,
        "docs/asyncapi.json differs from what the gateway serves: run `UPDATE_DOCS=1 cargo test -p stack --test shop asyncapi`"
    );
}
