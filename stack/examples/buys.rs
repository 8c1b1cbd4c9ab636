//! Durable purchases: median latency of one `orders.buy` at a time, throughput with 64
//! concurrent buyers, and the start-up time of the orders service with a large
//! `purchases.json`. A throwaway nats-server, the real orders service in this process.
//!
//! `cargo run --release -p stack --example buys [seconds] [lines]`

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bus_schema::orders::{self, Article, BuyRequest};
use serde_json::json;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let lines: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let nats = testkit::NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    // A published key, so that orders takes the buyers' tokens.
    let auth = testkit::StubAuth::start(&client).await;
    let app = ::orders::build(::orders::Config::for_tests(nats.url(), dir.path()))
        .await
        .expect("orders");
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let buy = |user: String| BuyRequest {
        username: user,
        article_id: json!(2),
        idempotency_key: None,
    };

    let mut times = Vec::new();
    for i in 0..520 {
        let started = Instant::now();
        let user = format!("solo{}", i % 7);
        orders::buy_with(&client, &buy(user.clone()), &auth.calls_for(&user))
            .await
            .expect("201");
        if i >= 20 {
            times.push(started.elapsed());
        }
    }
    times.sort_unstable();
    println!(
        "orders.buy, one at a time: median {:.3} ms, p99 {:.3} ms ({} buys)",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 99 / 100]),
        times.len()
    );

    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..64 {
        let client = client.clone();
        let done = Arc::clone(&done);
        let user = format!("buyer{c}");
        let calls = auth.calls_for(&user);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                orders::buy_with(&client, &buy(user.clone()), &calls)
                    .await
                    .expect("201");
                latencies.push(started.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    latencies.sort_unstable();
    let total = done.load(Ordering::Relaxed);
    let file = std::fs::read_to_string(dir.path().join("purchases.json")).expect("file");
    println!(
        "orders.buy, 64 concurrent buyers: {:.0} durable buys/s, median {:.3} ms, p99 {:.3} ms; {} answered, {} lines in purchases.json",
        total as f64 / seconds as f64,
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 99 / 100]),
        total + 520,
        file.lines().count()
    );

    let big = tempfile::tempdir().expect("temp dir");
    write_lines(&big.path().join("purchases.json"), lines);
    let size = std::fs::metadata(big.path().join("purchases.json")).map_or(0, |m| m.len());
    let started = Instant::now();
    let config = ::orders::Config::for_tests(nats.url(), big.path());
    let app = ::orders::build(config)
        .await
        .expect("orders with a big file");
    println!(
        "orders start-up with {lines} lines ({:.0} MB) in purchases.json: {:.2} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    drop(app);
}

fn write_lines(path: &std::path::Path, n: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for seq in 1..=n {
        let line = json!({
            "id": uuid::Uuid::now_v7().to_string(),
            "username": format!("user{}", seq % 5000),
            "article": Article { id: 1, name: "Article 1".into(), price: 1000 },
            "purchased_at": "2026-11-23T12:00:00.123456789Z",
            "seq": seq,
        });
        writeln!(out, "{line}").expect("write");
    }
    out.flush().expect("flush");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
