//! Buying: on disk and in the history when answered, statuses, concurrency, keys.

use std::collections::HashMap;

use bus_schema::ErrorCode;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_buy_is_on_disk_and_in_the_history_when_it_is_answered_in_order() {
    let app = TestApp::spawn().await;
    let token = app.token("victor");
    let mut ids = Vec::new();
    for article in [2, 1, 3] {
        let key = format!("k{article}");
        let (status, body) = app
            .buy(
                "victor",
                &token,
                json!({ "article_id": article }),
                Some(&key),
            )
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

    let bus = app.history("Victor").await;
    assert_eq!(bus.purchases, ["Article 2", "Article 1", "Article 3"]);
}

#[tokio::test]
async fn bad_buys_get_the_statuses_of_the_original() {
    let app = TestApp::spawn().await;
    let token = app.token("victor");
    let cases = [
        (
            "victor",
            json!({}),
            StatusCode::BAD_REQUEST,
            "article_id is required",
        ),
        (
            "victor",
            json!({ "article_id": "2 articles" }),
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
        (buy_request("victor", json!("1x")), ErrorCode::BadRequest),
        (buy_request("victor", json!(42)), ErrorCode::NotFound),
        (buy_request("../x", json!(1)), ErrorCode::BadRequest),
        (buy_request("", json!(1)), ErrorCode::BadRequest),
    ] {
        let err = buy_as(&app.nats, &app.auth, &request)
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{request:?}");
    }
    assert!(app.lines().is_empty(), "nothing was written");
}

#[tokio::test]
async fn two_hundred_concurrent_buys_by_ten_users_are_each_written_once() {
    let app = TestApp::spawn().await;
    let mut calls = Vec::new();
    for i in 0..200u32 {
        let (nats, auth) = (app.nats.clone(), app.auth.clone());
        calls.push(tokio::spawn(async move {
            // Keyed, so that a buy the disk makes late (503 not_on_disk_yet) is repeated
            // as a careful client would, and still counts once.
            let request = keyed_buy(
                &format!("user{}", i % 10),
                json!(i % 3 + 1),
                &format!("k{i}"),
            );
            buy_as(&nats, &auth, &request).await
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
        let reply = purchases_as(&app.nats, &app.auth, &format!("user{u}"))
            .await
            .expect("history");
        total += reply.items.len();
    }
    total
}

#[tokio::test]
async fn the_same_idempotency_key_records_one_purchase_also_after_a_restart() {
    let mut app = TestApp::spawn().await;
    let token = app.token("victor");
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
        let (nats, auth) = (app.nats.clone(), app.auth.clone());
        calls.push(tokio::spawn(async move {
            let mut request = buy_request("victor", json!(1));
            request.idempotency_key = Some("order-43".into());
            buy_as(&nats, &auth, &request).await.expect("201").id
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
    let kilian = app.token("kilian");
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

#[tokio::test]
async fn an_article_id_as_a_string_of_digits_buys_as_in_the_original() {
    let app = TestApp::spawn().await;
    let token = app.token("victor");
    let (status, body) = app
        .buy("victor", &token, json!({ "article_id": "2" }), Some("k2"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["article"]["name"], "Article 2");
    let (status, body) = app
        .buy("victor", &token, json!({ "article_id": "2x" }), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["reason"], "article_id_not_integer");
}
