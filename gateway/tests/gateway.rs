//! The gateway against the real services: router-level checks, the JSON API, the pages
//! with a cookie jar, CSRF, and services that stop.

mod common;

use std::time::Duration;

use axum::{body::Body, http::Request};
use common::{SECRET, Shop};
use http_body_util::BodyExt;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A browser-like client: keeps cookies, does not follow redirects (so they are seen).
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF field in {html}"))
        + marker.len();
    html[start..start + 64].to_owned()
}

fn location(response: &reqwest::Response) -> &str {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn text(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.expect("json body"))
}

// ---------------------------------------------------------------- router level

#[tokio::test]
async fn the_router_serves_health_the_stylesheet_and_json_or_html_404s() {
    let shop = Shop::start().await;
    let mut config = gateway::Config::for_tests(shop.server.url());
    config.secure_cookies = true;
    let app = gateway::startup::router(gateway::state::AppState::new(&config, shop.nats.clone()));
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

// ---------------------------------------------------------------- JSON API

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
    for (op, calls) in [
        ("auth.login", 1),
        ("auth.verify", 2),
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
            .timeout(Duration::from_secs(10))
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
    nats.flush().await.expect("flush");
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
            let _ = nats.publish(reply, body.to_string().into()).await;
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

    // So may a buy with an idempotency key (the service records one purchase per key).
    let (status, body) = json_of(
        http.post(shop.url("/api/buy"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "order-7")
            .json(&json!({ "article_id": 1 }))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(count("orders.buy"), 2);

    // A buy without a key is sent once: a second request would be a second purchase.
    let (status, body) = json_of(
        http.post(shop.url("/api/buy"))
            .bearer_auth(&token)
            .json(&json!({ "article_id": 1 }))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(count("orders.buy"), 3);
}

// ---------------------------------------------------------------- pages

#[tokio::test]
async fn a_person_registers_logs_in_buys_sees_purchases_and_logs_out() {
    let shop = Shop::start().await;
    let http = browser();

    let (status, html) = text(http.get(shop.url("/register")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = csrf_of(&html);

    // A mismatch keeps the typed name.
    let (status, html) = text(
        http.post(shop.url("/register"))
            .form(&[
                ("username", "Alice"),
                ("password", "wonderland"),
                ("confirm", "wonderlanD"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("ne correspondent pas"));
    assert!(html.contains("value=\"Alice\""));
    // A broken rule is said in French.
    let (status, html) = text(
        http.post(shop.url("/register"))
            .form(&[
                ("username", "alice"),
                ("password", "short"),
                ("confirm", "short"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("au moins 8 caractères"), "{html}");

    let response = http
        .post(shop.url("/register"))
        .form(&[
            ("username", "Alice"),
            ("password", "wonderland"),
            ("confirm", "wonderland"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/?registered=alice");
    let (_, html) = text(
        http.get(shop.url("/?registered=alice"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert!(html.contains("Compte « alice » créé"));

    // A taken name.
    let (status, html) = text(
        http.post(shop.url("/register"))
            .form(&[
                ("username", "alice"),
                ("password", "wonderland"),
                ("confirm", "wonderland"),
                ("csrf", &csrf),
            ])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains("déjà pris"));

    // A wrong password shows the form again.
    let (status, html) = text(
        http.post(shop.url("/"))
            .form(&[("username", "alice"), ("password", "nope"), ("csrf", &csrf)])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("mot de passe incorrect"));

    let response = http
        .post(shop.url("/"))
        .form(&[
            ("username", "Alice"),
            ("password", "wonderland"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/home");
    let session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("shop_session="))
        .expect("session cookie")
        .to_owned();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/")
    );
    assert!(session.contains("Max-Age=1800"), "{session}");

    let (status, html) = text(http.get(shop.url("/purchases")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("rien acheté"));

    let (status, html) = text(http.get(shop.url("/home")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Bonjour alice"));
    assert!(html.contains("10,00\u{a0}€") && html.contains("30,00\u{a0}€"));
    assert!(html.contains("action=\"/buy/2\""));

    let (status, html) = text(http.get(shop.url("/buy/2")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Confirmer l'achat"));
    assert_eq!(shop.purchase_lines(), 0, "a GET records nothing");
    let csrf = csrf_of(&html);
    for article in ["2", "1"] {
        let (status, html) = text(
            http.post(shop.url(&format!("/buy/{article}")))
                .form(&[("csrf", csrf.as_str()), ("key", &format!("form-{article}"))])
                .send()
                .await
                .expect("sent"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(&format!(
                "Bravo alice, achat enregistré pour Article {article} !"
            )),
            "{html}"
        );
    }
    // The same rendered form sent twice is one purchase.
    http.post(shop.url("/buy/1"))
        .form(&[("csrf", csrf.as_str()), ("key", "form-1")])
        .send()
        .await
        .expect("sent");
    assert_eq!(shop.purchase_lines(), 2);

    let (status, html) = text(http.get(shop.url("/purchases")).send().await.expect("sent")).await;
    assert_eq!(status, StatusCode::OK);
    let newest = html.find("Article 1").expect("article 1 listed");
    let oldest = html.find("Article 2").expect("article 2 listed");
    assert!(newest < oldest, "newest first");
    assert!(html.contains("30,00\u{a0}€"), "the total");

    let response = http.get(shop.url("/logout")).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
    let response = http.get(shop.url("/home")).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/");
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused() {
    let shop = Shop::start().await;
    let http = browser();
    let (_, html) = text(http.get(shop.url("/")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    let other = "0".repeat(64);
    for form in [
        vec![("username", "victor"), ("password", "1234")],
        vec![
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", other.as_str()),
        ],
    ] {
        let response = http
            .post(shop.url("/"))
            .form(&form)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    let response = http
        .post(shop.url("/register"))
        .form(&[
            ("username", "mallory"),
            ("password", "password1"),
            ("confirm", "password1"),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Logged in, a buy without the token records nothing.
    http.post(shop.url("/"))
        .form(&[
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    let response = http
        .post(shop.url("/buy/1"))
        .form(&[("key", "x")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Another browser (no CSRF cookie) replaying the token is refused too.
    let token = shop.token("victor", "1234").await;
    let response = reqwest::Client::new()
        .post(shop.url("/buy/1"))
        .header(header::COOKIE, format!("shop_session={token}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(shop.purchase_lines(), 0);
    let response = http
        .get(shop.url("/users/verify"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_behind_login_redirect_and_an_expired_session_says_so() {
    let shop = Shop::start().await;
    let http = browser();
    for path in ["/home", "/purchases", "/buy/1"] {
        let response = http.get(shop.url(path)).send().await.expect("sent");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": "victor", "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600, "jti": "x", "iss": "shop-auth" }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token");
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(shop.url("/home"))
        .header(header::COOKIE, format!("shop_session={expired}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/?expired=1");
    let cleared = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        cleared.starts_with("shop_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (_, html) = text(
        http.get(shop.url("/?expired=1"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert!(html.contains("session a expiré"));
}

#[tokio::test]
async fn an_unknown_article_is_a_404_page() {
    let shop = Shop::start().await;
    let http = browser();
    let (_, html) = text(http.get(shop.url("/")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    http.post(shop.url("/"))
        .form(&[
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    for path in ["/buy/99", "/buy/abc"] {
        let (status, html) = text(http.get(shop.url(path)).send().await.expect("sent")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("Page introuvable"));
    }
    let (status, _) = text(
        http.post(shop.url("/buy/99"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(shop.purchase_lines(), 0);
}

#[tokio::test]
async fn an_address_with_too_many_failed_logins_gets_429_on_the_api_and_the_form() {
    let shop = Shop::start_with(|c| c.max_failed_logins_per_address = 3).await;
    let http = browser();
    // Successes never count: log in fine several times first.
    for _ in 0..4 {
        let response = http
            .post(shop.url("/api/login"))
            .json(&json!({ "username": "victor", "password": "1234" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Three failures on three accounts (each account stays under its own limit).
    for name in ["kilian", "baptiste", "nobody"] {
        let response = http
            .post(shop.url("/api/login"))
            .json(&json!({ "username": name, "password": "wrong" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = http
        .post(shop.url("/api/login"))
        .json(&json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(retry > 0 && retry <= 300);
    let (_, body) = json_of(response).await;
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("your address"))
    );

    let (_, html) = text(http.get(shop.url("/")).send().await.expect("sent")).await;
    let csrf = csrf_of(&html);
    let response = http
        .post(shop.url("/"))
        .form(&[
            ("username", "victor"),
            ("password", "1234"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let (_, html) = text(response).await;
    assert!(html.contains("Trop de tentatives"));
}

// ---------------------------------------------------------------- watching

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
    let (status, body) = json_of(
        http.get(shop.url("/api/status"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
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
    assert_eq!(endpoints("auth"), ["auth.login", "auth.verify"]);
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
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("no event with {needles:?} within 10 s"))
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
