//! Median round trip of the bus calls a login and an authenticated request make:
//! `users.verify` (one argon2id check) and `auth.verify` (a JWT check), one caller at a
//! time, against a throwaway nats-server and the real services in this process.
//!
//! `cargo run --release -p stack --example latency [calls]`

use std::{
    future::Future,
    time::{Duration, Instant},
};

use bus_schema::{auth, users};

#[tokio::main]
async fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let nats = testkit::NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let users_app = ::users::build(::users::Config::for_tests(
        nats.url(),
        dir.path().join("users.db"),
    ))
    .await
    .expect("users");
    let auth_app = ::auth::build(::auth::Config::for_tests(nats.url()))
        .await
        .expect("auth");
    tokio::spawn(users_app.run_until_stopped(std::future::pending()));
    tokio::spawn(auth_app.run_until_stopped(std::future::pending()));
    let client = async_nats::connect(nats.url()).await.expect("connect");

    let verify = users::VerifyRequest {
        username: "victor".into(),
        password: "1234".into(),
    };
    let users_verify = measure(calls / 4 + 1, || async {
        assert!(users::verify(&client, &verify).await.expect("verify").valid);
    })
    .await;
    let login = auth::LoginRequest {
        username: "victor".into(),
        password: "1234".into(),
    };
    let token = auth::login(&client, &login)
        .await
        .expect("login")
        .access_token;
    let check = auth::VerifyRequest { token };
    let auth_verify = measure(calls, || async {
        auth::verify(&client, &check).await.expect("valid token");
    })
    .await;
    println!(
        "users.verify  median {:>9.3} ms  p99 {:>9.3} ms  ({} calls)",
        ms(users_verify.0),
        ms(users_verify.1),
        calls / 4 + 1
    );
    println!(
        "auth.verify   median {:>9.3} ms  p99 {:>9.3} ms  ({calls} calls)",
        ms(auth_verify.0),
        ms(auth_verify.1)
    );
}

/// Median and 99th percentile of `n` sequential calls, after a short warm-up.
async fn measure<F, Fut>(n: usize, call: F) -> (Duration, Duration)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..5 {
        call().await;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        call().await;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    (times[n / 2], times[(n * 99 / 100).min(n - 1)])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
