//! The bad-input sweep: every endpoint, on both doors, fed malformed JSON, wrong types,
//! empty and huge strings, NUL and control characters, non-UTF-8 bytes, look-alike
//! letters, path tricks and SQL fragments. Each gets a 4xx with a message (never a 500
//! or a panic), and nothing is written.

use crate::helpers::Shop;
use async_nats::service::NATS_SERVICE_ERROR_CODE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Names that no account may have.
fn bad_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "",
        "   ",
        "vic\0tor",
        "a\nb",
        "tab\tname",
        "\u{1b}[31mred",
        "vıctor",
        "ѵictor",
        "victor\u{200b}",
        "ｖｉｃｔｏｒ",
        "../etc/passwd",
        "..",
        "%2e%2e",
        "*",
        ">",
        "a.b",
        "orders.>",
        "' OR '1'='1",
        "victor'; DROP TABLE users;--",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    names.push("x".repeat(33));
    names
}

/// Article ids that are not an article.
fn bad_article_ids() -> Vec<Value> {
    vec![
        json!(null),
        json!("1x"),
        json!(""),
        json!(1.5),
        json!(-1),
        json!(1e30),
        json!(true),
        json!([]),
        json!({}),
        json!("1; DROP TABLE"),
        json!(u64::MAX),
        json!(0),
    ]
}

/// Bodies that are not the JSON object an endpoint wants.
fn malformed_bodies() -> Vec<Vec<u8>> {
    vec![
        b"{".to_vec(),
        b"nul".to_vec(),
        b"[]".to_vec(),
        b"\"text\"".to_vec(),
        b"123".to_vec(),
        vec![0xff, 0xfe, 0x00],
        br#"{"username": 1, "password": true}"#.to_vec(),
        br#"{"username": ["a"], "token": 5, "article_id": {}}"#.to_vec(),
        b"{\"username\": \"a\0b\"}".to_vec(),
    ]
}

/// Asserts the exact refusal: the status, a stable reason and a message for a person.
fn refused(what: &str, expected: StatusCode, status: StatusCode, body: &str) {
    assert_eq!(status, expected, "{what}: {body}");
    let reply: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: {body}"));
    let message = reply["error"].as_str().unwrap_or_default();
    assert!(!message.trim().is_empty(), "{what}: no message");
    let reason = reply["reason"].as_str().unwrap_or_default();
    assert!(
        bus_schema::Reason::parse(reason).is_some(),
        "{what}: no known reason in {body}"
    );
}

struct Sweep {
    shop: Shop,
    http: reqwest::Client,
    token: String,
}

impl Sweep {
    async fn start() -> Self {
        let shop = Shop::start().await;
        let token = shop.token("victor", "1234").await;
        Self {
            shop,
            http: reqwest::Client::new(),
            token,
        }
    }

    /// Sends `body` as JSON (raw bytes) and checks the refusal.
    async fn http_json(&self, expected: StatusCode, method: Method, url: String, body: Vec<u8>) {
        let response = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
        let status = response.status();
        refused(
            &url,
            expected,
            status,
            &response.text().await.expect("body"),
        );
    }

    async fn http_get(&self, expected: StatusCode, url: String) {
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("sent");
        let status = response.status();
        refused(
            &url,
            expected,
            status,
            &response.text().await.expect("body"),
        );
    }

    /// Sends `payload` on the bus, with victor's token as the gateway sends it, and
    /// checks the error headers.
    async fn bus(&self, expected: StatusCode, subject: &'static str, payload: Vec<u8>) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Authorization", format!("Bearer {}", self.token).as_str());
        let reply = self
            .shop
            .nats
            .request_with_headers(subject, headers, payload.into())
            .await
            .expect("answered");
        let headers = reply
            .headers
            .unwrap_or_else(|| panic!("{subject}: no error headers"));
        let code: u16 = headers
            .get(NATS_SERVICE_ERROR_CODE)
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or_else(|| panic!("{subject}: no error code"));
        assert_eq!(code, expected.as_u16(), "{subject}");
        assert!(
            headers
                .get("Nats-Service-Error")
                .is_some_and(|m| !m.as_str().is_empty())
        );
        assert!(
            headers
                .get(bus_schema::error::REASON_HEADER)
                .and_then(|r| bus_schema::Reason::parse(r.as_str()))
                .is_some(),
            "{subject}: no known reason"
        );
    }
}

fn percent(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("json")
}

#[tokio::test]
async fn every_endpoint_refuses_bad_names_on_both_doors_and_writes_nothing() {
    let sweep = Sweep::start().await;
    let shop = &sweep.shop;
    let users = shop.users.url("");
    let auth = shop.auth.url("");
    let orders = shop.orders.url("");
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    for name in bad_names() {
        let account = json!({ "username": name, "password": "password1" });
        for url in [
            format!("{users}/users"),
            format!("{users}/users/verify"),
            format!("{auth}/auth/login"),
            shop.url("/api/login"),
        ] {
            sweep
                .http_json(BAD, Method::POST, url, body(account.clone()))
                .await;
        }
        // A blank token is missing (400); any other is not a token (401).
        let token_status = if name.trim().is_empty() {
            BAD
        } else {
            StatusCode::UNAUTHORIZED
        };
        sweep
            .http_json(
                token_status,
                Method::POST,
                format!("{auth}/auth/verify"),
                body(json!({ "token": name })),
            )
            .await;
        if !name.is_empty() {
            let segment = percent(&name);
            // A URL reads `..` (also as %2E%2E) as "the folder above": `/users/..` is
            // `/`, where nothing is; elsewhere a bad name in a path is a 400.
            let in_path = if name == ".." {
                StatusCode::NOT_FOUND
            } else {
                BAD
            };
            sweep
                .http_get(in_path, format!("{users}/users/{segment}"))
                .await;
            sweep
                .http_get(in_path, format!("{orders}/orders/{segment}/purchases"))
                .await;
            sweep
                .http_json(
                    in_path,
                    Method::POST,
                    format!("{orders}/orders/{segment}/buy"),
                    body(json!({ "article_id": 1 })),
                )
                .await;
        }
        for subject in ["users.create", "users.verify", "auth.login"] {
            sweep.bus(BAD, subject, body(account.clone())).await;
        }
        for subject in ["users.get", "orders.purchases"] {
            sweep
                .bus(BAD, subject, body(json!({ "username": name })))
                .await;
        }
        sweep
            .bus(
                BAD,
                "orders.buy",
                body(json!({ "username": name, "article_id": 1 })),
            )
            .await;
        sweep
            .bus(token_status, "auth.verify", body(json!({ "token": name })))
            .await;
    }
    nothing_written(shop);
}

#[tokio::test]
async fn bad_article_ids_and_malformed_bodies_are_refused_everywhere() {
    let sweep = Sweep::start().await;
    let shop = &sweep.shop;
    let orders = shop.orders.url("/orders/victor/buy");
    for id in bad_article_ids() {
        // An integer that names no article is a 404; anything else is not an id.
        let expected = if id.as_i64().is_some() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        let buy = json!({ "article_id": id });
        for url in [orders.clone(), shop.url("/api/buy")] {
            sweep
                .http_json(expected, Method::POST, url, body(buy.clone()))
                .await;
        }
        sweep
            .bus(
                expected,
                "orders.buy",
                body(json!({ "username": "victor", "article_id": id })),
            )
            .await;
    }
    let json_endpoints = [
        shop.users.url("/users"),
        shop.users.url("/users/verify"),
        shop.auth.url("/auth/login"),
        shop.auth.url("/auth/verify"),
        orders.clone(),
        shop.url("/api/login"),
        shop.url("/api/buy"),
    ];
    for raw in malformed_bodies() {
        for url in &json_endpoints {
            sweep
                .http_json(
                    StatusCode::BAD_REQUEST,
                    Method::POST,
                    url.clone(),
                    raw.clone(),
                )
                .await;
        }
        for subject in [
            "users.create",
            "users.verify",
            "users.get",
            "auth.login",
            "auth.verify",
            "orders.purchases",
            "orders.buy",
        ] {
            sweep
                .bus(StatusCode::BAD_REQUEST, subject, raw.clone())
                .await;
        }
    }
    nothing_written(shop);
}

#[tokio::test]
async fn huge_strings_are_refused_on_both_doors() {
    let sweep = Sweep::start().await;
    let shop = &sweep.shop;
    let megabyte = "x".repeat(1_000_000);
    let account = json!({ "username": megabyte, "password": megabyte });
    for url in [
        shop.users.url("/users"),
        shop.auth.url("/auth/login"),
        shop.url("/api/login"),
        shop.orders.url("/orders/victor/buy"),
    ] {
        sweep
            .http_json(
                StatusCode::PAYLOAD_TOO_LARGE,
                Method::POST,
                url,
                body(account.clone()),
            )
            .await;
    }
    // The bus carries at most 1 MB (nats.conf); just under it still gets a 413.
    let under = json!({ "username": "x".repeat(900_000) });
    for subject in [
        "users.create",
        "users.get",
        "auth.login",
        "auth.verify",
        "orders.buy",
    ] {
        sweep
            .bus(StatusCode::PAYLOAD_TOO_LARGE, subject, body(under.clone()))
            .await;
    }
    // A password longer than 1024 characters is refused before any hashing.
    let long = json!({ "username": "newbie", "password": "p".repeat(1025) });
    sweep
        .http_json(
            StatusCode::BAD_REQUEST,
            Method::POST,
            shop.users.url("/users"),
            body(long.clone()),
        )
        .await;
    sweep
        .bus(StatusCode::BAD_REQUEST, "users.verify", body(long))
        .await;
    nothing_written(shop);
}

#[tokio::test]
async fn the_forms_refuse_bad_names_with_a_page() {
    let sweep = Sweep::start().await;
    let shop = &sweep.shop;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let html = browser
        .get(shop.url("/register"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("html");
    let csrf = crate::helpers::csrf_of(&html);
    for name in bad_names() {
        for (path, fields) in [
            (
                "/register",
                vec![
                    ("username", name.as_str()),
                    ("password", "password1"),
                    ("confirm", "password1"),
                    ("csrf", &csrf),
                ],
            ),
            (
                "/",
                vec![
                    ("username", name.as_str()),
                    ("password", "password1"),
                    ("csrf", &csrf),
                ],
            ),
        ] {
            let response = browser
                .post(shop.url(path))
                .form(&fields)
                .send()
                .await
                .expect("sent");
            let status = response.status();
            let page = response.text().await.expect("html");
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {name:?}");
            assert!(
                page.contains("class=\"error\""),
                "{path} {name:?}: the form says what is wrong"
            );
        }
    }
    let response = browser
        .post(shop.url("/register"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, b'=', 0x00])
        .send()
        .await
        .expect("sent");
    // Bytes that are no form at all carry no CSRF token either: refused as a forged form.
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    nothing_written(shop);
}

/// Only the demo accounts exist, and no purchase was recorded.
fn nothing_written(shop: &Shop) {
    let db = rusqlite::Connection::open(shop.dir.path().join("users.db")).expect("users.db");
    let names: Vec<String> = db
        .prepare("SELECT username FROM users ORDER BY id")
        .expect("query")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("names");
    assert_eq!(names, ["victor", "kilian", "baptiste"]);
    assert_eq!(shop.purchase_lines(), 0);
}
