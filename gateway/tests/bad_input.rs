//! The bad-input sweep: every endpoint, on both doors, fed malformed JSON, wrong types,
//! empty and huge strings, NUL and control characters, non-UTF-8 bytes, look-alike
//! letters, path tricks and SQL fragments. Each gets a 4xx with a message (never a 500
//! or a panic), and nothing is written.

mod common;

use async_nats::service::NATS_SERVICE_ERROR_CODE;
use common::Shop;
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
        json!("1"),
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

/// Asserts a 4xx with a message for a person.
fn refused(what: &str, status: StatusCode, body: &str) {
    assert!(status.is_client_error(), "{what}: {status} {body}");
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    assert!(!message.trim().is_empty(), "{what}: no message");
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
    async fn http_json(&self, method: Method, url: String, body: Vec<u8>) {
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
        refused(&url, status, &response.text().await.expect("body"));
    }

    async fn http_get(&self, url: String) {
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("sent");
        let status = response.status();
        refused(&url, status, &response.text().await.expect("body"));
    }

    /// Sends `payload` on the bus and checks the error headers.
    async fn bus(&self, subject: &'static str, payload: Vec<u8>) {
        let reply = self
            .shop
            .nats
            .request(subject, payload.into())
            .await
            .expect("answered");
        let headers = reply
            .headers
            .unwrap_or_else(|| panic!("{subject}: no error headers"));
        let code: u16 = headers
            .get(NATS_SERVICE_ERROR_CODE)
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or_else(|| panic!("{subject}: no error code"));
        assert!((400..500).contains(&code), "{subject}: {code}");
        assert!(
            headers
                .get("Nats-Service-Error")
                .is_some_and(|m| !m.as_str().is_empty())
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
    for name in bad_names() {
        let account = json!({ "username": name, "password": "password1" });
        sweep
            .http_json(
                Method::POST,
                format!("{users}/users"),
                body(account.clone()),
            )
            .await;
        sweep
            .http_json(
                Method::POST,
                format!("{users}/users/verify"),
                body(account.clone()),
            )
            .await;
        sweep
            .http_json(
                Method::POST,
                format!("{auth}/auth/login"),
                body(account.clone()),
            )
            .await;
        sweep
            .http_json(Method::POST, shop.url("/api/login"), body(account.clone()))
            .await;
        sweep
            .http_json(
                Method::POST,
                format!("{auth}/auth/verify"),
                body(json!({ "token": name })),
            )
            .await;
        if !name.is_empty() {
            let segment = percent(&name);
            sweep.http_get(format!("{users}/users/{segment}")).await;
            sweep
                .http_get(format!("{orders}/orders/{segment}/purchases"))
                .await;
            sweep
                .http_json(
                    Method::POST,
                    format!("{orders}/orders/{segment}/buy"),
                    body(json!({ "article_id": 1 })),
                )
                .await;
        }
        for subject in ["users.create", "users.verify", "auth.login"] {
            sweep.bus(subject, body(account.clone())).await;
        }
        sweep
            .bus("users.get", body(json!({ "username": name })))
            .await;
        sweep
            .bus("orders.purchases", body(json!({ "username": name })))
            .await;
        sweep
            .bus(
                "orders.buy",
                body(json!({ "username": name, "article_id": 1 })),
            )
            .await;
        sweep
            .bus("auth.verify", body(json!({ "token": name })))
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
        let buy = json!({ "article_id": id });
        sweep
            .http_json(Method::POST, orders.clone(), body(buy.clone()))
            .await;
        sweep
            .http_json(Method::POST, shop.url("/api/buy"), body(buy))
            .await;
        sweep
            .bus(
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
                .http_json(Method::POST, url.clone(), raw.clone())
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
            sweep.bus(subject, raw.clone()).await;
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
            .http_json(Method::POST, url, body(account.clone()))
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
        sweep.bus(subject, body(under.clone())).await;
    }
    // A password longer than 1024 characters is refused before any hashing.
    let long = json!({ "username": "newbie", "password": "p".repeat(1025) });
    sweep
        .http_json(Method::POST, shop.users.url("/users"), body(long.clone()))
        .await;
    sweep.bus("users.verify", body(long)).await;
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
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("csrf") + marker.len();
    let csrf = html[start..start + 64].to_owned();
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
            assert!(status.is_client_error(), "{path} {name:?}: {status}");
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
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_ne!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
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
