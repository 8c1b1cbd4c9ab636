//! Reading: the catalogue and the history.

use bus_schema::orders::{self};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use testkit::NatsServer;

#[tokio::test]
async fn the_catalogue_needs_a_token_and_lists_the_original_articles() {
    let app = TestApp::spawn().await;
    let token = app.token("victor");
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
    let token = app.token("victor");
    let (status, body) = app.get("/orders/VICTOR/purchases", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({ "user": "victor", "purchases": [], "items": [], "count": 0, "total": 0 })
    );
    let (status, body) = app.get("/orders/kilian/purchases", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(error_of(&body).contains("logged in as victor"));
    assert_eq!(
        app.get("/orders/kilian/purchases", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
