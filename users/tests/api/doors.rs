//! What the HTTP door refuses (bad bodies, unknown paths, huge or endless headers), and
//! health, metrics and the OpenAPI document.

use crate::helpers::*;

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

#[tokio::test]
async fn huge_headers_are_refused_with_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr())
        .await
        .expect("connect");
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500 * 1024)
    );
    // The server may close before reading it all; what it answered is what counts.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(testkit::PATIENCE, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr())
        .await
        .expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("half a request");
    let mut answer = Vec::new();
    // The server closes the connection (header read timeout, 10 s); the test's own
    // guard is only there so that a regression fails instead of hanging.
    let closed = tokio::time::timeout(testkit::PATIENCE, stream.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the server kept a half-sent request open");
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
