//! The NATS door: the same answers as HTTP, bad requests, discovery, a stopped service.

use crate::helpers::*;

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
    assert!(
        get["data"].is_object(),
        "data is an object, never null: {get}"
    );
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
