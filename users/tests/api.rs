//! The users service through both doors, against a real nats-server and a real SQLite
//! file in a temp dir.

use std::{net::SocketAddr, time::Duration};

use async_nats::{HeaderMap, service::NATS_SERVICE_ERROR_CODE};
use bus_schema::{
    CallError, ErrorCode,
    users::{self, CreateRequest, GetRequest, VerifyRequest},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use testkit::NatsServer;
use tokio::{sync::oneshot, task::JoinHandle};

struct TestApp {
    addr: SocketAddr,
    http: reqwest::Client,
    nats: async_nats::Client,
    stop: Option<oneshot::Sender<()>>,
    running: Option<JoinHandle<()>>,
    // Dropped last: the server and the files outlive the app.
    _dir: TempDir,
    server: NatsServer,
}

impl TestApp {
    async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    async fn spawn_with(tweak: impl FnOnce(&mut ::users::Config)) -> Self {
        let server = NatsServer::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ::users::Config::for_tests(server.url(), dir.path().join("users.db"));
        tweak(&mut config);
        let (addr, stop, running) = start(config).await;
        let nats = async_nats::connect(server.url())
            .await
            .expect("test client connects");
        Self {
            addr,
            http: reqwest::Client::new(),
            nats,
            stop: Some(stop),
            running: Some(running),
            _dir: dir,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
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
    async fn raw_bus(&self, subject: &'static str, payload: Vec<u8>) -> (Option<u16>, Vec<u8>) {
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
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(10), running)
                .await
                .expect("the app stops within 10 s")
                .expect("the app task did not panic");
        }
    }
}

async fn start(config: ::users::Config) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let app = ::users::build(config).await.expect("users app builds");
    let addr = app.http_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        app.run_until_stopped(async move {
            let _ = stopped.await;
        })
        .await
        .expect("users app runs and stops cleanly");
    });
    (addr, stop, running)
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body read");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
}

fn creds(username: &str, password: &str) -> Value {
    json!({ "username": username, "password": password })
}

// ---------------------------------------------------------------- HTTP door

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
async fn malformed_wrong_type_and_oversized_bodies_get_a_4xx_with_a_message() {
    let app = TestApp::spawn().await;
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.http
            .post(app.url("/users"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases = [
        (
            b"{not json".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            b"[1,2]".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![0xff, 0xfe, 0x00],
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
        (
            br#"{"username":"x","password":"y"}"#.to_vec(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            format!(r#"{{"username":"{}"}}"#, "a".repeat(70_000)).into_bytes(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (body, content_type, expected) in cases {
        let (status, reply) = read(send(body, content_type).await.expect("sent")).await;
        assert_eq!(status, expected, "{reply}");
        assert!(!error_of(&reply).is_empty());
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_a_json_error() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!error_of(&body).is_empty());
    let (status, body) = read(
        app.http
            .delete(app.url("/users"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!error_of(&body).is_empty());
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let mut app = TestApp::spawn().await;
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    app.post("/users/verify", creds("victor", "1234")).await;
    users::verify(
        &app.nats,
        &VerifyRequest {
            username: "victor".into(),
            password: "1".into(),
        },
    )
    .await
    .expect("bus verify");
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("metrics are text");
    assert!(
        text.contains(r#"door="http",op="POST /users/verify",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"door="nats",op="verify",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("shop_argon2_queue 0"));

    app.server.stop();
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["nats"], false);
    assert_eq!(body["database"], true);
}

// ---------------------------------------------------------------- NATS door

#[tokio::test]
async fn the_bus_door_gives_the_same_answers_as_http() {
    let app = TestApp::spawn().await;
    let created = users::create(
        &app.nats,
        &CreateRequest {
            username: "Frank".into(),
            password: "password1".into(),
        },
    )
    .await
    .expect("created");
    assert_eq!(created.username, "frank");

    let got = users::get(
        &app.nats,
        &GetRequest {
            username: "FRANK".into(),
        },
    )
    .await
    .expect("found");
    assert_eq!(got.username, "frank");
    let (_, http) = app.get("/users/frank").await;
    assert_eq!(http["id"], got.id);

    let verify = |password: &str| VerifyRequest {
        username: "frank".into(),
        password: password.into(),
    };
    assert!(
        users::verify(&app.nats, &verify("password1"))
            .await
            .expect("ok")
            .valid
    );
    assert!(
        !users::verify(&app.nats, &verify("password2"))
            .await
            .expect("ok")
            .valid
    );

    let err = users::create(
        &app.nats,
        &CreateRequest {
            username: "frank".into(),
            password: "password1".into(),
        },
    )
    .await
    .expect_err("taken");
    assert_eq!(err.code(), ErrorCode::Conflict);
    let err = users::create(
        &app.nats,
        &CreateRequest {
            username: "g".into(),
            password: "short".into(),
        },
    )
    .await
    .expect_err("short password");
    assert!(
        matches!(&err, CallError::Service(r) if r.code == ErrorCode::BadRequest
            && r.reason == bus_schema::Reason::PasswordTooShort
            && r.limit == Some(8)
            && r.message.contains("at least 8")),
        "{err:?}"
    );
    let err = users::get(
        &app.nats,
        &GetRequest {
            username: "nobody".into(),
        },
    )
    .await
    .expect_err("unknown");
    assert_eq!(err.code(), ErrorCode::NotFound);
    let err = users::verify(&app.nats, &VerifyRequest::default())
        .await
        .expect_err("empty");
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

#[tokio::test]
async fn malformed_and_oversized_bus_requests_get_a_4xx_code_and_a_message() {
    let app = TestApp::spawn().await;
    for (subject, payload, code) in [
        (users::subject::CREATE, b"{nope".to_vec(), 400),
        (users::subject::VERIFY, b"[]".to_vec(), 400),
        (users::subject::GET, vec![0xc3, 0x28], 400),
        (users::subject::GET, br#"{"username": 7}"#.to_vec(), 400),
        (users::subject::CREATE, vec![b' '; 70_000], 413),
    ] {
        let (got, _) = app.raw_bus(subject, payload).await;
        assert_eq!(got, Some(code), "{subject}");
    }
    // An empty body is `{}`: a clear 400 about the missing field, not a decoding error.
    let err = app.raw_bus(users::subject::GET, Vec::new()).await;
    assert_eq!(err.0, Some(400));
}

#[tokio::test]
async fn the_micro_service_lists_its_three_endpoints() {
    let app = TestApp::spawn().await;
    let subjects = testkit::micro_endpoints(&app.nats, "users").await;
    assert_eq!(subjects, ["users.create", "users.get", "users.verify"]);
    let ping = app
        .nats
        .request("$SRV.PING.users", "".into())
        .await
        .expect("ping");
    let ping: Value = serde_json::from_slice(&ping.payload).expect("json");
    assert_eq!(ping["name"], "users");
    assert_eq!(ping["version"], env!("CARGO_PKG_VERSION"));
}

/// Every field ADR-32 lists, as nats.py's parsers require them (`metadata` everywhere,
/// each endpoint's `data` and `last_error`, `started` with at most microseconds).
#[tokio::test]
async fn the_discovery_replies_carry_every_field_other_clients_read() {
    let app = TestApp::spawn().await;
    app.get("/users/victor").await;
    let _ = users::get(
        &app.nats,
        &GetRequest {
            username: "victor".into(),
        },
    )
    .await;
    let _ = users::get(
        &app.nats,
        &GetRequest {
            username: "nobody".into(),
        },
    )
    .await;
    let ask = |verb: &'static str| {
        let nats = app.nats.clone();
        async move {
            let reply = nats
                .request(format!("$SRV.{verb}.users"), "".into())
                .await
                .expect("answered");
            serde_json::from_slice::<Value>(&reply.payload).expect("json")
        }
    };
    let (ping, info, stats) = (ask("PING").await, ask("INFO").await, ask("STATS").await);
    for (reply, kind) in [(&ping, "ping"), (&info, "info"), (&stats, "stats")] {
        assert_eq!(reply["type"], format!("io.nats.micro.v1.{kind}_response"));
        for field in ["name", "id", "version"] {
            assert!(reply[field].is_string(), "{kind} {field}: {reply}");
        }
        assert!(reply["metadata"].is_object(), "{kind} metadata: {reply}");
        assert_eq!(reply["id"], ping["id"], "one instance");
    }
    for endpoint in info["endpoints"].as_array().expect("endpoints") {
        assert_eq!(endpoint["queue_group"], "q");
        assert!(endpoint["metadata"].is_object(), "{endpoint}");
    }
    let started = stats["started"].as_str().expect("started");
    let fraction = started.rsplit('.').next().expect("fraction");
    assert_eq!(
        fraction.len(),
        "123456Z".len(),
        "microseconds and Z: {started}"
    );
    let get = stats["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["subject"] == "users.get")
        .expect("users.get");
    for field in ["name", "subject", "queue_group", "last_error", "data"] {
        assert!(get.get(field).is_some(), "{field}: {get}");
    }
    assert_eq!(get["num_requests"], 2, "{get}");
    assert_eq!(get["num_errors"], 1, "{get}");
    assert!(
        get["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("404")),
        "{get}"
    );
    assert!(
        get["processing_time"].as_u64().is_some_and(|t| t > 0),
        "{get}"
    );
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

#[tokio::test]
async fn a_call_to_a_stopped_service_is_unavailable_at_once() {
    let mut app = TestApp::spawn().await;
    app.stop().await;
    // A timeout far beyond the test's own: only "nobody is there" can end this call.
    let patient = bus_schema::CallOptions {
        timeout: Duration::from_secs(600),
        ..bus_schema::CallOptions::default()
    };
    let err = users::get_with(
        &app.nats,
        &GetRequest {
            username: "victor".into(),
        },
        &patient,
    )
    .await
    .expect_err("down");
    assert!(
        matches!(&err, CallError::Unavailable { service: "users", reason } if reason == "no instance is running"),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(
        err.to_string().contains("users service is unavailable"),
        "{err}"
    );
}

#[tokio::test]
async fn huge_headers_are_refused_with_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500 * 1024)
    );
    // The server may close before reading it all; what it answered is what counts.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("half a request");
    let mut answer = Vec::new();
    // The server closes the connection (header read timeout, 10 s); the test's own
    // guard is only there so that a regression fails instead of hanging.
    let closed =
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the server kept a half-sent request open");
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

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_answers() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    testkit::check_openapi(
        &doc,
        &app.url(""),
        None,
        &[
            "/users",
            "/users/verify",
            "/users/{username}",
            "/readyz",
            "/metrics",
            "/healthz",
            "/openapi.json",
        ],
    )
    .await;
}
