//! Two and three orders instances on one nats-server, each with its own data directory:
//! `ORDERS` is the truth, each `purchases.json` that instance's view.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::Running;

use crate::helpers::{TestApp, read_lines, send_carefully};

/// Another orders instance on the app's server, in a directory of its own.
async fn another(app: &TestApp) -> (Running, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = Running::spawn(
        ::orders::build(::orders::Config::for_tests(app.server.url(), dir.path()))
            .await
            .expect("another orders builds"),
    );
    (running, dir)
}

async fn buy_on(app: &TestApp, on: &Running, user: &str, key: &str) -> (StatusCode, Value) {
    let token = app.token(user);
    app.buy_on(on, user, &token, json!({ "article_id": 2 }), Some(key))
        .await
}

/// The ids of `user`'s history read on `on`; a 503 (a view still catching up with a
/// slow disk) is read again, as a careful client would: the test is about what the read
/// shows, never how soon.
async fn history_on(app: &TestApp, on: &Running, user: &str) -> Vec<String> {
    let (status, body) = send_carefully(
        app.http
            .get(on.url(&format!("/orders/{user}/purchases")))
            .bearer_auth(app.token(user)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The event ids of a purchases file, in file order.
fn ids(dir: &std::path::Path) -> Vec<String> {
    read_lines(&dir.join("purchases.json"))
        .iter()
        .map(|line| line["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_purchase_answered_by_one_instance_is_in_the_history_of_the_other_at_once() {
    let app = TestApp::spawn().await;
    let (other, _dir) = another(&app).await;
    for i in 0..30 {
        let (buyer, reader) = if i % 2 == 0 {
            (&app.orders, &other)
        } else {
            (&other, &app.orders)
        };
        let (status, body) = buy_on(&app, buyer, "ada", &format!("ada-{i}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().expect("an id").to_owned();
        assert!(
            history_on(&app, reader, "ada").await.contains(&id),
            "purchase {i} is read on the other instance right after its 201"
        );
    }
}

#[tokio::test]
async fn a_read_includes_every_purchase_the_stream_held_when_it_arrived() {
    // Another instance's purchase, as its 201 would leave it: stored in the stream, with
    // no time for this instance's file to follow.
    let app = TestApp::spawn().await;
    for i in 0..100 {
        let event = crate::helpers::event("cleo", 1 + i % 3);
        crate::helpers::publish(&app.js, &event).await;
        // The first read after the event, and the next one, which is read while the
        // stream's end is asked (the view was current at the read before it).
        for read in ["first", "second"] {
            let history = history_on(&app, &app.orders, "cleo").await;
            assert!(
                history.contains(&event.id),
                "event {i} is in the {read} read"
            );
        }
    }
    // One server, a stream of one replica: most questions were direct gets, and a
    // STREAM.INFO checked the stream's replicas every second or so.
    let asked =
        |how: &str| format!(r#"shop_stream_end_questions_total{{stream="ORDERS",how="{how}"}}"#);
    let direct = app.metric(&asked("direct_get")).await;
    let info = app.metric(&asked("stream_info")).await;
    assert!(direct > info, "direct gets {direct}, STREAM.INFO {info}");
}

#[tokio::test]
async fn one_key_sent_to_two_instances_at_once_records_one_purchase_and_every_file_agrees() {
    let app = TestApp::spawn().await;
    let (other, other_dir) = another(&app).await;
    for round in 0..10 {
        let key = format!("both-{round}");
        let (first, second) = tokio::join!(
            buy_on(&app, &app.orders, "bob", &key),
            buy_on(&app, &other, "bob", &key),
        );
        assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
        assert_eq!(second.0, StatusCode::CREATED, "{}", second.1);
        assert_eq!(first.1["id"], second.1["id"], "one purchase for key {key}");
    }
    let history = history_on(&app, &other, "bob").await;
    assert_eq!(history.len(), 10, "ten keys, ten purchases: {history:?}");

    // A third instance started now, with nothing on disk, writes the same file.
    let (_late, late_dir) = another(&app).await;
    app.settled().await;
    let reference = ids(app.dir.path());
    assert_eq!(reference.len(), 10);
    // A read on each brings its file up to the stream's end.
    for dir in [other_dir.path(), late_dir.path()] {
        assert_eq!(ids(dir), reference, "{}", dir.display());
    }
}

#[tokio::test]
async fn a_long_history_sent_again_as_last_read_shows_every_purchase_made_on_any_instance() {
    // A reply of some 25 KB, kept and sent again while its user does not buy.
    let app = TestApp::spawn().await;
    let (other, _dir) = another(&app).await;
    for i in 0..200 {
        crate::helpers::publish(&app.js, &crate::helpers::event("dora", 1 + i % 3)).await;
    }
    let kept = r#"shop_history_pages_total{from="kept"}"#;
    let before = app.metric(kept).await;
    assert_eq!(history_on(&app, &app.orders, "dora").await.len(), 200);
    for i in 0..20 {
        let (buyer, reader) = if i % 2 == 0 {
            (&other, &app.orders)
        } else {
            (&app.orders, &other)
        };
        let (status, body) = buy_on(&app, buyer, "dora", &format!("dora-{i}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_str().expect("an id").to_owned();
        for read in ["first", "second"] {
            let history = history_on(&app, reader, "dora").await;
            assert_eq!(history.len(), 201 + i, "the {read} read after buy {i}");
            assert_eq!(history.last(), Some(&id), "the {read} read after buy {i}");
        }
    }
    // On this instance: the second read of each of its ten rounds at least, and more
    // when a read began before the question about the stream's end was answered.
    let sent_again = app.metric(kept).await - before;
    assert!(sent_again >= 10, "{sent_again} pages sent again as kept");
}
