//! The floors for `make bench`: the least a gateway request can cost, on the same
//! machine and bus. `/bare`: an axum handler answering a fixed body (the HTTP ceiling);
//! `/one-hop`: one NATS round trip to a trivial responder (what `GET /api/purchases`
//! needs now that tokens are checked in the gateway); `/floor`: two round trips (a token
//! check, then the history), as the gateway made before.
//!
//! `cargo run --release -p stack --example floor -- <http addr> <nats url> <user> <password>`

use std::net::SocketAddr;

use axum::{Router, extract::State, response::IntoResponse, routing::get};
use futures_util::StreamExt;

const VERIFY: &str = "bench.floor.verify";
const PURCHASES: &str = "bench.floor.purchases";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, url, user, password] = args.as_slice() else {
        eprintln!("usage: floor <http addr> <nats url> <user> <password>");
        std::process::exit(2);
    };
    let addr: SocketAddr = addr.parse().expect("an address");
    let nats = async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        .connect(url.as_str())
        .await
        .expect("connect");
    // Replies about as large as the real ones: a verify reply and a 20-item history.
    let history = history_body();
    for (subject, body) in [
        (
            VERIFY,
            serde_json::json!({"username": "reader", "valid": true}),
        ),
        (PURCHASES, history),
    ] {
        let body: bytes::Bytes = serde_json::to_vec(&body).expect("json").into();
        let mut requests = nats
            .queue_subscribe(subject, "floor".into())
            .await
            .expect("subscribe");
        let client = nats.clone();
        tokio::spawn(async move {
            while let Some(message) = requests.next().await {
                if let Some(reply) = message.reply {
                    let _ = client.publish(reply, body.clone()).await;
                }
            }
        });
    }
    nats.flush().await.expect("flush");
    let bare: bytes::Bytes = serde_json::to_vec(&history_body()).expect("json").into();
    let app = Router::new()
        .route("/floor", get(floor))
        .route("/one-hop", get(one_hop))
        .route("/bare", get(move || std::future::ready(bare.clone())))
        .with_state(nats);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("floor listening on {addr}");
    axum::serve(listener, app).await.expect("serve");
}

async fn floor(State(nats): State<async_nats::Client>) -> impl IntoResponse {
    let verify = nats.request(VERIFY, r#"{"token":"x"}"#.into()).await;
    if verify.is_err() {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            bytes::Bytes::new(),
        );
    }
    one_hop(State(nats)).await
}

/// A 20-item history, about as large as the real one.
fn history_body() -> serde_json::Value {
    serde_json::json!({
        "user": "reader",
        "purchases": vec!["Article 2"; 20],
        "items": (0..20).map(|i| serde_json::json!({
            "id": format!("01a20b0d-e64e-7585-8efb-16149557b8{i:02}"),
            "article": {"id": 2, "name": "Article 2", "price": 2000},
            "purchased_at": "2026-11-24T00:56:30.030683115Z",
        })).collect::<Vec<_>>(),
    })
}

async fn one_hop(State(nats): State<async_nats::Client>) -> (axum::http::StatusCode, bytes::Bytes) {
    match nats
        .request(PURCHASES, r#"{"username":"reader"}"#.into())
        .await
    {
        Ok(reply) => (axum::http::StatusCode::OK, reply.payload),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            bytes::Bytes::new(),
        ),
    }
}
