//! The gateway's router on its own (tower `oneshot`): health, the stylesheet, 404s and
//! the headers every page carries.

use axum::{body::Body, http::Request};
use http_body_util::BodyExt;
use reqwest::{StatusCode, header};
use tower::ServiceExt;

use crate::helpers::{Shop, browser};

#[tokio::test]
async fn the_router_serves_health_the_stylesheet_and_json_or_html_404s() {
    let shop = Shop::start().await;
    let mut config = gateway::Config::for_tests(shop.server.url());
    config.secure_cookies = true;
    let app = gateway::startup::router(gateway::state::AppState::new(
        &config,
        shop.nats.clone(),
        [7; 32],
    ));
    let call = |path: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(Request::get(path).body(Body::empty()).expect("request"))
                .await
                .expect("infallible");
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .unwrap_or_default();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (
                status,
                content_type,
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    let (status, _, body) = call("/healthz").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"ok"}"#)
    );
    let (status, content_type, body) = call("/static/style.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/css"));
    assert!(body.contains("--accent"));
    let (status, content_type, body) = call("/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(content_type.starts_with("text/html"));
    assert!(body.contains("Page introuvable"));
    let (status, content_type, body) = call("/api/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert!(body.contains("error"));
    let (status, _, body) = call("/api/purchases").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Bearer"));
    // Secure cookies when configured for HTTPS.
    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let shop = Shop::start().await;
    let response = browser().get(shop.url("/")).send().await.expect("sent");
    let headers = response.headers();
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(
        headers.get("x-content-type-options").map(|v| v.as_bytes()),
        Some(&b"nosniff"[..])
    );
    assert_eq!(
        headers.get("x-frame-options").map(|v| v.as_bytes()),
        Some(&b"DENY"[..])
    );
    assert!(headers.get("referrer-policy").is_some());
}
