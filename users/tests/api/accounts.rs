//! Accounts on the HTTP door: created with the normalised name, one per name, the
//! rules, the demo accounts of the original.

use crate::helpers::*;

#[tokio::test]
async fn creating_a_user_answers_201_with_the_normalised_name_and_get_finds_it() {
    let app = TestApp::spawn().await;
    let (status, body) = app.post("/users", creds("  Alice ", "wonderland")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, json!({ "username": "alice" }));

    let (status, body) = app.get("/users/ALICE").await;
    assert_eq!(status, StatusCode::OK);
    let fields: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["id", "username"], "never a hash in a reply");
    assert_eq!(body["username"], "alice");
    assert!(body["id"].as_i64().is_some_and(|id| id > 0));
}

#[tokio::test]
async fn a_taken_username_is_a_409_whatever_its_case() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.post("/users", creds("bob", "password1")).await.0,
        StatusCode::CREATED
    );
    let (status, body) = app.post("/users", creds("BOB", "password2")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(error_of(&body).contains("already taken"));
}

#[tokio::test]
async fn a_new_account_that_breaks_a_rule_is_a_400_naming_the_rule() {
    let app = TestApp::spawn().await;
    let long_name = "x".repeat(33);
    let long_password = "p".repeat(1025);
    // (body, words of the message, stable reason, limit)
    let cases = [
        (
            json!({ "password": "password1" }),
            "username is required",
            "username_required",
            None,
        ),
        (
            json!({ "username": "carol" }),
            "password is required",
            "password_required",
            None,
        ),
        (
            creds("carol", "short"),
            "at least 8",
            "password_too_short",
            Some(8),
        ),
        (
            creds(&long_name, "password1"),
            "at most 32",
            "username_too_long",
            Some(32),
        ),
        (
            creds("../etc/passwd", "password1"),
            "may only contain",
            "username_invalid",
            None,
        ),
        (
            creds("a.b", "password1"),
            "may only contain",
            "username_invalid",
            None,
        ),
        (
            creds("carol", &long_password),
            "at most 1024",
            "password_too_long",
            Some(1024),
        ),
        (
            json!({ "username": 42, "password": "password1" }),
            "invalid type",
            "malformed_body",
            None,
        ),
    ];
    for (body, rule, reason, limit) in cases {
        let (status, reply) = app.post("/users", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            error_of(&reply).contains(rule),
            "{body} gave {reply}, expected {rule:?}"
        );
        assert_eq!(reply["reason"], reason, "{body} gave {reply}");
        assert_eq!(reply["limit"].as_u64(), limit, "{body} gave {reply}");
    }
    assert_eq!(
        app.get("/users/carol").await.0,
        StatusCode::NOT_FOUND,
        "nothing was written"
    );
}

#[tokio::test]
async fn an_unknown_user_is_a_404_and_an_impossible_name_a_400() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/users/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_of(&body).contains("nobody"));
    let (status, body) = app.get("/users/a*b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("may only contain"));
}

#[tokio::test]
async fn the_demo_accounts_of_the_original_exist_in_a_new_database() {
    let app = TestApp::spawn().await;
    for (name, password) in [("victor", "1234"), ("kilian", "abcd"), ("baptiste", "pass")] {
        let (status, body) = app.post("/users/verify", creds(name, password)).await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({ "valid": true })),
            "{name}"
        );
    }
}

#[tokio::test]
async fn demo_accounts_can_be_turned_off() {
    let app = TestApp::spawn_with(|c| c.no_demo_accounts = true).await;
    assert_eq!(app.get("/users/victor").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_creations_of_one_name_yield_exactly_one_success() {
    let app = TestApp::spawn().await;
    let mut calls = Vec::new();
    for i in 0..16 {
        let nats = app.nats.clone();
        let http = app.http.clone();
        let url = app.url("/users");
        calls.push(tokio::spawn(async move {
            let name = if i % 2 == 0 { "grace" } else { " GRACE" };
            let body = CreateRequest {
                username: name.into(),
                password: format!("password{i}"),
            };
            if i % 2 == 0 {
                let response = http
                    .post(url)
                    .json(&creds(&body.username, &body.password))
                    .send()
                    .await
                    .expect("sent");
                response.status().as_u16()
            } else {
                match users::create(&nats, &body).await {
                    Ok(_) => 201,
                    Err(err) => err.code().as_u16(),
                }
            }
        }));
    }
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        15,
        "{statuses:?}"
    );
}
