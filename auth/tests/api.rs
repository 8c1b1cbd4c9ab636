//! The auth service through both doors, with the real users service and a real
//! nats-server.

use std::time::Duration;

use base64::Engine;

use bus_schema::{
    ErrorCode,
    auth::{self, LoginRequest, VerifyRequest},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::{NatsServer, Running};

/// The kind of key the previous version signed with: its tokens must be refused.
const OLD_HS256_KEY: &str = "a test key that is long enough for HS256!";

struct TestApp {
    auth: Running,
    users: Running,
    http: reqwest::Client,
    nats: async_nats::Client,
    _dir: TempDir,
    server: NatsServer,
}

impl TestApp {
    /// users and auth.
    async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    async fn spawn_with(tweak: impl FnOnce(&mut ::auth::Config)) -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ::auth::Config::for_tests(server.url());
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
async fn tampered_foreign_old_unsigned_and_garbage_tokens_are_invalid() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .expect("base64"),
    )
    .expect("json");
    assert_eq!(header["alg"], "EdDSA");
    assert!(
        header["kid"].as_str().is_some_and(|k| !k.is_empty()),
        "{header}"
    );

    // The payload of another user under victor's signature.
    let other = forge(Algorithm::HS256, &json!({ "sub": "kilian" }), OLD_HS256_KEY);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).expect("payload"),
        parts[2]
    );
    // A token of the previous version (HS256), and one claiming a key id of auth's.
    let old = forge(Algorithm::HS256, &claims(600, 0), OLD_HS256_KEY);
    let mut with_kid = Header::new(Algorithm::HS256);
    with_kid.kid = header["kid"].as_str().map(str::to_owned);
    let old_with_kid = jsonwebtoken::encode(
        &with_kid,
        &claims(600, 0),
        &EncodingKey::from_secret(OLD_HS256_KEY.as_bytes()),
    )
    .expect("encode");
    // {"alg":"none","typ":"JWT"}, the real claims, and no signature.
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let too_long = "a".repeat(5000);

    for (what, bad) in [
        ("tampered", tampered.as_str()),
        ("HS256 of the previous version", &old),
        ("HS256 naming auth's key id", &old_with_kid),
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
async fn a_key_nobody_published_is_refused_and_a_published_one_accepted() {
    let app = TestApp::spawn().await;
    // An Ed25519 key of its own, published in AUTH_KEYS as auth would.
    let stub = testkit::StubAuth::start(&app.nats).await;
    let (status, body) = app.verify(&stub.token("victor")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a key published on the bus is used: {body}"
    );
    // A key pair nobody published: same shape, unknown kid.
    let unknown = jsonwebtoken::encode(
        &{
            let mut h = Header::new(Algorithm::EdDSA);
            h.kid = Some("never-published".into());
            h
        },
        &claims(600, 0),
        &service_kit::tokens::ed25519_signing_key(&[7u8; 32]),
    )
    .expect("encode");
    let (status, body) = app.verify(&unknown).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["reason"], "token_invalid");
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_say_so() {
    let app = TestApp::spawn().await;
    let stub = testkit::StubAuth::start(&app.nats).await;
    let (status, body) = app.verify(&stub.token_with("victor", -7200, -3600)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("expired"), "{body}");
    assert_eq!(body["reason"], "token_expired");

    let (status, body) = app.verify(&stub.token_with("victor", 3600, 7200)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error_of(&body).contains("not valid yet"), "{body}");

    let (status, body) = app.verify(&stub.token_with("victor", 0, 600)).await;
    assert_eq!(status, StatusCode::OK, "a well-made token passes: {body}");
}

#[tokio::test]
async fn a_token_issued_with_a_short_lifetime_expires() {
    let app = TestApp::spawn_with(|c| {
        c.token_ttl_secs = 1;
        c.tokens.leeway_secs = 0;
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

// ---------------------------------------------------------------- the keys

#[tokio::test]
async fn the_public_keys_are_a_jwk_set_and_tokens_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let token = app.token().await;
    let kid = kid_of(&token);
    let jwks: Value = reqwest::get(app.auth.url("/.well-known/jwks.json"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the signing key is published");
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key["x"].as_str().expect("x"))
        .expect("base64url");
    assert_eq!(x.len(), 32);
    assert!(key.get("d").is_none(), "no private part");

    // A restarted auth signs with a new key and still accepts the old one's tokens.
    app.auth.stop().await;
    let config = ::auth::Config::for_tests(app.server.url());
    app.auth = Running::spawn(::auth::build(config).await.expect("auth rebuilds"));
    assert_eq!(app.verify(&token).await.0, StatusCode::OK);
    let again = app.token().await;
    assert_ne!(kid_of(&again), kid, "each start makes its own pair");
}

#[tokio::test]
async fn a_rotated_key_signs_new_tokens_while_the_old_ones_stay_valid() {
    let app = TestApp::spawn_with(|c| c.key_rotation_secs = 1).await;
    let first = app.token().await;
    let mut rotated = None;
    let started = std::time::Instant::now();
    while started.elapsed() < testkit::PATIENCE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let token = app.token().await;
        if kid_of(&token) != kid_of(&first) {
            rotated = Some(token);
            break;
        }
    }
    let rotated = rotated.expect("a new key signs new tokens");
    assert_eq!(
        app.verify(&first).await.0,
        StatusCode::OK,
        "the old key's token"
    );
    assert_eq!(
        app.verify(&rotated).await.0,
        StatusCode::OK,
        "the new key's token"
    );
}

#[tokio::test]
async fn short_or_malformed_keys_on_the_bus_are_ignored_without_harm() {
    let app = TestApp::spawn().await;
    let js = async_nats::jetstream::new(app.nats.clone());
    let bad_keys = [
        json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "short", "x": "AAAA", "valid_until": u64::MAX / 2 }),
        json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "empty", "x": "", "valid_until": u64::MAX / 2 }),
        json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "long", "x": "A".repeat(100), "valid_until": u64::MAX / 2 }),
        json!({ "kty": "RSA", "kid": "rsa", "n": "x", "e": "AQAB" }),
        json!("not even an object"),
    ];
    for (i, key) in bad_keys.iter().enumerate() {
        js.publish(format!("auth.keys.bad{i}"), key.to_string().into())
            .await
            .expect("sent")
            .await
            .expect("stored");
    }
    // Each bad key named by a token: refused, never a panic; auth keeps working.
    for kid in ["short", "empty", "long", "rsa"] {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        let token = jsonwebtoken::encode(
            &header,
            &claims(600, 0),
            &service_kit::tokens::ed25519_signing_key(&[9u8; 32]),
        )
        .expect("encode");
        let (status, body) = app.verify(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kid}: {body}");
    }
    let token = app.token().await;
    assert_eq!(app.verify(&token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_logout_revokes_that_token_only() {
    let app = TestApp::spawn().await;
    let token = app.token().await;
    let other = app.token().await;
    let response = app
        .http
        .post(app.auth.url("/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = app.verify(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "token_revoked");
    assert_eq!(
        app.verify(&other).await.0,
        StatusCode::OK,
        "the person's other token"
    );
    // Over the bus too, and a revoked token cannot log out again.
    let err = auth::logout(
        &app.nats,
        &auth::LogoutRequest {
            token: token.clone(),
        },
    )
    .await
    .expect_err("revoked already");
    assert_eq!(err.code(), ErrorCode::Unauthorized);
    let reply = auth::logout(
        &app.nats,
        &auth::LogoutRequest {
            token: other.clone(),
        },
    )
    .await
    .expect("revoked");
    assert!(reply.revoked);
    assert_eq!(app.verify(&other).await.0, StatusCode::UNAUTHORIZED);
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
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
async fn the_micro_service_lists_login_verify_and_logout() {
    let app = TestApp::spawn().await;
    let subjects = testkit::micro_endpoints(&app.nats, "auth").await;
    assert_eq!(subjects, ["auth.login", "auth.logout", "auth.verify"]);
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

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_answers() {
    let app = TestApp::spawn().await;
    let doc: Value = reqwest::get(app.auth.url("/openapi.json"))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let token = app.token().await;
    testkit::check_openapi(
        &doc,
        &app.auth.url(""),
        Some(&token),
        &[
            "/auth/login",
            "/auth/verify",
            "/auth/logout",
            "/.well-known/jwks.json",
            "/readyz",
            "/metrics",
            "/healthz",
        ],
    )
    .await;
}
