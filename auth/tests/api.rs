//! The auth service through both doors, with the real users service and a real
//! nats-server.

use std::{os::unix::fs::PermissionsExt, path::PathBuf, time::Duration};

use bus_schema::{
    ErrorCode,
    auth::{self, LoginRequest, VerifyRequest},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::{NatsServer, Running};

const SECRET: &str = "a test key that is long enough for HS256!";

struct TestApp {
    auth: Running,
    users: Running,
    http: reqwest::Client,
    nats: async_nats::Client,
    secrets: PathBuf,
    _dir: TempDir,
    server: NatsServer,
}

impl TestApp {
    /// users and auth, auth with the key `SECRET`.
    async fn spawn() -> Self {
        Self::spawn_with(|c| c.jwt_secret = Some(::auth::config::Secret::new(SECRET))).await
    }

    async fn spawn_with(tweak: impl FnOnce(&mut ::auth::Config)) -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let secrets = dir.path().join("secrets");
        let mut config = ::auth::Config::for_tests(server.url(), secrets.clone());
        tweak(&mut config);
        // users counts wrong passwords per account too: the same limit here.
        let mut users_config = users::Config::for_tests(server.url(), dir.path().join("users.db"));
        users_config.max_failed_verifies = config.max_failed_logins;
        users_config.failed_verify_window_secs = config.failed_login_window_secs;
        let users = Running::spawn(users::build(users_config).await.expect("users builds"));
        let auth = Running::spawn(::auth::build(config).await.expect("auth builds"));
        let nats = async_nats::connect(server.url()).await.expect("connect");
        Self {
            auth,
            users,
            http: reqwest::Client::new(),
            nats,
            secrets,
            _dir: dir,
            server,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.auth.url(path))
            .json(&body)
            .send()
            .await
            .expect("sent");
        let status = response.status();
        (status, response.json().await.expect("json body"))
    }

    async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/auth/login",
            json!({ "username": username, "password": password }),
        )
        .await
    }

    async fn token(&self) -> String {
        let (status, body) = self.login("victor", "1234").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    }

    async fn verify(&self, token: &str) -> (StatusCode, Value) {
        self.post("/auth/verify", json!({ "token": token })).await
    }
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token made outside the service, with any header, claims and key.
fn forge(alg: Algorithm, claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("encode")
}

fn claims(exp_offset: i64, nbf_offset: i64) -> Value {
    let now = now() as i64;
    json!({ "sub": "victor", "iat": now, "nbf": now + nbf_offset, "exp": now + exp_offset,
            "jti": "x", "iss": "shop-auth" })
}

// ---------------------------------------------------------------- login

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

// ---------------------------------------------------------------- verify

#[tokio::test]
async fn a_good_token_verifies_on_both_doors() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    assert_eq!(
        app.verify(&token).await,
        (
            StatusCode::OK,
            json!({ "username": "victor", "valid": true })
        )
    );
    let reply = auth::verify(&app.nats, &VerifyRequest { token })
        .await
        .expect("valid");
    assert_eq!(reply.username, "victor");
    assert!(reply.valid);
}

#[tokio::test]
async fn a_missing_token_is_a_400() {
    let app = TestApp::spawn().await;
    let (status, body) = app.post("/auth/verify", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body), "token is required");
    let err = auth::verify(&app.nats, &VerifyRequest::default())
        .await
        .expect_err("400");
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

#[tokio::test]
async fn tampered_foreign_unsigned_and_garbage_tokens_are_invalid() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let parts: Vec<&str> = token.split('.').collect();

    // The payload of another user under victor's signature.
    let other = forge(Algorithm::HS256, &json!({ "sub": "kilian" }), SECRET);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).expect("payload"),
        parts[2]
    );
    let foreign = forge(
        Algorithm::HS256,
        &claims(600, 0),
        "another key that is long enough, really",
    );
    let wrong_alg = forge(Algorithm::HS512, &claims(600, 0), SECRET);
    // {"alg":"none","typ":"JWT"}, the real claims, and no signature.
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let too_long = "a".repeat(5000);

    for (what, bad) in [
        ("tampered", tampered.as_str()),
        ("foreign key", &foreign),
        ("HS512", &wrong_alg),
        ("alg none", &unsigned),
        ("garbage", "not.a.token"),
        ("no dots", "garbage"),
        ("huge", &too_long),
    ] {
        let (status, body) = app.verify(bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(error_of(&body), "the token is invalid", "{what}");
        let err = auth::verify(
            &app.nats,
            &VerifyRequest {
                token: bad.to_owned(),
            },
        )
        .await
        .expect_err(what);
        assert_eq!(err.code(), ErrorCode::Unauthorized, "{what}");
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_say_so() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .verify(&forge(Algorithm::HS256, &claims(-3600, -7200), SECRET))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("expired"), "{body}");

    let (status, body) = app
        .verify(&forge(Algorithm::HS256, &claims(7200, 3600), SECRET))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("not valid yet"), "{body}");

    let (status, body) = app
        .verify(&forge(Algorithm::HS256, &claims(600, 0), SECRET))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a well-made token with this key passes: {body}"
    );
}

#[tokio::test]
async fn a_token_issued_with_a_short_lifetime_expires() {
    let app = TestApp::spawn_with(|c| {
        c.jwt_secret = Some(::auth::config::Secret::new(SECRET));
        c.token_ttl_secs = 1;
        c.clock_leeway_secs = 0;
    })
    .await;
    let (status, body) = app.login("victor", "1234").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().expect("token").to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = app.verify(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("expired"), "{body}");
}

// ---------------------------------------------------------------- the key

#[tokio::test]
async fn the_generated_key_is_private_and_tokens_survive_a_restart() {
    let mut app = TestApp::spawn_with(|_| {}).await;
    let key = app.secrets.join("jwt.key");
    let mode = std::fs::metadata(&key)
        .expect("key file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(&app.secrets)
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, "the secrets directory is private");
    let token = app.token().await;

    app.auth.stop().await;
    let config = ::auth::Config::for_tests(app.server.url(), app.secrets.clone());
    app.auth = Running::spawn(::auth::build(config).await.expect("auth rebuilds"));
    assert_eq!(app.verify(&token).await.0, StatusCode::OK);
    let contents = std::fs::read_to_string(&key).expect("read");
    assert_eq!(contents.trim().len(), 64, "32 bytes, hex");
}

// ---------------------------------------------------------------- bad input, discovery

#[tokio::test]
async fn malformed_and_oversized_requests_get_a_4xx_on_both_doors() {
    let app = TestApp::spawn().await;
    let url = format!("http://{}/auth/login", app.auth.addr());
    for (body, content_type, expected) in [
        ("{oops".to_owned(), "application/json", 400),
        (
            r#"{"username":1,"password":2}"#.to_owned(),
            "application/json",
            400,
        ),
        (
            "username=x".to_owned(),
            "application/x-www-form-urlencoded",
            415,
        ),
        (
            format!(r#"{{"username":"{}"}}"#, "v".repeat(70_000)),
            "application/json",
            413,
        ),
    ] {
        let response = app
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), expected);
        let body: Value = response.json().await.expect("json");
        assert!(!error_of(&body).is_empty());
    }
    for (subject, payload, code) in [
        (auth::subject::LOGIN, b"{oops".to_vec(), "400"),
        (auth::subject::VERIFY, br#"{"token": 5}"#.to_vec(), "400"),
        (auth::subject::VERIFY, vec![b' '; 70_000], "413"),
    ] {
        let reply = app
            .nats
            .request(subject, payload.into())
            .await
            .expect("answered");
        let headers = reply.headers.expect("error headers");
        assert_eq!(
            headers.get("Nats-Service-Error-Code").map(|v| v.as_str()),
            Some(code),
            "{subject}"
        );
        assert!(
            headers
                .get("Nats-Service-Error")
                .is_some_and(|v| !v.as_str().is_empty())
        );
    }
}

#[tokio::test]
async fn the_micro_service_lists_login_and_verify() {
    let app = TestApp::spawn().await;
    let subjects = testkit::micro_endpoints(&app.nats, "auth").await;
    assert_eq!(subjects, ["auth.login", "auth.verify"]);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app
        .http
        .get(format!("http://{}/healthz", app.auth.addr()))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app
        .http
        .get(format!("http://{}/readyz", app.auth.addr()))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status(), StatusCode::OK);
    app.token().await;
    let metrics = app
        .http
        .get(format!("http://{}/metrics", app.auth.addr()))
        .send()
        .await
        .expect("sent");
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains(r#"service="auth",door="http",op="POST /auth/login",status="200"} 1"#),
        "{text}"
    );
}

// ---------------------------------------------------------------- throttling

#[tokio::test]
async fn the_sixth_bad_password_is_a_429_and_the_right_one_waits_for_the_window() {
    let app = TestApp::spawn_with(|c| {
        c.jwt_secret = Some(::auth::config::Secret::new(SECRET));
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
    let auth_on = |n: u32| {
        let mut config =
            ::auth::Config::for_tests(server.url(), dir.path().join(format!("secrets-{n}")));
        config.jwt_secret = Some(::auth::config::Secret::new(SECRET));
        config.max_failed_logins = 3;
        async move { Running::spawn(::auth::build(config).await.expect("auth builds")) }
    };
    let (a, b) = (auth_on(1).await, auth_on(2).await);
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
    // The last attempt's announcement is a bus hop away from the other instance.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for on in [&a, &b] {
        let status = login(on, "abcd").await.expect("sent").status();
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "three failures in all block the account on every instance"
        );
    }
}
