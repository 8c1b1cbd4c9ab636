//! Both doors: malformed requests, the micro service, health.

use bus_schema::orders::{self};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_requests_get_a_4xx_on_both_doors() {
    let app = TestApp::spawn().await;
    let token = app.token("victor");
    for (body, content_type, expected) in [
        ("{oops", "application/json", 400),
        ("[1]", "application/json", 400),
        ("article_id=1", "application/x-www-form-urlencoded", 415),
    ] {
        let response = app
            .http
            .post(app.orders.url("/orders/victor/buy"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), expected, "{body}");
    }
    for (subject, payload) in [
        (orders::subject::BUY, b"{oops".to_vec()),
        (
            orders::subject::PURCHASES,
            br#"{"username": ["x"]}"#.to_vec(),
        ),
        (
            orders::subject::PURCHASES,
            br#"{"username": "a>b"}"#.to_vec(),
        ),
    ] {
        let reply = app
            .nats
            .request(subject, payload.into())
            .await
            .expect("answered");
        let headers = reply.headers.expect("error headers");
        assert_eq!(
            headers.get("Nats-Service-Error-Code").map(|v| v.as_str()),
            Some("400"),
            "{subject}"
        );
    }
    assert!(app.lines().is_empty());
}

#[tokio::test]
async fn the_micro_service_lists_its_endpoints_and_health_answers() {
    let app = TestApp::spawn().await;
    let subjects = testkit::micro_endpoints(&app.nats, "orders").await;
    assert_eq!(
        subjects,
        ["orders.articles", "orders.buy", "orders.purchases"]
    );
    assert_eq!(app.get("/healthz", None).await.0, StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.0, StatusCode::OK);
    buy_as(&app.nats, &app.auth, &buy_request("victor", json!(1)))
        .await
        .expect("201");
    let (_, metrics) = app.get("/metrics", None).await;
    let text = metrics.as_str().expect("text");
    assert!(text.contains("shop_purchases_appended_total 1"), "{text}");
    assert!(text.contains("shop_purchases_unwritten 0"), "{text}");
    assert!(
        text.contains(r#"door="nats",op="buy",status="200"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_answers() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    testkit::check_openapi(
        &doc,
        &app.orders.url(""),
        Some(&app.token("victor")),
        &[
            "/orders/articles",
            "/orders/{username}/purchases",
            "/orders/{username}/buy",
            "/readyz",
            "/metrics",
            "/healthz",
        ],
    )
    .await;
}
