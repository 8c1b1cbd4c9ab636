//! Crashes: the orders service runs as a real child process and is killed (SIGKILL)
//! while buys with idempotency keys are in flight; every key is charged once, every 201
//! has its line, and lines the file lost are written again at the next start.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream;
use bus_schema::{
    CallOptions,
    orders::{self, BuyReply, BuyRequest, PurchasedEvent, purchase_id},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::{NatsServer, StubAuth};

use crate::helpers::{buy_as, purchases_as};

/// The orders binary, started and killed like a crash would.
struct OrdersProcess {
    child: Option<Child>,
    nats_url: String,
    dir: PathBuf,
}

impl OrdersProcess {
    fn start(server: &NatsServer, dir: &Path) -> Self {
        let mut process = Self {
            child: None,
            nats_url: server.url(),
            dir: dir.to_owned(),
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("orders.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_orders"))
            .env("NATS_URL", &self.nats_url)
            .env("ORDERS_HTTP_ADDR", "127.0.0.1:0")
            .env("ORDERS_PURCHASES_FILE", self.dir.join("purchases.json"))
            .env("ORDERS_CATALOG_FILE", self.dir.join("catalog.json"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the orders binary starts");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut off.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("reaped");
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Waits until the service answers on the bus (it answers only once its file holds
    /// every event the stream held at start).
    async fn ready(&mut self, nats: &async_nats::Client) {
        let started = std::time::Instant::now();
        while started.elapsed() < testkit::PATIENCE {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("orders exited with {status}:\n{}", self.log());
            }
            let quick = CallOptions {
                timeout: Duration::from_millis(500),
                ..CallOptions::default()
            };
            if orders::articles_with(nats, &orders::ArticlesRequest {}, &quick)
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "orders did not answer within {:?}:\n{}",
            testkit::PATIENCE,
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("orders.log")).unwrap_or_default()
    }
}

impl Drop for OrdersProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Setup {
    auth: StubAuth,
    server: NatsServer,
    dir: TempDir,
    nats: async_nats::Client,
    js: jetstream::Context,
    orders: OrdersProcess,
}

async fn setup() -> Setup {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let nats = async_nats::connect(server.url()).await.expect("connect");
    let auth = StubAuth::start(&nats).await;
    let mut orders = OrdersProcess::start(&server, dir.path());
    orders.ready(&nats).await;
    Setup {
        auth,
        js: jetstream::new(nats.clone()),
        nats,
        orders,
        dir,
        server,
    }
}

impl Setup {
    fn lines(&self) -> Vec<Value> {
        crate::helpers::read_lines(&self.dir.path().join("purchases.json"))
    }

    async fn history(&self, user: &str) -> Vec<String> {
        purchases_as(&self.nats, &self.auth, user)
            .await
            .expect("history")
            .items
            .into_iter()
            .map(|item| item.id)
            .collect()
    }
}

fn keyed(user: &str, article: u32, key: &str) -> BuyRequest {
    crate::helpers::keyed_buy(user, json!(article), key)
}

/// Stores the event a buy of `key` would publish, as an orders instance that died right
/// after publishing it would have left it: in the stream, not in the file.
async fn publish_as_orders(js: &jetstream::Context, user: &str, key: &str, article: u32) {
    let event = PurchasedEvent {
        id: purchase_id(user, key).to_string(),
        username: user.into(),
        article: orders::Article {
            id: article,
            name: format!("Article {article}"),
            price: article * 1000,
        },
        purchased_at: "2026-11-25T10:00:00Z".into(),
        idempotency_key: Some(key.into()),
    };
    publish_with_msg_id(js, &event, &event.id).await;
}

async fn publish_with_msg_id(js: &jetstream::Context, event: &PurchasedEvent, msg_id: &str) {
    crate::helpers::publish_with_id(js, event, msg_id).await;
}

/// Counts the lines of each id; panics on an id written twice.
fn ids_once(lines: &[Value]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for line in lines {
        let id = line["id"].as_str().expect("an id").to_owned();
        assert!(ids.insert(id.clone()), "{id} is written twice");
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_retried_after_orders_was_killed_mid_flight_are_each_charged_once() {
    let mut app = setup().await;
    let answered: Arc<Mutex<HashMap<String, BuyReply>>> = Arc::default();
    let tried: Arc<Mutex<Vec<(String, String, u32)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut buyers = Vec::new();
    for buyer in 0..16u32 {
        let (nats, auth, answered, tried, stop) = (
            app.nats.clone(),
            app.auth.clone(),
            Arc::clone(&answered),
            Arc::clone(&tried),
            Arc::clone(&stop),
        );
        buyers.push(tokio::spawn(async move {
            let user = format!("buyer{}", buyer % 4);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("b{buyer}-{n}");
                let article = 1 + (n % 3);
                n += 1;
                tried
                    .lock()
                    .expect("lock")
                    .push((user.clone(), key.clone(), article));
                // Sent once: a buy cut off by the kill is retried after the restart.
                let request = keyed(&user, article, &key);
                let options = auth.calls_for(&user);
                if let Ok(reply) = orders::buy_with(&nats, &request, &options).await {
                    answered.lock().expect("lock").insert(key, reply);
                }
            }
        }));
    }
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        if answered.lock().expect("lock").len() >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        answered.lock().expect("lock").len() >= 300,
        "buys were answered before the crash"
    );
    // Each buyer has one buy in flight; none starts another after the kill.
    stop.store(true, Ordering::Relaxed);
    app.orders.kill();
    // Events an instance stored in the stream just before it died, lines not written.
    for n in 0..5 {
        publish_as_orders(&app.js, "buyer0", &format!("stray-{n}"), 3).await;
    }
    for buyer in buyers {
        buyer.await.expect("buyer");
    }
    let answered_before = answered.lock().expect("lock").clone();
    let mut tried = tried.lock().expect("lock").clone();
    let unanswered = tried.len() - answered_before.len();

    app.orders.restart();
    app.orders.ready(&app.nats).await;
    tried.extend((0..5).map(|n| ("buyer0".to_owned(), format!("stray-{n}"), 1)));
    for (user, key, article) in &tried {
        let reply = buy_as(&app.nats, &app.auth, &keyed(user, *article, key))
            .await
            .unwrap_or_else(|err| panic!("retrying {key}: {err}"));
        assert_eq!(reply.id, purchase_id(user, key).to_string(), "{key}");
        if let Some(first) = answered_before.get(key) {
            assert_eq!(&reply, first, "a retry answers the first purchase of {key}");
        }
        if key.starts_with("stray-") {
            assert_eq!(
                reply.article.id, 3,
                "the stored purchase of {key}, not a new one"
            );
        }
    }

    let lines = app.lines();
    let ids = ids_once(&lines);
    let expected: HashSet<String> = tried
        .iter()
        .map(|(user, key, _)| purchase_id(user, key).to_string())
        .collect();
    assert_eq!(ids, expected, "one line per key, and only those");
    for user in ["buyer0", "buyer1", "buyer2", "buyer3"] {
        let history = app.history(user).await;
        let written = lines.iter().filter(|l| l["username"] == user).count();
        assert_eq!(history.len(), written, "{user}");
        assert_eq!(history.iter().collect::<HashSet<_>>().len(), written);
    }
    eprintln!(
        "answered before the kill: {}, cut off: {unanswered}, stored but unwritten: 5, lines: {}",
        answered_before.len(),
        lines.len()
    );
}

#[tokio::test]
async fn lines_the_file_lost_or_garbled_are_written_again_before_orders_answers() {
    let mut app = setup().await;
    let mut replies = Vec::new();
    for n in 0..6u32 {
        let reply = buy_as(
            &app.nats,
            &app.auth,
            &keyed("victor", 1 + n % 3, &format!("k{n}")),
        )
        .await
        .expect("201");
        replies.push(reply.id);
    }
    app.orders.kill();
    // A write cut short and run into by the next one (two events in one bad line), a
    // line lost, and the last one cut short by the crash.
    let path = app.dir.path().join("purchases.json");
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    let half = |line: &str| line[..line.len() / 2].to_owned();
    let kept = format!(
        "{}\n{}{}\n{}\n{}",
        lines[0],
        half(lines[1]),
        lines[2],
        lines[3],
        half(lines[5])
    );
    std::fs::write(&path, kept).expect("write");

    app.orders.restart();
    app.orders.ready(&app.nats).await;
    // No waiting: orders answers only once the file is whole again.
    let ids = ids_once(&app.lines());
    assert_eq!(ids, replies.iter().cloned().collect::<HashSet<_>>());
    let history = app.history("victor").await;
    assert_eq!(
        history.iter().collect::<HashSet<_>>(),
        replies.iter().collect::<HashSet<_>>()
    );
    assert_eq!(history.len(), 6);
    let damaged = std::fs::read_to_string(app.dir.path().join("purchases.json.damaged"))
        .expect("the bad lines are kept");
    assert_eq!(damaged.lines().count(), 2);
}

#[tokio::test]
async fn a_key_retried_while_its_first_event_is_not_written_yet_answers_that_purchase() {
    let app = setup().await;
    // The first request of each key was stored by the stream; its line is not written
    // yet when the retries arrive. "late" was stored outside the duplicate window (with
    // another message id), so the retry's event is stored a second time.
    publish_as_orders(&app.js, "victor", "early", 3).await;
    let late = PurchasedEvent {
        id: purchase_id("victor", "late").to_string(),
        username: "victor".into(),
        article: orders::Article {
            id: 2,
            name: "Article 2".into(),
            price: 2000,
        },
        purchased_at: "2026-11-25T09:00:00Z".into(),
        idempotency_key: Some("late".into()),
    };
    publish_with_msg_id(&app.js, &late, "published-long-ago").await;

    let mut retries = Vec::new();
    for key in ["early", "late"] {
        for _ in 0..4 {
            let (nats, auth) = (app.nats.clone(), app.auth.clone());
            retries.push(tokio::spawn(async move {
                let reply = buy_as(&nats, &auth, &keyed("victor", 1, key))
                    .await
                    .expect("201");
                (key, reply)
            }));
        }
    }
    for retry in retries {
        let (key, reply) = retry.await.expect("task");
        assert_eq!(reply.id, purchase_id("victor", key).to_string());
        match key {
            "early" => assert_eq!(reply.article.id, 3),
            _ => {
                assert_eq!(reply.article.id, 2);
                assert_eq!(reply.purchased_at, late.purchased_at);
            }
        }
    }
    let lines = app.lines();
    ids_once(&lines);
    assert_eq!(lines.len(), 2);
    assert_eq!(app.history("victor").await.len(), 2);
}

#[tokio::test]
async fn two_instances_charge_a_key_once_and_each_writes_every_purchase() {
    let server = NatsServer::start();
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let nats = async_nats::connect(server.url()).await.expect("connect");
    let auth = StubAuth::start(&nats).await;
    let mut a = OrdersProcess::start(&server, dir_a.path());
    a.ready(&nats).await;
    let mut b = OrdersProcess::start(&server, dir_b.path());
    b.ready(&nats).await;

    // Each key sent eight times at once; the two instances share the requests.
    let mut calls = Vec::new();
    for n in 0..20u32 {
        for _ in 0..8 {
            let (nats, auth) = (nats.clone(), auth.clone());
            calls.push(tokio::spawn(async move {
                let key = format!("k{n}");
                let reply = buy_as(&nats, &auth, &keyed("victor", 1 + n % 3, &key))
                    .await
                    .expect("201");
                (key, reply)
            }));
        }
    }
    let mut replies: HashMap<String, BuyReply> = HashMap::new();
    for call in calls {
        let (key, reply) = call.await.expect("task");
        let first = replies.entry(key.clone()).or_insert_with(|| reply.clone());
        assert_eq!(first, &reply, "every request of {key} answers one purchase");
    }
    let expected: HashSet<String> = replies.values().map(|r| r.id.clone()).collect();
    assert_eq!(expected.len(), 20);
    // Each instance keeps its own file with every purchase, once.
    for dir in [&dir_a, &dir_b] {
        let path = dir.path().join("purchases.json");
        let mut lines = Vec::new();
        let started = std::time::Instant::now();
        while started.elapsed() < testkit::PATIENCE {
            lines = crate::helpers::read_lines(&path);
            if lines.len() >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(ids_once(&lines), expected, "{}", path.display());
    }
    a.kill();
    b.kill();
}

#[tokio::test]
async fn after_nats_server_restarts_orders_reads_on_from_its_cursor() {
    let mut app = setup().await;
    for n in 0..3u32 {
        buy_as(
            &app.nats,
            &app.auth,
            &keyed("victor", 1, &format!("before-{n}")),
        )
        .await
        .expect("201");
    }
    app.server.restart();
    // The service reconnects, reads on event by event and then makes a new consumer;
    // buys go on.
    let mut after = None;
    for _ in 0..100 {
        if let Ok(reply) = buy_as(&app.nats, &app.auth, &keyed("victor", 2, "after")).await {
            after = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = after.expect("a buy is answered after the restart");
    let lines = app.lines();
    ids_once(&lines);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["id"], after.id.as_str());
    // The new consumer started where the file stopped (4, or 5 if it was made after the
    // last buy), not at the stream's start.
    let stream = app.js.get_stream(orders::STREAM).await.expect("stream");
    let mut names: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        use futures_util::TryStreamExt;
        names = stream.consumer_names().try_collect().await.expect("names");
        if !names.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(names.len(), 1, "{names:?}");
    let info = stream.consumer_info(&names[0]).await.expect("info");
    assert!(
        matches!(
            info.config.deliver_policy,
            jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence } if start_sequence >= 4
        ),
        "{:?}",
        info.config.deliver_policy
    );
}
