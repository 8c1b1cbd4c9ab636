//! What every door does: bad input, the micro service, health and the OpenAPI document.

use crate::helpers::*;

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
