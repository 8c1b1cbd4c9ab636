//! Durability with orders in this process: events while it was down, repairs, the
//! Flask file, JetStream and the stream or consumer going away.

use std::time::Duration;

use async_nats::jetstream;
use bus_schema::{
    ErrorCode,
    orders::{self},
};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

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
    let history = app.history("victor").await;
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
    keyed_buys(&app, &[1, 2]).await;
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
    let history = app.history("victor").await;
    assert_eq!(history.purchases, ["Article 1", "Article 2"]);
}

/// A keyed buy by victor of each of `articles`, over the bus.
async fn keyed_buys(app: &TestApp, articles: &[u32]) {
    for article in articles {
        buy_as(
            &app.nats,
            &app.auth,
            &keyed_buy("victor", json!(article), &format!("k{article}")),
        )
        .await
        .expect("201");
    }
}

#[tokio::test]
async fn a_restart_reads_only_the_lines_its_index_on_disk_lacks() {
    let mut app = TestApp::spawn().await;
    keyed_buys(&app, &[1, 2, 3]).await;
    app.restart_orders().await;
    app.settled().await;
    assert_eq!(app.metric("shop_purchases_read_at_start").await, 0);
    let history = app.history("victor").await;
    assert_eq!(history.purchases, ["Article 1", "Article 2", "Article 3"]);
    assert_eq!((history.count, history.total), (3, 1000 + 2000 + 3000));

    // A line the index lacks: written to the file by an appender that stopped before
    // its index took it (its ack lost too).
    app.orders.stop().await;
    let event = event("victor", 2);
    let seq = publish(&app.js, &event).await;
    let mut line = serde_json::to_value(&event).expect("json");
    line["seq"] = json!(seq);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(app.purchases_file())
        .expect("open");
    std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes()).expect("append");
    app.restart_orders().await;
    app.settled().await;
    assert_eq!(app.metric("shop_purchases_read_at_start").await, 1);
    assert_eq!(app.lines().len(), 4);
    let history = app.history("victor").await;
    assert_eq!(history.purchases.len(), 4);
    assert_eq!(history.items[3].id, event.id);
}

#[tokio::test]
async fn an_index_lost_or_of_a_file_cut_since_is_built_again_from_the_file() {
    let mut app = TestApp::spawn().await;
    keyed_buys(&app, &[1, 2, 3]).await;
    app.orders.stop().await;
    let index = app.dir.path().join("purchases.json.index");
    assert!(index.exists(), "the index lives beside purchases.json");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", index.display()));
    }
    app.restart_orders().await;
    assert_eq!(app.metric("shop_purchases_read_at_start").await, 3);
    let history = app.history("victor").await;
    assert_eq!(history.purchases, ["Article 1", "Article 2", "Article 3"]);

    // The file cut back to its first two lines (a backup restored): the index, which
    // holds three, is not this file's; it is built again, and the stream gives the
    // third line back.
    app.orders.stop().await;
    let lines = app.lines();
    let two: String = lines[..2].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(app.purchases_file(), two).expect("cut");
    app.restart_orders().await;
    app.settled().await;
    assert_eq!(app.metric("shop_purchases_read_at_start").await, 2);
    let again = app.lines();
    assert_eq!(again.len(), 3);
    assert_eq!(again[2]["id"], lines[2]["id"]);
    let history = app.history("victor").await;
    assert_eq!(history.purchases, ["Article 1", "Article 2", "Article 3"]);
    assert_eq!(history.count, 3);
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
    let victor = app.history("victor").await;
    assert_eq!(victor.purchases, ["Article 3", "Article 1"]);
    let kilian = app.history("kilian").await;
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
    buy_as(&app.nats, &app.auth, &keyed_buy("victor", json!(1), "k1"))
        .await
        .expect("201");
    let token = app.token("victor");
    let before = std::fs::read(app.purchases_file()).expect("read");
    app.server.restart_without_jetstream();
    app.reconnected(&token).await;

    let err = buy_as(&app.nats, &app.auth, &buy_request("victor", json!(2)))
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
    let token = app.token("victor");
    let (status, body) = app
        .buy("victor", &token, json!({ "article_id": 1 }), Some("k1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.js
        .delete_stream(orders::STREAM)
        .await
        .expect("stream deleted");

    let (status, body) = app
        .buy("victor", &token, json!({ "article_id": 2 }), Some("k2"))
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
    buy_as(&app.nats, &app.auth, &keyed_buy("victor", json!(1), "k1"))
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
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        after = consumer_names(&stream).await;
        if !after.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "a new consumer replaced the deleted one");
    let reply = buy_as(&app.nats, &app.auth, &keyed_buy("victor", json!(2), "k2"))
        .await
        .expect("201 with the new consumer");
    app.settled().await;
    let lines = app.lines();
    let ids: Vec<&str> = lines.iter().filter_map(|l| l["id"].as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(&ids[1..], [stray.id.as_str(), reply.id.as_str()]);
}

#[tokio::test]
async fn buys_are_written_while_no_consumer_of_the_stream_can_be_made() {
    // A consumer is made through a cluster's meta leader: for the seconds another is
    // elected (the node holding it stalled or died) none can be made, while the stream's
    // leader still answers. Here the server refuses orders every consumer for good.
    let dir = tempfile::tempdir().expect("temp dir");
    let (test_password, orders_password) = (
        uuid::Uuid::now_v7().simple().to_string(),
        uuid::Uuid::now_v7().simple().to_string(),
    );
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            r#"jetstream {{ store_dir: "data/jetstream" }}
            authorization {{ users = [
                {{ user: test, password: "{test_password}" }}
                {{ user: orders, password: "{orders_password}", permissions: {{
                    publish: {{ allow: [">"], deny: ["$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>"] }}
                    subscribe: ">"
                }} }}
            ] }}"#
        ),
    )
    .expect("config");
    let server = testkit::NatsServer::start_with(testkit::Options {
        config: Some(conf),
        ..testkit::Options::default()
    });
    let nats = async_nats::ConnectOptions::with_user_and_password("test".into(), test_password)
        .connect(server.url())
        .await
        .expect("connect");
    let mut config = ::orders::Config::for_tests(server.url(), dir.path());
    config.nats.user = Some("orders".into());
    config.nats.password = Some(service_kit::runtime::Secret::new(orders_password));
    let app = TestApp::spawn_on(server, dir, nats, config).await;
    let token = app.token("victor");

    for (n, key) in ["first", "second", "third"].into_iter().enumerate() {
        let (status, body) = app
            .buy("victor", &token, json!({ "article_id": n + 1 }), Some(key))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // An event bought through another instance is written too.
    publish(&app.js, &event("victor", 3)).await;
    app.settled().await;
    assert_eq!(app.lines().len(), 4);
    assert_eq!(
        app.history("victor").await.purchases,
        ["Article 1", "Article 2", "Article 3", "Article 3"]
    );
}

async fn consumer_names(stream: &jetstream::stream::Stream) -> Vec<String> {
    use futures_util::TryStreamExt;
    stream
        .consumer_names()
        .try_collect()
        .await
        .expect("consumer names")
}
