//! One request id end to end: given to the gateway, it comes back in the reply and is
//! on the log lines of auth, users and orders for that request.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use common::Shop;
use serde_json::json;

/// Everything the services log, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn a_request_id_given_to_the_gateway_is_in_every_services_log_and_the_reply() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug,async_nats=warn,hyper=warn,hyper_util=warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let shop = Shop::start().await;
    let http = reqwest::Client::new();
    let login = http
        .post(shop.url("/api/login"))
        .header("X-Request-Id", "req-login-42")
        .json(&json!({ "username": "victor", "password": "1234" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        login.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"req-login-42"[..])
    );
    let token = login.json::<serde_json::Value>().await.expect("json")["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let lines = captured.lines_with("request_id=req-login-42");
    for service in ["gateway", "auth", "users"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("service={service}"))),
            "no {service} line with the id in {lines:#?}"
        );
    }

    let buy = http
        .post(shop.url("/api/buy"))
        .header("X-Request-Id", "req-buy-43")
        .bearer_auth(&token)
        .json(&json!({ "article_id": 1 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(buy.status(), 201);
    let lines = captured.lines_with("request_id=req-buy-43");
    for service in ["gateway", "auth", "orders"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("service={service}"))),
            "no {service} line with the id in {lines:#?}"
        );
    }
    assert!(
        captured
            .lines_with("req-login-42")
            .iter()
            .all(|l| !l.contains("service=orders"))
    );

    // Without an id the gateway makes one and returns it.
    let response = http.get(shop.url("/healthz")).send().await.expect("sent");
    let made = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(made.len(), 32, "{made}");
}
