//! The orders service through both doors, with the real users and auth services, a real
//! nats-server with JetStream and a temp data directory.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use async_nats::jetstream;
use bus_schema::{
    ErrorCode,
    orders::{self, BuyRequest, PurchasedEvent, PurchasesRequest},
};
use common::read_lines;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::{NatsServer, Running};

mod common;

const SECRET: &str = "a test key that is long enough for HS256!";

struct TestApp {
    orders: Running,
    _users: Running,
    _auth: Running,
    http: reqwest::Client,
    nats: async_nats::Client,
    js: jetstream::Context,
    dir: TempDir,
    server: NatsServer,
}

impl TestApp {
    async fn spawn() -> Self {
        Self::spawn_prepared(|_| {}).await
    }

    /// Starts everything after `prepare` has put files in the data directory.
    async fn spawn_prepared(prepare: impl FnOnce(&Path)) -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        prepare(dir.path());
        let users = Running::spawn(
            users::build(users::Config::for_tests(
                server.url(),
                dir.path().join("users.db"),
            ))
            .await
            .expect("users builds"),
        );
        let mut auth_config = auth::Config::for_tests(server.url(), dir.path().join("secrets"));
        auth_config.jwt_secret = Some(auth::config::Secret::new(SECRET));
        let auth = Running::spawn(auth::build(auth_config).await.expect("auth builds"));
        let orders = Running::spawn(
            ::orders::build(::orders::Config::for_tests(server.url(), dir.path()))
                .await
                .expect("orders builds"),
        );
        let nats = async_nats::connect(server.url()).await.expect("connect");
        Self {
            orders,
            _users: users,
            _auth: auth,
            http: reqwest::Client::new(),
            js: jetstream::new(nats.clone()),
            nats,
            dir,
            server,
        }
    }

    fn purchases_file(&self) -> PathBuf {
        self.dir.path().join("purchases.json")
    }

    /// The lines of purchases.json, parsed.
    fn lines(&self) -> Vec<Value> {
        read_lines(&self.purchases_file())
    }

    async fn restart_orders(&mut self) {
        self.orders.stop().await;
        self.orders = Running::spawn(
            ::orders::build(::orders::Config::for_tests(
                self.server.url(),
                self.dir.path(),
            ))
            .await
            .expect("orders rebuilds"),
        );
    }

    async fn token(&self, username: &str, password: &str) -> String {
        let reply = bus_schema::auth::login(
            &self.nats,
            &bus_schema::auth::LoginRequest {
                username: username.into(),
                password: password.into(),
            },
        )
        .await
        .expect("login");
        reply.access_token
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(self.orders.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.expect("sent")).await
    }

    async fn buy(
        &self,
        user: &str,
        token: &str,
        body: Value,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.orders.url(&format!("/orders/{user}/buy")))
            .bearer_auth(token)
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        read(request.send().await.expect("sent")).await
    }

    /// Stops orders as Ctrl-C would; events published next wait in the stream.
    async fn stop_orders(&mut self) {
        self.orders.stop().await;
    }

    /// Waits until orders, auth and this test's client are connected to the server again.
    async fn reconnected(&self, token: &str) {
        let verify = bus_schema::auth::VerifyRequest {
            token: token.into(),
        };
        for _ in 0..200 {
            let (_, body) = self.get("/readyz", None).await;
            if body["nats"] == true && bus_schema::auth::verify(&self.nats, &verify).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("orders, auth or the test's client did not reconnect within 10 s");
    }

    /// Waits until every purchase event the stream holds has its line in the file.
    async fn settled(&self) {
        let mut missing = Vec::new();
        for _ in 0..200 {
            let written: std::collections::HashSet<String> = self
                .lines()
                .iter()
                .filter_map(|l| l["id"].as_str().map(str::to_owned))
                .collect();
            missing = stream_ids(&self.js)
                .await
                .into_iter()
                .filter(|id| !written.contains(id))
                .collect();
            if missing.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("events of the stream still not in the file after 10 s: {missing:?}");
    }
}

/// The ids of the purchase events in the `ORDERS` stream, in stream order.
async fn stream_ids(js: &jetstream::Context) -> Vec<String> {
    let stream = js.get_stream(orders::STREAM).await.expect("stream");
    let state = stream.get_info().await.expect("info").state;
    let mut ids = Vec::new();
    for seq in state.first_sequence.max(1)..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(seq).await {
            let event: Value = serde_json::from_slice(&message.payload).expect("an event");
            ids.push(event["id"].as_str().expect("an id").to_owned());
        }
    }
    ids
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
}

fn buy_request(user: &str, article_id: Value) -> BuyRequest {
    BuyRequest {
        username: user.into(),
        article_id,
        idempotency_key: None,
    }
}

/// Publishes an event as the orders service would, returning its stream sequence.
async fn publish(js: &jetstream::Context, event: &PurchasedEvent) -> u64 {
    common::publish(js, event, &event.id).await
}

fn event(user: &str, article: u32) -> PurchasedEvent {
    PurchasedEvent {
        id: uuid::Uuid::now_v7().to_string(),
        username: user.into(),
        article: orders::Article {
            id: article,
            name: format!("Article {article}"),
            price: article * 1000,
        },
        purchased_at: "2026-11-23T12:00:00Z".into(),
        idempotency_key: None,
    }
}

// ---------------------------------------------------------------- reads

#[tokio::test]
async fn the_catalogue_needs_a_token_and_lists_the_original_articles() {
    let app = TestApp::spawn().await;
    let token = app.token("victor", "1234").await;
    let (status, body) = app.get("/orders/articles", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "articles": [
            { "id": 1, "name": "Article 1", "price": 1000 },
            { "id": 2, "name": "Article 2", "price": 2000 },
            { "id": 3, "name": "Article 3", "price": 3000 },
        ]})
    );
    let (status, body) = app.get("/orders/articles", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("Bearer"));
    let (status, body) = app.get("/orders/articles", Some("garbage")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&body), "the token is invalid");

    let bus = orders::articles(&app.nats, &orders::ArticlesRequest {})
        .await
        .expect("bus");
    assert_eq!(bus.articles.len(), 3);
    let raw = app
        .nats
        .request(orders::subject::ARTICLES, "".into())
        .await
        .expect("empty body works");
    assert!(raw.headers.is_none());
}

#[tokio::test]
async fn a_catalogue_file_replaces_the_original() {
    let app = TestApp::spawn_prepared(|dir| {
        std::fs::write(
            dir.join("catalog.json"),
            r#"[{"id": 9, "name": "Vélo", "price": 19900}]"#,
        )
        .expect("write");
    })
    .await;
    let bus = orders::articles(&app.nats, &orders::ArticlesRequest {})
        .await
        .expect("bus");
    assert_eq!(
        bus.articles,
        vec![orders::Article {
            id: 9,
            name: "Vélo".into(),
            price: 19900
        }]
    );
}

#[tokio::test]
async fn a_malformed_catalogue_stops_start_up_naming_the_file() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("catalog.json"), "[{\"id\": 1,").expect("write");
    let err = ::orders::build(::orders::Config::for_tests(server.url(), dir.path()))
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("catalog.json"), "{err}");
}

#[tokio::test]
async fn purchases_are_private_and_empty_for_a_new_buyer() {
    let app = TestApp::spawn().await;
    let token = app.token("victor", "1234").await;
    let (status, body) = app.get("/orders/VICTOR/purchases", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "user": "victor", "purchases": [], "items": [] })
    );
    let (status, body) = app.get("/orders/kilian/purchases", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_of(&body).contains("logged in as victor"));
    assert_eq!(
        app.get("/orders/kilian/purchases", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------- buying

#[tokio::test]
async fn a_buy_is_on_disk_and_in_the_history_when_it_is_answered_in_order() {
    let app = TestApp::spawn().await;
    let token = app.token("victor", "1234").await;
    let mut ids = Vec::new();
    for article in [2, 1, 3] {
        let (status, body) = app
            .buy("victor", &token, json!({ "article_id": article }), None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["message"], "Purchase successful");
        assert_eq!(body["user"], "victor");
        assert_eq!(body["article"]["id"], article);
        let id = body["id"].as_str().expect("id").to_owned();
        // On disk before the answer: the line is there now.
        assert!(
            app.lines().iter().any(|l| l["id"] == id.as_str()),
            "line of {id}"
        );
        ids.push(id);
    }
    let (status, body) = app.get("/orders/victor/purchases", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["purchases"],
        json!(["Article 2", "Article 1", "Article 3"])
    );
    let item_ids: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(item_ids, ids);
    assert!(
        body["items"][0]["purchased_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let lines = app.lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["username"], "victor");
    assert_eq!(lines[0]["article"]["name"], "Article 2");
    assert!(lines[0]["seq"].as_u64().is_some_and(|s| s >= 1));

    let bus = orders::purchases(
        &app.nats,
        &PurchasesRequest {
            username: "Victor".into(),
        },
    )
    .await
    .expect("bus");
    assert_eq!(bus.purchases, ["Article 2", "Article 1", "Article 3"]);
}

#[tokio::test]
async fn bad_buys_get_the_statuses_of_the_original() {
    let app = TestApp::spawn().await;
    let token = app.token("victor", "1234").await;
    let cases = [
        (
            "victor",
            json!({}),
            StatusCode::BAD_REQUEST,
            "article_id is required",
        ),
        (
            "victor",
            json!({ "article_id": "2" }),
            StatusCode::BAD_REQUEST,
            "must be an integer",
        ),
        (
            "victor",
            json!({ "article_id": 1.5 }),
            StatusCode::BAD_REQUEST,
            "must be an integer",
        ),
        (
            "victor",
            json!({ "article_id": 99 }),
            StatusCode::NOT_FOUND,
            "no article with id 99",
        ),
        (
            "victor",
            json!({ "article_id": -1 }),
            StatusCode::NOT_FOUND,
            "no article with id -1",
        ),
        (
            "kilian",
            json!({ "article_id": 1 }),
            StatusCode::FORBIDDEN,
            "logged in as victor",
        ),
    ];
    for (user, body, status, message) in cases {
        let (got, reply) = app.buy(user, &token, body.clone(), None).await;
        assert_eq!(got, status, "{body}");
        assert!(error_of(&reply).contains(message), "{body}: {reply}");
    }
    let (status, _) = app
        .buy(
            "victor",
            &token,
            json!({ "article_id": 1 }),
            Some("bad key with spaces"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let no_token = app
        .http
        .post(app.orders.url("/orders/victor/buy"))
        .json(&json!({ "article_id": 1 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    for (request, code) in [
        (buy_request("victor", json!(null)), ErrorCode::BadRequest),
        (buy_request("victor", json!("1")), ErrorCode::BadRequest),
        (buy_request("victor", json!(42)), ErrorCode::NotFound),
        (buy_request("../x", json!(1)), ErrorCode::BadRequest),
        (buy_request("", json!(1)), ErrorCode::BadRequest),
    ] {
        let err = orders::buy(&app.nats, &request).await.expect_err("refused");
        assert_eq!(err.code(), code, "{request:?}");
    }
    assert!(app.lines().is_empty(), "nothing was written");
}

#[tokio::test]
async fn two_hundred_concurrent_buys_by_ten_users_are_each_written_once() {
    let app = TestApp::spawn().await;
    let mut calls = Vec::new();
    for i in 0..200u32 {
        let nats = app.nats.clone();
        calls.push(tokio::spawn(async move {
            let request = buy_request(&format!("user{}", i % 10), json!(i % 3 + 1));
            orders::buy(&nats, &request).await
        }));
    }
    let mut answered = Vec::new();
    for call in calls {
        answered.push(call.await.expect("task").expect("201").id);
    }
    let lines = app.lines();
    assert_eq!(lines.len(), 200);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        *counts
            .entry(line["id"].as_str().expect("id").to_owned())
            .or_default() += 1;
    }
    for id in &answered {
        assert_eq!(counts.get(id), Some(&1), "{id} is in the file exactly once");
    }
    let histories: usize = futures_count(&app).await;
    assert_eq!(histories, 200);
}

async fn futures_count(app: &TestApp) -> usize {
    let mut total = 0;
    for u in 0..10 {
        let reply = orders::purchases(
            &app.nats,
            &PurchasesRequest {
                username: format!("user{u}"),
            },
        )
        .await
        .expect("history");
        total += reply.items.len();
    }
    total
}

#[tokio::test]
async fn the_same_idempotency_key_records_one_purchase_also_after_a_restart() {
    let mut app = TestApp::spawn().await;
    let token = app.token("victor", "1234").await;
    let (status, first) = app
        .buy(
            "victor",
            &token,
            json!({ "article_id": 2 }),
            Some("order-42"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = app
        .buy(
            "victor",
            &token,
            json!({ "article_id": 2 }),
            Some("order-42"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["id"], first["id"]);

    // Concurrent repeats of a new key: still one purchase.
    let mut calls = Vec::new();
    for _ in 0..8 {
        let nats = app.nats.clone();
        calls.push(tokio::spawn(async move {
            let mut request = buy_request("victor", json!(1));
            request.idempotency_key = Some("order-43".into());
            orders::buy(&nats, &request).await.expect("201").id
        }));
    }
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.expect("task"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.lines().len(), 2);

    app.restart_orders().await;
    let (status, after) = app
        .buy(
            "victor",
            &token,
            json!({ "article_id": 2 }),
            Some("order-42"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(after["id"], first["id"]);
    assert_eq!(app.lines().len(), 2);
    // The key belongs to its user: kilian's order-42 is another purchase.
    let kilian = app.token("kilian", "abcd").await;
    let (status, other) = app
        .buy(
            "kilian",
            &kilian,
            json!({ "article_id": 2 }),
            Some("order-42"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(other["id"], first["id"]);
}

// ---------------------------------------------------------------- durability

#[tokio::test]
async fn an_event_published_while_orders_was_down_is_appended_once_at_start() {
    let mut app = TestApp::spawn().await;
    app.stop_orders().await;
    let event = event("victor", 3);
    publish(&app.js, &event).await;
    // The same event published again (a retry by a publisher that crashed).
    publish(&app.js, &event).await;
    app.restart_orders().await;
    app.settled().await;
    let lines = app.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["id"] == event.id.as_str())
            .count(),
        1
    );
    let history = orders::purchases(
        &app.nats,
        &PurchasesRequest {
            username: "victor".into(),
        },
    )
    .await
    .expect("history");
    assert_eq!(history.purchases, ["Article 3"]);
}

#[tokio::test]
async fn an_event_whose_ack_was_lost_is_not_written_twice() {
    let mut app = TestApp::spawn().await;
    app.stop_orders().await;
    // Written to the file, but the ack never reached the server.
    let event = event("victor", 1);
    let seq = publish(&app.js, &event).await;
    let mut line = serde_json::to_value(&event).expect("json");
    line["seq"] = json!(seq);
    std::fs::write(app.purchases_file(), format!("{line}\n")).expect("write");

    app.restart_orders().await;
    app.settled().await;
    assert_eq!(app.lines().len(), 1);
    // A re-published copy after the restart (outside the stream's dedupe) is also known.
    let mut republished = event.clone();
    republished.purchased_at = "2026-11-23T12:00:01Z".into();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "another-msg-id");
    app.js
        .publish_with_headers(
            orders::subject::purchased("victor"),
            headers,
            serde_json::to_vec(&republished).expect("json").into(),
        )
        .await
        .expect("published")
        .await
        .expect("stored");
    app.settled().await;
    assert_eq!(app.lines().len(), 1);
}

#[tokio::test]
async fn a_cut_short_last_line_is_repaired_from_the_stream() {
    let mut app = TestApp::spawn().await;
    for article in [1, 2] {
        orders::buy(&app.nats, &buy_request("victor", json!(article)))
            .await
            .expect("201");
    }
    app.orders.stop().await;
    let whole = std::fs::read(app.purchases_file()).expect("read");
    let last = app.lines()[1].clone();
    let cut = whole.len() - 25;
    std::fs::write(app.purchases_file(), &whole[..cut]).expect("cut the last line short");

    app.restart_orders().await;
    app.settled().await;
    let lines = app.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["id"], last["id"]);
    assert_eq!(lines[1]["seq"], last["seq"]);
    let history = orders::purchases(
        &app.nats,
        &PurchasesRequest {
            username: "victor".into(),
        },
    )
    .await
    .expect("history");
    assert_eq!(history.purchases, ["Article 1", "Article 2"]);
}

#[tokio::test]
async fn a_purchases_file_of_the_flask_original_is_converted_once_with_a_backup() {
    let original = r#"{"victor": ["Article 3", "Article 1"], "Kilian": ["Article 2"]}"#;
    let mut app = TestApp::spawn_prepared(|dir| {
        std::fs::write(dir.join("purchases.json"), original).expect("write");
    })
    .await;
    let backup = app.dir.path().join("purchases.json.flask-backup");
    assert_eq!(
        std::fs::read_to_string(&backup).expect("backup kept"),
        original
    );
    let victor = orders::purchases(
        &app.nats,
        &PurchasesRequest {
            username: "victor".into(),
        },
    )
    .await
    .expect("history");
    assert_eq!(victor.purchases, ["Article 3", "Article 1"]);
    let kilian = orders::purchases(
        &app.nats,
        &PurchasesRequest {
            username: "kilian".into(),
        },
    )
    .await
    .expect("history");
    assert_eq!(kilian.purchases, ["Article 2"]);
    assert_eq!(app.lines().len(), 3);

    app.restart_orders().await;
    app.settled().await;
    assert_eq!(app.lines().len(), 3, "converted once");
    let stream = app.js.get_stream(orders::STREAM).await.expect("stream");
    let info = stream.get_info().await.expect("info");
    assert_eq!(info.state.messages, 3, "the events are in the stream too");
}

#[tokio::test]
async fn without_jetstream_a_buy_is_a_503_and_nothing_is_written() {
    let mut app = TestApp::spawn().await;
    orders::buy(&app.nats, &buy_request("victor", json!(1)))
        .await
        .expect("201");
    let token = app.token("victor", "1234").await;
    let before = std::fs::read(app.purchases_file()).expect("read");
    app.server.restart_without_jetstream();
    app.reconnected(&token).await;

    let err = orders::buy(&app.nats, &buy_request("victor", json!(2)))
        .await
        .expect_err("503");
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(err.to_string().contains("nothing was bought"), "{err}");
    let (status, body) = app
        .buy("victor", &token, json!({ "article_id": 2 }), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(error_of(&body).contains("JetStream"));
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["stream"], false);
    assert_eq!(std::fs::read(app.purchases_file()).expect("read"), before);
}

#[tokio::test]
async fn a_deleted_stream_is_created_again_by_the_next_buy() {
    let app = TestApp::spawn().await;
    let token = app.token("victor", "1234").await;
    let (status, body) = app
        .buy("victor", &token, json!({ "article_id": 1 }), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.js
        .delete_stream(orders::STREAM)
        .await
        .expect("stream deleted");

    let (status, body) = app
        .buy("victor", &token, json!({ "article_id": 2 }), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().expect("id");
    assert!(app.lines().iter().any(|l| l["id"] == id), "line of {id}");
    assert_eq!(app.lines().len(), 2);
    let (_, history) = app.get("/orders/victor/purchases", Some(&token)).await;
    assert_eq!(history["purchases"], json!(["Article 1", "Article 2"]));
    let info = app
        .js
        .get_stream(orders::STREAM)
        .await
        .expect("the stream is back")
        .get_info()
        .await
        .expect("info");
    assert_eq!(
        info.state.messages, 1,
        "only the new event is in the new stream"
    );
    let (status, _) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_appender_consumer_is_replaced_and_buys_go_on() {
    let app = TestApp::spawn().await;
    orders::buy(&app.nats, &buy_request("victor", json!(1)))
        .await
        .expect("201");
    let stream = app.js.get_stream(orders::STREAM).await.expect("stream");
    let before = consumer_names(&stream).await;
    assert_eq!(
        before.len(),
        1,
        "one consumer per orders instance: {before:?}"
    );
    stream
        .delete_consumer(&before[0])
        .await
        .expect("consumer deleted");
    // An event stored while no consumer reads is written by the next one.
    let stray = event("victor", 3);
    publish(&app.js, &stray).await;

    let mut after = Vec::new();
    for _ in 0..200 {
        after = consumer_names(&stream).await;
        if !after.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "a new consumer replaced the deleted one");
    let reply = orders::buy(&app.nats, &buy_request("victor", json!(2)))
        .await
        .expect("201 with the new consumer");
    app.settled().await;
    let lines = app.lines();
    let ids: Vec<&str> = lines.iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(&ids[1..], [stray.id.as_str(), reply.id.as_str()]);
}

async fn consumer_names(stream: &jetstream::stream::Stream) -> Vec<String> {
    use futures_util::TryStreamExt;
    stream
        .consumer_names()
        .try_collect()
        .await
        .expect("consumer names")
}

// ---------------------------------------------------------------- doors

#[tokio::test]
async fn malformed_requests_get_a_4xx_on_both_doors() {
    let app = TestApp::spawn().await;
    let token = app.token("victor", "1234").await;
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
    orders::buy(&app.nats, &buy_request("victor", json!(1)))
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
