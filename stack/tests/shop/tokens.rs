//! Tokens checked where they are used: revocation seen by every gateway and orders
//! instance, the bus refusing to act for someone without their token, and the shop
//! serving with every auth instance stopped.

use std::time::{Duration, Instant};

use bus_schema::{
    CallOptions, ErrorCode,
    orders::{self, BuyRequest, PurchasesRequest},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::Running;

use crate::helpers::{Shop, json_of};

async fn another_gateway(shop: &Shop) -> Running {
    Running::spawn(
        gateway::build(gateway::Config::for_tests(shop.server.url()))
            .await
            .expect("gateway builds"),
    )
}

async fn another_orders(shop: &Shop, dir: &std::path::Path) -> Running {
    Running::spawn(
        ::orders::build(::orders::Config::for_tests(shop.server.url(), dir))
            .await
            .expect("orders builds"),
    )
}

async fn login(shop: &Shop) -> String {
    let (status, body) = json_of(
        reqwest::Client::new()
            .post(shop.url("/api/login"))
            .json(&json!({ "username": "victor", "password": "1234" }))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

/// The status and reason of reading victor's history on `url` with `token`.
async fn read(url: String, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits until `url` refuses `token` as revoked (at most [`testkit::PATIENCE`]: the
/// promise is a second, but this test checks that it happens, not how fast); how long
/// that took.
async fn refused_as_revoked(url: String, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = read(url.clone(), token).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["reason"], "token_revoked", "{url}: {body}");
            return started.elapsed();
        }
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        assert!(
            started.elapsed() < testkit::PATIENCE,
            "{url} still takes the token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_logout_is_refused_by_every_gateway_and_orders_instance_also_after_their_restart() {
    let shop = Shop::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut gateway2 = another_gateway(&shop).await;
    let mut orders2 = another_orders(&shop, dir.path()).await;
    let (token, other) = (login(&shop).await, login(&shop).await);
    let urls = |gateway: &Running, orders: &Running| {
        [
            shop.url("/api/purchases"),
            gateway.url("/api/purchases"),
            shop.orders.url("/orders/victor/purchases"),
            orders.url("/orders/victor/purchases"),
        ]
    };
    for url in urls(&gateway2, &orders2) {
        assert_eq!(read(url.clone(), &token).await.0, StatusCode::OK, "{url}");
    }

    let response = reqwest::Client::new()
        .post(shop.url("/api/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for url in urls(&gateway2, &orders2) {
        let took = refused_as_revoked(url.clone(), &token).await;
        println!(
            "{url} refused the revoked token after {} ms",
            took.as_millis()
        );
        assert_eq!(
            read(url.clone(), &other).await.0,
            StatusCode::OK,
            "the other token on {url}"
        );
    }

    // Restarted, they read the revocations again from the stream.
    gateway2.stop().await;
    orders2.stop().await;
    let gateway2 = another_gateway(&shop).await;
    let orders2 = another_orders(&shop, dir.path()).await;
    for url in [
        gateway2.url("/api/purchases"),
        orders2.url("/orders/victor/purchases"),
    ] {
        let (status, body) = read(url.clone(), &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}: {body}");
        assert_eq!(body["reason"], "token_revoked");
        assert_eq!(read(url.clone(), &other).await.0, StatusCode::OK, "{url}");
    }
}

#[tokio::test]
async fn nobody_buys_or_reads_for_someone_on_the_bus_without_their_token() {
    let shop = Shop::start().await;
    let victor = login(&shop).await;
    let kilian = shop.token("kilian", "abcd").await;
    let buy = BuyRequest {
        username: "victor".into(),
        article_id: json!(1),
        idempotency_key: None,
    };
    let read = PurchasesRequest::of("victor");
    let as_token = |token: &str| CallOptions::default().bearer(token);
    for (what, opts, code, reason) in [
        (
            "no token",
            CallOptions::default(),
            ErrorCode::Unauthorized,
            "token_required",
        ),
        (
            "kilian's token",
            as_token(&kilian),
            ErrorCode::Forbidden,
            "other_user",
        ),
        (
            "a forged token",
            as_token("eyJhbGciOiJFZERTQSJ9.e30.AAAA"),
            ErrorCode::Unauthorized,
            "token_invalid",
        ),
    ] {
        let err = orders::buy_with(&shop.nats, &buy, &opts)
            .await
            .expect_err(what);
        assert_eq!(
            (err.code(), err.into_reply().reason.as_str()),
            (code, reason),
            "buy with {what}"
        );
        let err = orders::purchases_with(&shop.nats, &read, &opts)
            .await
            .expect_err(what);
        assert_eq!(
            (err.code(), err.into_reply().reason.as_str()),
            (code, reason),
            "read with {what}"
        );
    }
    assert_eq!(shop.purchase_lines(), 0, "nothing was bought");
    orders::buy_with(&shop.nats, &buy, &as_token(&victor))
        .await
        .expect("victor's own token buys");
    let history = orders::purchases_with(&shop.nats, &read, &as_token(&victor))
        .await
        .expect("read");
    assert_eq!(history.items.len(), 1);
}

#[tokio::test]
async fn the_shop_serves_tokens_with_every_auth_instance_stopped() {
    let mut shop = Shop::start().await;
    let token = login(&shop).await;
    shop.auth.stop().await;
    let http = reqwest::Client::new();
    let bought = http
        .post(shop.url("/api/buy"))
        .bearer_auth(&token)
        .json(&json!({ "article_id": 2 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(bought.status(), StatusCode::CREATED);
    assert_eq!(
        read(shop.url("/api/purchases"), &token).await.0,
        StatusCode::OK
    );
    // A gateway started now, while no auth runs, gets the keys from the stream.
    let late = another_gateway(&shop).await;
    let (status, body) = read(late.url("/api/purchases"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
}
