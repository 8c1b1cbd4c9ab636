//! Watching the system: the status page and the live activity feed.

use std::time::Duration;

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{Shop, json_of, text};

#[tokio::test]
async fn the_status_lists_every_service_with_its_endpoints() {
    let shop = Shop::start_with(|c| {
        c.nats_monitor_url = None;
    })
    .await;
    let http = reqwest::Client::new();
    // Some traffic, so that counters move.
    http.post(shop.url("/api/login"))
        .json(&json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("sent");
    let body = api_status(&shop, &http).await;
    let services = body["services"].as_array().expect("services");
    let mut names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["auth", "orders", "users"]);
    let endpoints = |name: &str| -> Vec<String> {
        let service = services
            .iter()
            .find(|s| s["name"] == name)
            .expect("service");
        assert!(service["id"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(service["version"], env!("CARGO_PKG_VERSION"));
        let mut subjects: Vec<String> = service["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .filter_map(|e| e["subject"].as_str().map(str::to_owned))
            .collect();
        subjects.sort_unstable();
        subjects
    };
    assert_eq!(
        endpoints("auth"),
        ["auth.login", "auth.logout", "auth.verify"]
    );
    assert_eq!(
        endpoints("users"),
        ["users.create", "users.get", "users.verify"]
    );
    assert_eq!(
        endpoints("orders"),
        ["orders.articles", "orders.buy", "orders.purchases"]
    );
    let auth = services.iter().find(|s| s["name"] == "auth").expect("auth");
    let login = auth["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["subject"] == "auth.login")
        .expect("login");
    assert!(
        login["requests"].as_u64().is_some_and(|n| n >= 1),
        "{login}"
    );
    assert!(
        body["nats"]["error"].is_string(),
        "no monitoring address in this test"
    );

    let (status, html) = text(http.get(shop.url("/status")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("orders.buy") && html.contains("http-equiv=\"refresh\""));
}

#[tokio::test]
async fn the_status_page_lists_the_slowest_recent_requests_with_their_ids() {
    let shop = Shop::start().await;
    let http = reqwest::Client::new();
    // A login costs a password hash: slower than anything else asked here.
    let login = http
        .post(shop.url("/api/login"))
        .header("X-Request-Id", "the-slow-login")
        .json(&json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(login.status(), StatusCode::OK);
    let body = api_status(&shop, &http).await;
    let slowest = &body["slowest"];
    assert_eq!(slowest["tracing"], false, "no OTLP endpoint in this test");
    assert!(slowest["trace_ui"].is_null());
    let requests = slowest["requests"].as_array().expect("requests");
    let login = requests
        .iter()
        .find(|r| r["request_id"] == "the-slow-login")
        .unwrap_or_else(|| panic!("the login is not among {requests:?}"));
    assert_eq!(login["route"], "POST /api/login");
    assert_eq!(login["status"], 200);
    assert!(login["milliseconds"].as_f64().is_some_and(|ms| ms > 0.0));
    assert!(login["trace_id"].is_null());
    let times: Vec<f64> = requests
        .iter()
        .filter_map(|r| r["milliseconds"].as_f64())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "not slowest first: {times:?}"
    );

    let (status, html) = text(http.get(shop.url("/status")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    // minijinja writes `/` as `&#x2f;` in HTML.
    let html = html.replace("&#x2f;", "/");
    assert!(
        html.contains("<td>POST /api/login</td>") && html.contains("the-slow-login"),
        "{html}"
    );
}

/// `GET /api/status`, which must answer 200.
async fn api_status(shop: &Shop, http: &reqwest::Client) -> Value {
    let (status, body) = json_of(
        http.get(shop.url("/api/status"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    body
}

/// Reads SSE chunks until one contains all of `needles`.
async fn wait_for_event(response: &mut reqwest::Response, needles: &[&str]) -> String {
    let mut seen = String::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.expect("stream") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(event) = seen
                .split("\n\n")
                .find(|e| needles.iter().all(|n| e.contains(n)))
            {
                return event.to_owned();
            }
        }
        panic!("the stream ended: {seen}");
    };
    tokio::time::timeout(testkit::PATIENCE, read)
        .await
        .unwrap_or_else(|_| panic!("no event with {needles:?} within {:?}", testkit::PATIENCE))
}

#[tokio::test]
async fn the_activity_feed_delivers_purchases_made_after_connecting_with_names_masked() {
    let shop = Shop::start().await;
    let victor = shop.token("victor", "1234").await;
    let kilian = shop.token("kilian", "abcd").await;
    let mut feed = reqwest::Client::new()
        .get(shop.url("/activity/events"))
        .header(header::COOKIE, format!("shop_session={victor}"))
        .send()
        .await
        .expect("connected");
    assert_eq!(feed.status(), StatusCode::OK);
    assert!(
        feed.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );

    let http = reqwest::Client::new();
    for (token, article) in [(&victor, 2), (&kilian, 3)] {
        let response = http
            .post(shop.url("/api/buy"))
            .bearer_auth(token)
            .json(&json!({ "article_id": article }))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let own = wait_for_event(&mut feed, &["Article 2"]).await;
    assert!(own.contains("\"user\":\"victor\""), "{own}");
    let other = wait_for_event(&mut feed, &["Article 3"]).await;
    assert!(
        other.contains("\"user\":\"k•••\"") && !other.contains("kilian"),
        "{other}"
    );
}

#[tokio::test]
async fn the_activity_feed_opens_with_the_latest_purchases_and_sign_ups() {
    let shop = Shop::start().await;
    let victor = shop.token("victor", "1234").await;
    let http = reqwest::Client::new();
    // Before anyone watches: 25 purchases (only the last 20 events are shown) and a sign-up.
    for n in 0..25 {
        let response = http
            .post(shop.url("/api/buy"))
            .bearer_auth(&victor)
            .json(&json!({ "article_id": 1 + n % 3 }))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let signup = http
        .post(shop.users.url("/users"))
        .json(&json!({ "username": "zelda", "password": "long enough" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(signup.status(), StatusCode::CREATED);

    let mut feed = http
        .get(shop.url("/activity/events"))
        .send()
        .await
        .expect("connected");
    assert_eq!(feed.status(), StatusCode::OK);
    let mut text = String::new();
    while text.matches("event: activity").count() < 20 {
        let chunk = tokio::time::timeout(testkit::PATIENCE, feed.chunk())
            .await
            .expect("the recent events come at once")
            .expect("read")
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("data:")).collect();
    assert_eq!(lines.len(), 20, "the latest 20: {text}");
    assert!(
        lines.iter().filter(|l| l.contains("purchase")).count() == 19,
        "{text}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("signup") && l.contains("z•••")),
        "the sign-up, the latest, comes last and masked: {text}"
    );
    assert!(
        !text.contains("victor") && !text.contains("zelda"),
        "names masked: {text}"
    );
}

#[tokio::test]
async fn the_status_page_draws_each_services_last_minutes() {
    let shop = Shop::start().await;
    let http = reqwest::Client::new();
    let token = shop.token("victor", "1234").await;
    // Traffic until two samples (5 s apart) have seen it: pages, which orders answers
    // each time (a whole history read again is the gateway's copy).
    let mut drawn = None;
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        for _ in 0..5 {
            let response = http
                .get(shop.url("/api/purchases?limit=5"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent");
            assert_eq!(response.status(), StatusCode::OK);
        }
        let status: Value = http
            .get(shop.url("/api/status"))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        let orders = status["history"]
            .as_array()
            .and_then(|h| h.iter().find(|g| g["service"] == "orders").cloned());
        if let Some(orders) = orders.filter(|g| g["requests_per_second"].as_f64() > Some(0.0)) {
            drawn = Some(orders);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let orders = drawn.expect("the orders graph shows requests");
    assert!(
        orders["average_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{orders}"
    );
    let page = http
        .get(shop.url("/status"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("<svg class=\"graph\"") && page.contains("<polyline"),
        "{page}"
    );
    assert!(page.contains("Les dernières minutes"));
}

#[tokio::test]
async fn one_address_keeps_only_a_few_live_feeds_open() {
    let shop = Shop::start().await;
    let http = reqwest::Client::new();
    let mut open = Vec::new();
    for _ in 0..gateway::state::MAX_FEEDS_PER_ADDRESS {
        let feed = http
            .get(shop.url("/activity/events"))
            .send()
            .await
            .expect("connected");
        assert_eq!(feed.status(), StatusCode::OK);
        open.push(feed);
    }
    let (status, body) = json_of(
        http.get(shop.url("/activity/events"))
            .send()
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["reason"], "too_many_requests");
    // The pages still answer.
    let page = http.get(shop.url("/activity")).send().await.expect("sent");
    assert_eq!(page.status(), StatusCode::OK);
    drop(open);
}
