//! Failed logins counted per account, across parallel guesses and instances.

use crate::helpers::*;

#[tokio::test]
async fn the_sixth_bad_password_is_a_429_and_the_right_one_waits_for_the_window() {
    let app = TestApp::spawn_with(|c| {
        c.failed_login_window_secs = 2;
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            app.login("victor", "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let response = app
        .http
        .post(app.auth.url("/auth/login"))
        .json(&json!({ "username": "Victor", "password": "wrong" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After header");
    assert!((1..=2).contains(&retry), "{retry}");
    let (status, body) = app.login("victor", "1234").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password waits too"
    );
    assert!(error_of(&body).contains("too many failed logins"));

    let err = auth::login(
        &app.nats,
        &LoginRequest {
            username: "victor".into(),
            password: "1234".into(),
        },
    )
    .await
    .expect_err("429 on the bus too");
    match err {
        bus_schema::CallError::Service(reply) => {
            assert_eq!(reply.code, ErrorCode::TooManyRequests);
            assert!(reply.retry_after.is_some_and(|s| s >= 1), "{reply:?}");
        }
        other => panic!("{other:?}"),
    }

    // Another account is not affected.
    assert_eq!(app.login("kilian", "abcd").await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.login("victor", "1234").await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_account_is_throttled_like_a_real_one() {
    let app = TestApp::spawn().await;
    let mut real = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..6 {
        real.push(app.login("baptiste", "wrong").await);
        unknown.push(app.login("nobody-here", "wrong").await);
    }
    let statuses =
        |answers: &[(StatusCode, Value)]| answers.iter().map(|a| a.0).collect::<Vec<_>>();
    assert_eq!(statuses(&real), statuses(&unknown));
    assert_eq!(real[5].0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        real[5].1, unknown[5].1,
        "the same words: nothing tells which exists"
    );
}

#[tokio::test]
async fn parallel_guesses_cannot_pass_the_limit_together() {
    let app = TestApp::spawn().await;
    // 40 guesses at once on the bus (the HTTP door also caps logins in flight per
    // address), the right password among them: only 5 attempts are checked at all,
    // whatever order they finish in.
    let mut guesses = Vec::new();
    for n in 0..40 {
        let password = if n == 39 { "1234" } else { "wrong" };
        let nats = app.nats.clone();
        guesses.push(async move {
            let request = LoginRequest {
                username: "victor".into(),
                password: password.into(),
            };
            match auth::login(&nats, &request).await {
                Ok(_) => StatusCode::OK,
                Err(err) => StatusCode::from_u16(err.code().as_u16()).expect("a status"),
            }
        });
    }
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|status| **status != StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked, 5, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [
            StatusCode::UNAUTHORIZED,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(s)),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn two_auth_instances_share_the_failed_login_count_and_each_others_tokens() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    // users' own limit out of the way: this is auth's count.
    let mut users_config = users::Config::for_tests(server.url(), dir.path().join("users.db"));
    users_config.max_failed_verifies = 100;
    let _users = Running::spawn(users::build(users_config).await.expect("users builds"));
    let auth_on = || {
        let mut config = ::auth::Config::for_tests(server.url());
        config.max_failed_logins = 3;
        async move { Running::spawn(::auth::build(config).await.expect("auth builds")) }
    };
    let (a, b) = (auth_on().await, auth_on().await);
    let http = reqwest::Client::new();
    let login = |on: &Running, password: &str| {
        http.post(on.url("/auth/login"))
            .json(&json!({ "username": "kilian", "password": password }))
            .send()
    };
    let (status, body) = {
        let response = login(&a, "abcd").await.expect("sent");
        (
            response.status(),
            response.json::<Value>().await.expect("json"),
        )
    };
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("a token").to_owned();
    let verified = http
        .post(b.url("/auth/verify"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("sent");
    assert_eq!(verified.status(), StatusCode::OK, "b accepts a's token");

    for (i, on) in [&a, &b, &a].into_iter().enumerate() {
        let status = login(on, "wrong").await.expect("sent").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong password {i}");
    }
    // Each instance has counted the other's attempts (a bus hop away): b the start and
    // success of the first login and two failures made on a, a the failure made on b.
    testkit::throttle_shared(&b.url("/metrics"), "login_account", 4).await;
    testkit::throttle_shared(&a.url("/metrics"), "login_account", 1).await;
    for on in [&a, &b] {
        let status = login(on, "abcd").await.expect("sent").status();
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "three failures in all block the account on every instance"
        );
    }
}
