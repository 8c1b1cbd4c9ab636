//! The orders service in this process against a real nats-server with JetStream and a
//! temp data directory; tokens are signed by testkit's `StubAuth`, whose public key is
//! published in `AUTH_KEYS` as auth's would be, so users and auth are not started.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_nats::jetstream;
use bus_schema::orders::{self, BuyRequest, PurchasedEvent};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;
use testkit::{NatsServer, Running, StubAuth};
pub use testkit::{error_of, read, send_carefully};

pub struct TestApp {
    pub orders: Running,
    pub auth: StubAuth,
    pub http: reqwest::Client,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub dir: TempDir,
    pub server: NatsServer,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_prepared(|_| {}).await
    }

    /// Starts everything after `prepare` has put files in the data directory.
    pub async fn spawn_prepared(prepare: impl FnOnce(&Path)) -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        prepare(dir.path());
        let nats = async_nats::connect(server.url()).await.expect("connect");
        let config = ::orders::Config::for_tests(server.url(), dir.path());
        Self::spawn_on(server, dir, nats, config).await
    }

    /// Starts orders with `config` on `server`, the test connected as `nats`.
    pub async fn spawn_on(
        server: NatsServer,
        dir: TempDir,
        nats: async_nats::Client,
        config: ::orders::Config,
    ) -> Self {
        let auth = StubAuth::start(&nats).await;
        let orders = Running::spawn(::orders::build(config).await.expect("orders builds"));
        testkit::answering(&nats, "orders").await;
        Self {
            orders,
            auth,
            http: reqwest::Client::new(),
            js: jetstream::new(nats.clone()),
            nats,
            dir,
            server,
        }
    }

    pub fn purchases_file(&self) -> PathBuf {
        self.dir.path().join("purchases.json")
    }

    /// The lines of purchases.json, parsed.
    pub fn lines(&self) -> Vec<Value> {
        read_lines(&self.purchases_file())
    }

    pub async fn restart_orders(&mut self) {
        self.orders.stop().await;
        self.orders = Running::spawn(
            ::orders::build(::orders::Config::for_tests(
                self.server.url(),
                self.dir.path(),
            ))
            .await
            .expect("orders rebuilds"),
        );
        testkit::answering(&self.nats, "orders").await;
    }

    /// The history of `username` from the bus door.
    pub async fn history(&self, username: &str) -> orders::PurchasesReply {
        purchases_as(&self.nats, &self.auth, username)
            .await
            .expect("history")
    }

    /// A token for `username`, signed by the stub key every verifier accepts.
    pub fn token(&self, username: &str) -> String {
        self.auth.token(username)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(self.orders.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.expect("sent")).await
    }

    /// The value of `name` (with its labels, if any) in orders' `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let (_, metrics) = self.get("/metrics", None).await;
        let text = metrics.as_str().expect("text");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    }

    pub async fn buy(
        &self,
        user: &str,
        token: &str,
        body: Value,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        self.buy_on(&self.orders, user, token, body, key).await
    }

    /// [`Self::buy`] on the HTTP door of the instance `on`.
    pub async fn buy_on(
        &self,
        on: &Running,
        user: &str,
        token: &str,
        body: Value,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let request = self
            .http
            .post(on.url(&format!("/orders/{user}/buy")))
            .bearer_auth(token)
            .json(&body);
        match key {
            // A careful client: a 503 is repeated with the same key (one purchase
            // whatever happens), as the message of `not_on_disk_yet` says.
            Some(key) => send_carefully(request.header("Idempotency-Key", key)).await,
            None => read(request.send().await.expect("sent")).await,
        }
    }

    /// Stops orders as Ctrl-C would; events published next wait in the stream.
    pub async fn stop_orders(&mut self) {
        self.orders.stop().await;
    }

    /// Waits until orders and this test's client are connected to the server again and
    /// orders takes `token` on its HTTP door.
    pub async fn reconnected(&self, token: &str) {
        let started = std::time::Instant::now();
        while started.elapsed() < testkit::PATIENCE {
            let (_, body) = self.get("/readyz", None).await;
            let (articles, _) = self.get("/orders/articles", Some(token)).await;
            if body["nats"] == true
                && articles == StatusCode::OK
                && orders::articles(&self.nats, &orders::ArticlesRequest::default())
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "orders or the test's client did not reconnect within {:?}",
            testkit::PATIENCE
        );
    }

    /// Waits until every purchase event the stream holds has its line in the file.
    pub async fn settled(&self) {
        let mut missing = Vec::new();
        let started = std::time::Instant::now();
        while started.elapsed() < testkit::PATIENCE {
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
        panic!(
            "events of the stream still not in the file after {:?}: {missing:?}",
            testkit::PATIENCE
        );
    }
}

/// The ids of the purchase events in the `ORDERS` stream, in stream order.
pub async fn stream_ids(js: &jetstream::Context) -> Vec<String> {
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

pub fn buy_request(user: &str, article_id: Value) -> BuyRequest {
    BuyRequest {
        username: user.into(),
        article_id,
        idempotency_key: None,
    }
}

/// Publishes an event as the orders service would, returning its stream sequence.
pub async fn publish(js: &jetstream::Context, event: &PurchasedEvent) -> u64 {
    publish_with_id(js, event, &event.id).await
}

pub fn event(user: &str, article: u32) -> PurchasedEvent {
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

/// Stores `event` in the `ORDERS` stream as an orders instance would (with `msg_id` as
/// its `Nats-Msg-Id`), returning its stream sequence.
pub async fn publish_with_id(js: &jetstream::Context, event: &PurchasedEvent, msg_id: &str) -> u64 {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(
        orders::subject::purchased(&event.username),
        headers,
        serde_json::to_vec(event).expect("json").into(),
    )
    .await
    .expect("published")
    .await
    .expect("stored")
    .sequence
}

/// The lines of a purchases file, parsed; none when it does not exist.
pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// `orders.buy` over the bus, acting for the request's user with their token. A buy
/// with an idempotency key is made as a careful client makes it: a 503 (not on disk
/// yet, the stream late) is repeated with the same key, so the test sees the outcome
/// however slow the disk is; a buy without a key is sent once.
pub async fn buy_as(
    nats: &async_nats::Client,
    auth: &StubAuth,
    request: &BuyRequest,
) -> Result<orders::BuyReply, bus_schema::CallError> {
    let options = auth.calls_for(&request.username);
    if request.idempotency_key.is_none() {
        return orders::buy_with(nats, request, &options).await;
    }
    testkit::retry_unavailable(|| orders::buy_with(nats, request, &options)).await
}

/// A buy of `article_id` by `user` with `key` as its idempotency key.
pub fn keyed_buy(user: &str, article_id: Value, key: &str) -> BuyRequest {
    BuyRequest {
        idempotency_key: Some(key.into()),
        ..buy_request(user, article_id)
    }
}

/// `orders.purchases` over the bus, acting for `username` with their token.
pub async fn purchases_as(
    nats: &async_nats::Client,
    auth: &StubAuth,
    username: &str,
) -> Result<orders::PurchasesReply, bus_schema::CallError> {
    let request = orders::PurchasesRequest::of(username);
    orders::purchases_with(nats, &request, &auth.calls_for(username)).await
}
