//! Histories of any length: pages on the bus, each well under a NATS message, and the
//! whole history on the HTTP door, streamed, in the format of one reply.

use bus_schema::{
    ErrorCode,
    orders::{self, PurchasesRequest},
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// Purchases of one buyer whose replies, with these names, weigh about 2.9 MB: three
/// times what one NATS message carries.
const MANY: usize = 3000;

fn long_name(n: usize) -> String {
    format!("{n:05} {}", "a rather long article name ".repeat(15))
}

/// Every page of `request`'s history on the bus, following `next`.
async fn walk(app: &TestApp, mut request: PurchasesRequest) -> Vec<orders::PurchasesReply> {
    let mut pages = Vec::new();
    loop {
        let calls = app.auth.calls_for(&request.username);
        let page =
            testkit::retry_unavailable(|| orders::purchases_with(&app.nats, &request, &calls))
                .await
                .expect("a page");
        let next = page.next.clone();
        pages.push(page);
        match next {
            Some(cursor) => request.cursor = Some(cursor),
            None => return pages,
        }
    }
}

fn ids(items: &[orders::PurchaseItem]) -> Vec<String> {
    items.iter().map(|i| i.id.clone()).collect()
}

#[tokio::test]
async fn a_history_longer_than_one_bus_message_is_read_in_pages_on_the_bus() {
    let app = TestApp::spawn().await;
    let all = testkit::publish_purchases(&app.nats, "ada", MANY, long_name).await;

    // A request of today's form: the first page, with the count and total of all.
    let pages = walk(&app, PurchasesRequest::of("ada")).await;
    assert!(pages.len() > 2, "{} pages", pages.len());
    for page in &pages {
        assert_eq!(page.count, MANY as u64);
        assert_eq!(
            page.total,
            (0..MANY).map(|n| (1 + n as u64 % 3) * 1000).sum::<u64>()
        );
        assert_eq!(page.purchases.len(), page.items.len());
        let encoded = serde_json::to_vec(page).expect("json").len();
        assert!(
            encoded <= orders::MAX_PAGE_BYTES,
            "a page of {encoded} bytes"
        );
    }
    let read: Vec<String> = pages.iter().flat_map(|p| ids(&p.items)).collect();
    assert_eq!(read, all, "every purchase once, oldest first");

    // Newest first, a few at a time.
    let newest = walk(
        &app,
        PurchasesRequest {
            limit: Some(400),
            newest_first: true,
            ..PurchasesRequest::of("ada")
        },
    )
    .await;
    assert!(newest.iter().all(|p| p.items.len() <= 400));
    let read: Vec<String> = newest.iter().flat_map(|p| ids(&p.items)).collect();
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(read, reversed);

    // A cursor no reply gave, and a page size out of bounds, are 400s.
    for request in [
        PurchasesRequest {
            cursor: Some("page two".into()),
            ..PurchasesRequest::of("ada")
        },
        PurchasesRequest {
            limit: Some(0),
            ..PurchasesRequest::of("ada")
        },
        PurchasesRequest {
            limit: Some(orders::MAX_PAGE + 1),
            ..PurchasesRequest::of("ada")
        },
    ] {
        let calls = app.auth.calls_for("ada");
        let err = orders::purchases_with(&app.nats, &request, &calls)
            .await
            .expect_err("refused");
        assert_eq!(err.code(), ErrorCode::BadRequest, "{request:?}");
    }
}

#[tokio::test]
async fn a_history_longer_than_one_bus_message_is_whole_on_the_http_door_and_paged_on_request() {
    let app = TestApp::spawn().await;
    let all = testkit::publish_purchases(&app.nats, "ada", MANY, long_name).await;
    let token = app.token("ada");

    let (status, body) = send_carefully(
        app.http
            .get(app.orders.url("/orders/ada/purchases"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.to_string().len() > 2_000_000,
        "more than a NATS message"
    );
    assert_eq!(body["user"], "ada");
    assert_eq!(body["count"], MANY);
    let items: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(items, all, "the whole history, oldest first, once");
    let names: Vec<String> = body["purchases"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("a name").to_owned())
        .collect();
    assert_eq!(names, (0..MANY).map(long_name).collect::<Vec<_>>());
    assert!(body.get("next").is_none(), "{:?}", body.get("next"));

    // Pages of 250, newest first, by following each page's link.
    let base = app.orders.url("");
    let pages = testkit::follow_pages(
        &app.http,
        &base,
        "/orders/ada/purchases?limit=250&order=newest",
        &token,
    )
    .await;
    let mut read = Vec::new();
    for page in &pages {
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 250);
        read.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_owned()),
        );
    }
    let mut reversed = all;
    reversed.reverse();
    assert_eq!(read, reversed);

    for (query, reason) in [
        ("limit=0", "page_limit_invalid"),
        ("limit=ten", "page_limit_invalid"),
        ("limit=1001", "page_limit_invalid"),
        ("cursor=zz", "cursor_invalid"),
        ("order=sideways", "invalid_request"),
    ] {
        let (status, body): (StatusCode, Value) = app
            .get(&format!("/orders/ada/purchases?{query}"), Some(&token))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["reason"], reason, "{query}");
    }
}

#[tokio::test]
async fn an_empty_history_is_whole_and_a_page_alike() {
    let app = TestApp::spawn().await;
    let token = app.token("nobody");
    let (status, body) = app.get("/orders/nobody/purchases", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({ "user": "nobody", "purchases": [], "items": [], "count": 0, "total": 0 })
    );
    let (status, body) = app
        .get("/orders/nobody/purchases?limit=5", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], serde_json::json!([]));
    assert!(body.get("next_url").is_none());
}

#[tokio::test]
async fn a_page_asked_with_its_tag_is_answered_not_modified_until_its_user_buys() {
    let app = TestApp::spawn().await;
    for i in 0..300 {
        publish(&app.js, &event("nina", 1 + i % 3)).await;
    }
    let calls = app.auth.calls_for("nina");
    let ask = |if_none_match: Option<String>| {
        let (nats, calls) = (app.nats.clone(), calls.clone());
        async move {
            let request = PurchasesRequest {
                if_none_match,
                ..PurchasesRequest::of("nina")
            };
            testkit::retry_unavailable(|| orders::purchases_bytes(&nats, &request, &calls))
                .await
                .expect("a reply")
        }
    };
    let whole = ask(None).await;
    let page: orders::PurchasesReply = serde_json::from_slice(&whole).expect("a page");
    assert_eq!(page.count, 300);
    let tag = orders::page_tag(&whole);
    assert_eq!(&ask(Some(tag.clone())).await[..], orders::NOT_MODIFIED);
    assert_eq!(ask(Some(format!("{tag}0"))).await, whole, "another tag");

    let (status, body) = app
        .buy(
            "nina",
            &app.token("nina"),
            serde_json::json!({"article_id": 2}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let grown = ask(Some(tag)).await;
    let page: orders::PurchasesReply = serde_json::from_slice(&grown).expect("the page again");
    assert_eq!(page.count, 301);
    assert_eq!(
        page.items.last().map(|i| i.id.as_str()),
        body["id"].as_str()
    );
}

#[tokio::test]
async fn the_http_door_tags_a_whole_history_and_answers_304_while_it_is_the_same() {
    let app = TestApp::spawn().await;
    publish(&app.js, &event("olga", 1)).await;
    let token = app.token("olga");
    let read = |if_none_match: Option<&str>| {
        let request = app
            .http
            .get(app.orders.url("/orders/olga/purchases"))
            .bearer_auth(&token);
        testkit::get_unless(request, if_none_match)
    };
    let first = read(None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().expect("ascii").to_owned();
    let held = read(Some(&etag)).await;
    assert_eq!(held.status(), StatusCode::NOT_MODIFIED);
    assert!(held.bytes().await.expect("a body").is_empty());

    let (status, body) = app
        .buy("olga", &token, serde_json::json!({"article_id": 2}), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let after = read(Some(&etag)).await;
    assert_eq!(after.status(), StatusCode::OK, "the history grew");
    assert_ne!(after.headers()["etag"].to_str().expect("ascii"), etag);
    let page = read(None).await;
    let (_, page) = testkit::read(page).await;
    assert_eq!(page["count"], 2);
}

#[tokio::test]
async fn a_page_read_as_is_says_how_far_the_view_went_and_one_read_up_to_an_end_waits_for_it() {
    // What the gateway asks: the page as the view holds it (and how far that is), or the
    // page once the view holds an end the gateway asked the stream itself.
    let app = TestApp::spawn().await;
    let calls = app.auth.calls_for("iris");
    for i in 0..50 {
        let event = event("iris", 1 + i % 3);
        let seq = publish(&app.js, &event).await;
        let request = PurchasesRequest::of("iris");
        let (reply, next) =
            testkit::retry_unavailable(|| orders::purchases_as_is(&app.nats, &request, &calls))
                .await
                .expect("a reply");
        let next = next.expect("the view's next sequence, in a header");
        let page: orders::PurchasesReply = serde_json::from_slice(&reply).expect("a page");
        // Every event of the stream is iris's: the view held at least those below `next`.
        assert!(
            page.count + 1 >= next,
            "{} purchases, view at {next}",
            page.count
        );
        if next > seq {
            assert!(
                page.items.iter().any(|item| item.id == event.id),
                "event {i}"
            );
        }
        let up_to = PurchasesRequest {
            stream_end: Some(seq),
            ..PurchasesRequest::of("iris")
        };
        let page = testkit::retry_unavailable(|| orders::purchases_with(&app.nats, &up_to, &calls))
            .await
            .expect("a page");
        assert!(
            page.items.iter().any(|item| item.id == event.id),
            "event {i} is in the page read up to its sequence"
        );
    }
    // Neither asked the stream's end.
    for how in ["direct_get", "stream_info"] {
        let asked = format!(r#"shop_stream_end_questions_total{{stream="ORDERS",how="{how}"}}"#);
        assert_eq!(app.metric(&asked).await, 0, "{how}");
    }
}
