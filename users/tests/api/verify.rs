//! Checking passwords: valid only for the right one, 400 without a field, and no
//! password oracle on either door.

use crate::helpers::*;

#[tokio::test]
async fn verify_says_valid_only_for_the_right_password() {
    let app = TestApp::spawn().await;
    app.post("/users", creds("dave", "right password")).await;
    let check = |name: &'static str, password: &'static str| {
        app.post("/users/verify", creds(name, password))
    };
    assert_eq!(
        check("dave", "right password").await,
        (StatusCode::OK, json!({ "valid": true }))
    );
    assert_eq!(
        check(" DAVE ", "right password").await,
        (StatusCode::OK, json!({ "valid": true }))
    );
    assert_eq!(
        check("dave", "wrong password").await,
        (StatusCode::OK, json!({ "valid": false }))
    );
    assert_eq!(
        check("nobody", "right password").await,
        (StatusCode::OK, json!({ "valid": false }))
    );
}

#[tokio::test]
async fn verify_without_a_field_is_a_400() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post("/users/verify", json!({ "username": "dave" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("password is required"));
    let (status, body) = app.post("/users/verify", json!({ "password": "x" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("username is required"));
}

#[tokio::test]
async fn verify_is_no_password_oracle_on_either_door() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let (status, body) = app.post("/users/verify", creds("victor", "wrong")).await;
        assert_eq!((status, &body["valid"]), (StatusCode::OK, &json!(false)));
    }
    // The sixth guess, even the right password, waits; an account that does not exist
    // is limited the same way.
    let (status, body) = app.post("/users/verify", creds("victor", "1234")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["reason"], "too_many_failed_logins");
    let err = users::verify(
        &app.nats,
        &VerifyRequest {
            username: "victor".into(),
            password: "1234".into(),
        },
    )
    .await
    .expect_err("429 on the bus too");
    assert_eq!(err.code(), ErrorCode::TooManyRequests);
    for _ in 0..5 {
        app.post("/users/verify", creds("nobody-here", "wrong"))
            .await;
    }
    let (status, _) = app.post("/users/verify", creds("nobody-here", "x")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another account is not affected.
    let (status, body) = app.post("/users/verify", creds("kilian", "abcd")).await;
    assert_eq!((status, &body["valid"]), (StatusCode::OK, &json!(true)));
}
