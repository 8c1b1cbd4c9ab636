//! The auth service in this process with the real users service and a real
//! nats-server, and what its tests share: requests on its HTTP door, forged tokens.

pub use base64::Engine;
pub use bus_schema::{
    ErrorCode,
    auth::{self, LoginRequest, VerifyRequest},
};
pub use jsonwebtoken::{Algorithm, EncodingKey, Header};
pub use reqwest::StatusCode;
pub use serde_json::{Value, json};
pub use std::time::Duration;
pub use tempfile::TempDir;
pub use testkit::error_of;
pub use testkit::{NatsServer, Running};

/// The kind of key the previous version signed with: its tokens must be refused.
pub const OLD_HS256_KEY: &str = "a test key that is long enough for HS256!";

pub struct TestApp {
    pub auth: Running,
    pub users: Running,
    pub http: reqwest::Client,
    pub nats: async_nats::Client,
    pub _dir: TempDir,
    pub server: NatsServer,
}

impl TestApp {
    /// users and auth.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut ::auth::Config)) -> Self {
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

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
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

    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.post(
            "/auth/login",
            json!({ "username": username, "password": password }),
        )
        .await
    }

    pub async fn token(&self) -> String {
        let (status, body) = self.login("victor", "1234").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn verify(&self, token: &str) -> (StatusCode, Value) {
        self.post("/auth/verify", json!({ "token": token })).await
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token made outside the service, with any header, claims and key.
pub fn forge(alg: Algorithm, claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("encode")
}

pub fn claims(exp_offset: i64, nbf_offset: i64) -> Value {
    let now = now() as i64;
    json!({ "sub": "victor", "iat": now, "nbf": now + nbf_offset, "exp": now + exp_offset,
            "jti": "x", "iss": "shop-auth" })
}

pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}
