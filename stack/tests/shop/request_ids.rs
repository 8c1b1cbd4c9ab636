//! One request id end to end: given to the gateway, it comes back in the reply and
//! travels in the `X-Request-Id` header of every bus request that request causes
//! (gateway -> auth -> users, gateway -> orders), where each service keeps it
//! on its log lines.

use std::collections::BTreeSet;

use crate::helpers::Shop;
use futures_util::StreamExt;
use serde_json::json;

/// Waits until `watcher` has seen a request on each of `subjects` carrying request id
/// `id`; panics after [`testkit::PATIENCE`] with what it saw.
async fn saw_requests(watcher: &mut async_nats::Subscriber, id: &str, subjects: &[&str]) {
    let wanted: BTreeSet<&str> = subjects.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let mut other = Vec::new();
    let deadline = tokio::time::Instant::now() + testkit::PATIENCE;
    while !wanted.iter().all(|s| seen.contains(*s)) {
        let Ok(Some(message)) = tokio::time::timeout_at(deadline, watcher.next()).await else {
            panic!("requests with id {id}: saw {seen:?}, wanted {wanted:?}; others: {other:?}");
        };
        let carried = message
            .headers
            .as_ref()
            .and_then(|h| h.get(bus_schema::REQUEST_ID_HEADER))
            .map(|v| v.as_str().to_owned());
        if carried.as_deref() == Some(id) {
            seen.insert(message.subject.to_string());
        } else {
            other.push((message.subject.to_string(), carried));
        }
    }
}

#[tokio::test]
async fn a_request_id_given_to_the_gateway_travels_in_every_bus_request_and_comes_back() {
    let shop = Shop::start().await;
    // A plain subscription sees a copy of every request; the services' queue group
    // still answers them.
    let mut watcher = shop
        .nats
        .subscribe("*.*")
        .await
        .expect("subscribe to requests");
    // The watcher's own probe coming back proves the server has the subscription (a
    // flush only empties our socket).
    shop.nats
        .publish("probe.ready", "".into())
        .await
        .expect("probe");
    loop {
        let seen = tokio::time::timeout(testkit::PATIENCE, watcher.next())
            .await
            .expect("the probe comes back")
            .expect("subscribed");
        if seen.subject.as_str() == "probe.ready" {
            break;
        }
    }
    let http = reqwest::Client::new();

    let login = http
        .post(shop.url("/api/login"))
        .header("X-Request-Id", "req-login-42")
        .json(&json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        login.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"req-login-42"[..])
    );
    let token = login.json::<serde_json::Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // auth passes the id on to users.
    saw_requests(
        &mut watcher,
        "req-login-42",
        &["auth.login", "users.verify"],
    )
    .await;

    let buy = http
        .post(shop.url("/api/buy"))
        .header("X-Request-Id", "req-buy-43")
        .bearer_auth(&token)
        .json(&json!({ "article_id": 1 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(buy.status(), 201);
    assert_eq!(
        buy.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"req-buy-43"[..])
    );
    saw_requests(&mut watcher, "req-buy-43", &["orders.buy"]).await;

    // Without an id the gateway makes one and returns it.
    let response = http.get(shop.url("/healthz")).send().await.expect("sent");
    let made = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(made.len(), 32, "{made}");
}
