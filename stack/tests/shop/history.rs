//! Histories of any length through the gateway: the whole of one on `GET /api/purchases`
//! (read page after page over the bus and streamed), pages on request, and the page
//! `/purchases` a page at a time with the count and total of all.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// Purchases whose history weighs about 2.4 MB as one reply: more than twice what one
/// NATS message carries, so that the gateway cannot have it in one.
const MANY: usize = 2500;

fn long_name(n: usize) -> String {
    format!("{n:05} {}", "a rather long article name ".repeat(15))
}

/// A purchase of article 2 through the gateway, with `key`: its body.
async fn buy(shop: &Shop, http: &reqwest::Client, token: &str, key: &str) -> Value {
    let (status, bought) = testkit::send_carefully(
        http.post(shop.url("/api/buy"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"article_id": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bought}");
    bought
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_history_longer_than_one_bus_message_is_whole_on_the_json_api_and_paged_on_request() {
    let shop = Shop::start().await;
    let all = testkit::publish_purchases(&shop.nats, "victor", MANY, long_name).await;
    let token = shop.token("victor", "1234").await;
    let http = reqwest::Client::new();

    let (status, body) =
        testkit::send_carefully(http.get(shop.url("/api/purchases")).bearer_auth(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.to_string().len() > 2_000_000);
    assert_eq!(body["user"], "victor");
    assert_eq!(body["count"], MANY);
    assert_eq!(ids(&body), all, "the whole history, oldest first, once");
    assert_eq!(
        body["purchases"].as_array().expect("names").len(),
        MANY,
        "a name per purchase"
    );
    assert_eq!(body["purchases"][MANY - 1], long_name(MANY - 1));

    // Pages of 100, oldest first, following the Link header.
    let pages =
        testkit::follow_pages(&http, &shop.url(""), "/api/purchases?limit=100", &token).await;
    let mut read = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        assert_eq!(page["count"], MANY);
        read.extend(ids(page));
        if n + 1 < pages.len() {
            let next = page["next_url"].as_str().expect("next_url");
            assert!(
                next.starts_with("/api/purchases?limit=100&cursor="),
                "{next}"
            );
        }
    }
    assert_eq!(read, all);

    let (status, body) = testkit::read(
        http.get(shop.url("/api/purchases?limit=100000"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["reason"], "page_limit_invalid");
}

#[tokio::test]
async fn the_purchases_page_shows_fifty_at_a_time_newest_first_with_the_count_and_total_of_all() {
    let shop = Shop::start().await;
    testkit::publish_purchases(&shop.nats, "victor", 120, |n| format!("Objet {n:03}")).await;
    let http = browser();
    let response = log_in(&shop, &http, "victor", "1234").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // 120 purchases at 10, 20 and 30 euros in turn: 2,400.00 in all.
    let mut url = shop.url("/purchases");
    let mut pages = Vec::new();
    loop {
        let (status, html) = text(http.get(&url).send().await.expect("sent")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains("120 achats"), "{html}");
        assert!(html.contains("2\u{202f}400,00\u{a0}€"), "{html}");
        let rows: Vec<usize> = html
            .match_indices("Objet ")
            .map(|(at, _)| html[at + 6..at + 9].parse().expect("a number"))
            .collect();
        pages.push(rows);
        let Some(at) = html.find("id=\"older\"") else {
            break;
        };
        let href = &html[html[..at].rfind("href=\"").expect("a link") + 6..];
        // As the page escapes it.
        let href = href[..href.find('"').expect("ends")]
            .replace("&#x2f;", "/")
            .replace("&amp;", "&");
        url = shop.url(&href);
    }
    let expected: Vec<Vec<usize>> = vec![
        (70..120).rev().collect(),
        (20..70).rev().collect(),
        (0..20).rev().collect(),
    ];
    assert_eq!(pages, expected, "newest first, 50 a page");
}

#[tokio::test]
async fn a_long_history_read_again_is_the_same_until_a_buy_and_then_shows_it() {
    // About 150 KB: the gateway keeps it and asks orders again by its tag.
    let shop = Shop::start().await;
    let mut all = testkit::publish_purchases(&shop.nats, "victor", 300, long_name).await;
    let token = shop.token("victor", "1234").await;
    let http = reqwest::Client::new();
    let read = || testkit::send_carefully(http.get(shop.url("/api/purchases")).bearer_auth(&token));
    let (status, first) = read().await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(first.to_string().len() > 100_000);
    assert_eq!(ids(&first), all);
    let (status, again) = read().await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, first);

    let bought = buy(&shop, &http, &token, "victor-301").await;
    all.push(bought["id"].as_str().expect("an id").to_owned());
    for read_after in ["first", "second"] {
        let (status, body) = read().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["count"], 301, "the {read_after} read after the buy");
        assert_eq!(ids(&body), all, "the {read_after} read after the buy");
    }
}

#[tokio::test]
async fn a_whole_history_has_an_etag_and_a_client_holding_it_gets_304_until_a_buy() {
    let shop = Shop::start().await;
    testkit::publish_purchases(&shop.nats, "victor", 3, long_name).await;
    let token = shop.token("victor", "1234").await;
    let http = reqwest::Client::new();
    let read = |if_none_match: Option<&str>| {
        let request = http.get(shop.url("/api/purchases")).bearer_auth(&token);
        testkit::get_unless(request, if_none_match)
    };
    let first = read(None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(
        first.headers()["cache-control"],
        "no-store",
        "personal: kept by no cache but the client's own"
    );

    let again = read(Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().expect("ascii"), etag);
    assert!(again.bytes().await.expect("a body").is_empty());
    let listed = read(Some(&format!("\"other\", W/{etag}"))).await;
    assert_eq!(listed.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(read(Some("\"other\"")).await.status(), StatusCode::OK);

    let bought = buy(&shop, &http, &token, "victor-4").await;
    let after = read(Some(&etag)).await;
    assert_eq!(after.status(), StatusCode::OK, "the history changed");
    assert_ne!(after.headers()["etag"].to_str().expect("ascii"), etag);
    let (_, body) = testkit::read(after).await;
    assert_eq!(body["count"], 4);
    assert_eq!(
        ids(&body).last(),
        bought["id"].as_str().map(str::to_owned).as_ref()
    );

    // A page has no tag: it is not the whole history.
    let paged = testkit::response_carefully(
        http.get(shop.url("/api/purchases?limit=2"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(paged.status(), StatusCode::OK);
    assert!(!paged.headers().contains_key("etag"));
}

/// A purchase of `article` by `user` as another orders instance's 201 leaves it: stored
/// in the stream, with no time for this instance's file to follow. Its id.
async fn store_purchase(shop: &Shop, user: &str, article: u32) -> String {
    let event = bus_schema::orders::PurchasedEvent {
        id: uuid::Uuid::now_v7().to_string(),
        username: user.into(),
        article: bus_schema::orders::Article {
            id: article,
            name: format!("Article {article}"),
            price: article * 1000,
        },
        purchased_at: "2026-12-07T12:00:00Z".into(),
        idempotency_key: None,
    };
    async_nats::jetstream::new(shop.nats.clone())
        .publish(
            bus_schema::orders::subject::purchased(user),
            serde_json::to_vec(&event).expect("json").into(),
        )
        .await
        .expect("published")
        .await
        .expect("stored");
    event.id
}

/// A counter of a `/metrics` text, 0 when it is not there.
async fn counter(http: &reqwest::Client, url: String, name: &str) -> u64 {
    let text = http
        .get(url)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_read_through_the_gateway_includes_every_purchase_the_stream_held_when_it_arrived() {
    // The gateway asks the stream's end while orders reads its view as it is, and asks
    // again with that end when the view was behind.
    let shop = Shop::start().await;
    let token = shop.token("victor", "1234").await;
    let http = reqwest::Client::new();
    // Two purchases, each read at once as a whole history (the second while the
    // stream moves: the gateway's copy from the first read is checked otherwise), then
    // the newest page.
    for i in 0..40u32 {
        let mut stored = String::new();
        for (read, path) in [
            ("whole history", "/api/purchases"),
            ("whole history, the stream moving", "/api/purchases"),
            ("newest page", "/api/purchases?limit=3&order=newest"),
        ] {
            if path == "/api/purchases" {
                stored = store_purchase(&shop, "victor", 1 + i % 3).await;
            }
            let (status, body) =
                testkit::send_carefully(http.get(shop.url(path)).bearer_auth(&token)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(ids(&body).contains(&stored), "event {i} is in the {read}");
        }
    }
    // The gateway asked the stream's end, and orders asked it nothing: it answered from
    // its view as it was, or once it held the end the gateway gave.
    let asked =
        |how: &str| format!(r#"shop_stream_end_questions_total{{stream="ORDERS",how="{how}"}}"#);
    let by_gateway = counter(&http, shop.url("/metrics"), &asked("direct_get")).await
        + counter(&http, shop.url("/metrics"), &asked("stream_info")).await;
    assert!(
        by_gateway > 0,
        "the gateway asked the end {by_gateway} times"
    );
    for how in ["direct_get", "stream_info"] {
        assert_eq!(
            counter(&http, shop.orders.url("/metrics"), &asked(how)).await,
            0,
            "orders asked the end by {how}"
        );
    }
}

#[tokio::test]
async fn a_kept_history_is_sent_without_asking_orders_until_the_stream_has_a_newer_purchase() {
    let shop = Shop::start().await;
    let token = shop.token("victor", "1234").await;
    let http = reqwest::Client::new();
    let read = || async {
        let (status, body) =
            testkit::send_carefully(http.get(shop.url("/api/purchases")).bearer_auth(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids(&body)
    };
    let asked_orders = || {
        counter(
            &http,
            shop.url("/metrics"),
            r#"shop_requests_total{service="gateway",door="bus",op="orders.purchases",status="200"}"#,
        )
    };
    let mut all = Vec::new();
    for i in 0..20 {
        // Read until one is the gateway's copy, orders not asked (the copy needs the
        // stream's word of the last second that direct gets are in use); each read
        // shows every purchase.
        let deadline = tokio::time::Instant::now() + testkit::PATIENCE;
        loop {
            let asked = asked_orders().await;
            assert_eq!(read().await, all, "a read before purchase {i}");
            if asked_orders().await == asked {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "before purchase {i}, every read asked orders"
            );
        }
        // A purchase through the gateway, or as another instance's 201 leaves it.
        let bought = if i % 2 == 0 {
            buy(&shop, &http, &token, &format!("victor-{i}")).await["id"]
                .as_str()
                .expect("an id")
                .to_owned()
        } else {
            store_purchase(&shop, "victor", 3).await
        };
        all.push(bought);
    }
    assert_eq!(read().await, all, "the last purchase too");
}
