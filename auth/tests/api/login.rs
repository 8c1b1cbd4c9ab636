//! Logging in: tokens for the normalised name, one answer for a wrong password or an
//! unknown user, a 400 without a field, a 503 while users is down.

use crate::helpers::*;

#[tokio::test]
async fn login_with_a_mixed_case_username_gives_a_bearer_token_for_the_normalised_name() {
    let app = TestApp::spawn().await;
    let (status, body) = app.login(" Victor ", "1234").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["username"], "victor");
    assert_eq!(body["expires_in"], 1800);
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let reply = auth::login(
        &app.nats,
        &LoginRequest {
            username: "KILIAN".into(),
            password: "abcd".into(),
        },
    )
    .await
    .expect("bus login");
    assert_eq!(reply.username, "kilian");
    assert_eq!(reply.token_type, "Bearer");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = TestApp::spawn().await;
    let wrong = app.login("victor", "wrong").await;
    let unknown = app.login("nobody", "wrong").await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    assert_eq!(error_of(&wrong.1), "invalid username or password");

    let err = auth::login(
        &app.nats,
        &LoginRequest {
            username: "nobody".into(),
            password: "x".into(),
        },
    )
    .await
    .expect_err("401");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    assert_eq!(err.to_string(), "invalid username or password (401)");
}

#[tokio::test]
async fn a_login_without_a_field_is_a_400() {
    let app = TestApp::spawn().await;
    for body in [
        json!({ "username": "victor" }),
        json!({ "password": "1234" }),
        json!({}),
    ] {
        let (status, reply) = app.post("/auth/login", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_of(&reply).contains("required"));
    }
    let err = auth::login(&app.nats, &LoginRequest::default())
        .await
        .expect_err("400");
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

#[tokio::test]
async fn a_login_while_users_is_down_is_a_503_not_a_401() {
    let mut app = TestApp::spawn().await;
    app.users.stop().await;
    let (status, body) = app.login("victor", "1234").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        error_of(&body).contains("users service is unavailable"),
        "{body}"
    );
    let err = auth::login(
        &app.nats,
        &LoginRequest {
            username: "victor".into(),
            password: "1234".into(),
        },
    )
    .await
    .expect_err("503");
    assert_eq!(err.code(), ErrorCode::Unavailable);
}
