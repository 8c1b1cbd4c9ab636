//! The users service in this process against a real nats-server and a real SQLite file
//! in a temp dir, and what its tests share.

pub use std::{net::SocketAddr, path::Path, time::Duration};

pub use async_nats::{HeaderMap, service::NATS_SERVICE_ERROR_CODE};
pub use bus_schema::{
    CallError, ErrorCode,
    users::{self, CreateRequest, GetRequest, VerifyRequest},
};
pub use reqwest::StatusCode;
pub use serde_json::{Value, json};
pub use tempfile::TempDir;
pub use testkit::{NatsServer, Running, error_of, read};

pub struct TestApp {
    pub users: Running,
    pub http: reqwest::Client,
    pub nats: async_nats::Client,
    // Dropped last: the server and the files outlive the app.
    pub _dir: TempDir,
    pub server: NatsServer,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut ::users::Config)) -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ::users::Config::for_tests(server.url(), dir.path().join("users.db"));
        tweak(&mut config);
        let users = Running::spawn(::users::build(config).await.expect("users builds"));
        let nats = async_nats::connect(server.url())
            .await
            .expect("test client connects");
        Self {
            users,
            http: reqwest::Client::new(),
            nats,
            _dir: dir,
            server,
        }
    }

    /// The HTTP door's address.
    pub fn addr(&self) -> SocketAddr {
        self.users.addr()
    }

    pub fn url(&self, path: &str) -> String {
        self.users.url(path)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        read(
            self.http
                .get(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    /// A raw request on the bus, returning the error code header (if any) and the body.
    pub async fn raw_bus(&self, subject: &'static str, payload: Vec<u8>) -> (Option<u16>, Vec<u8>) {
        let reply = self
            .nats
            .request(subject, payload.into())
            .await
            .expect("bus request answered");
        let code = reply
            .headers
            .as_ref()
            .and_then(|h: &HeaderMap| h.get(NATS_SERVICE_ERROR_CODE))
            .and_then(|v| v.as_str().parse().ok());
        (code, reply.payload.to_vec())
    }

    /// Stops the app as Ctrl-C would and waits until it has finished.
    pub async fn stop(&mut self) {
        self.users.stop().await;
    }
}

pub fn creds(username: &str, password: &str) -> Value {
    json!({ "username": username, "password": password })
}

/// One users instance and its own data directory.
pub struct Instance {
    pub running: Running,
    pub dir: TempDir,
}

impl Instance {
    pub async fn start(server: &NatsServer) -> Self {
        Self::start_in(server, tempfile::tempdir().expect("temp dir")).await
    }

    pub async fn start_in(server: &NatsServer, dir: TempDir) -> Self {
        Self::start_with(server, dir, |_| {}).await
    }

    pub async fn start_with(
        server: &NatsServer,
        dir: TempDir,
        tweak: impl FnOnce(&mut ::users::Config),
    ) -> Self {
        let mut config = ::users::Config::for_tests(server.url(), dir.path().join("users.db"));
        tweak(&mut config);
        let app = ::users::build(config).await.expect("users builds");
        Self {
            running: Running::spawn(app),
            dir,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(self.running.url(path))
            .json(&body)
            .send()
            .await
            .expect("sent");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = reqwest::get(self.running.url(path)).await.expect("sent");
        (
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn verify(&self, name: &str, password: &str) -> Value {
        let (status, body) = self.post("/users/verify", creds(name, password)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["valid"].clone()
    }
}

/// The rows of a `users.db` view: (id, username, hash).
pub fn rows(path: &Path) -> Vec<(i64, String, String)> {
    let conn = rusqlite::Connection::open(path).expect("open the view");
    let mut statement = conn
        .prepare("SELECT id, username, password FROM users ORDER BY id")
        .expect("query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read")
}

/// A database as an earlier version left it: the table of the original, no view table.
pub fn legacy_db(path: &Path, rows: &[(i64, &str, &str)]) {
    let conn = rusqlite::Connection::open(path).expect("create");
    conn.execute_batch(
        "CREATE TABLE users (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             username TEXT UNIQUE NOT NULL,
             password TEXT NOT NULL
         );",
    )
    .expect("schema");
    for (id, name, hash) in rows {
        conn.execute(
            "INSERT INTO users (id, username, password) VALUES (?1, ?2, ?3)",
            rusqlite::params![id, name, hash],
        )
        .expect("row");
    }
}
