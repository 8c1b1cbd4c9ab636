//! Fills the `ORDERS` stream for `make bench-scale`: `<purchases>` purchase events spread
//! over `<users>` buyers (`user0`, `user1`, ...), plus `<heavy>` more for one buyer
//! (`heavy`) and `<light>` (default 0) for another (`light`, whose history has the same
//! length at every size of the shop), stored as orders instances store them (one subject per buyer, the event
//! as JSON), published ahead of their acks. Prints how many a second.
//!
//! `cargo run --release -p stack --example fill -- <nats url> <user> <password> <purchases> <users> <heavy> [light]`

use std::time::Instant;

use bus_schema::orders::{self, Article, PurchasedEvent};

/// Publishes in flight before their acks are awaited.
const IN_FLIGHT: usize = 4096;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, user, password, purchases, users, heavy, light) = match args.as_slice() {
        [url, user, password, purchases, users, heavy] => {
            (url, user, password, purchases, users, heavy, None)
        }
        [url, user, password, purchases, users, heavy, light] => {
            (url, user, password, purchases, users, heavy, Some(light))
        }
        _ => {
            eprintln!(
                "usage: fill <nats url> <user> <password> <purchases> <users> <heavy> [light]"
            );
            std::process::exit(2);
        }
    };
    let number = |text: &String| -> u64 { text.parse().expect("a whole number") };
    let (purchases, users, heavy) = (number(purchases), number(users).max(1), number(heavy));
    let light = light.map_or(0, number);
    let nats = async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        .connect(url.as_str())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(nats);
    let started = Instant::now();
    let mut acks = Vec::with_capacity(IN_FLIGHT);
    let total = purchases + heavy + light;
    for n in 0..total {
        let buyer = if n < purchases {
            format!("user{}", n % users)
        } else if n < purchases + heavy {
            "heavy".to_owned()
        } else {
            "light".to_owned()
        };
        let article = 1 + (n % 3) as u32;
        let event = PurchasedEvent {
            id: uuid::Uuid::now_v7().to_string(),
            username: buyer.clone(),
            article: Article {
                id: article,
                name: format!("Article {article}"),
                price: article * 1000,
            },
            purchased_at: "2026-12-07T12:00:00Z".into(),
            idempotency_key: None,
        };
        let body = serde_json::to_vec(&event).expect("json");
        acks.push(
            js.publish(orders::subject::purchased(&buyer), body.into())
                .await
                .expect("published"),
        );
        if acks.len() == IN_FLIGHT || n + 1 == total {
            for ack in acks.drain(..) {
                ack.await.expect("stored");
            }
        }
        if (n + 1) % 1_000_000 == 0 {
            eprintln!("  {} stored", n + 1);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"stored\":{total},\"seconds\":{seconds:.1},\"per_second\":{:.0}}}",
        total as f64 / seconds
    );
}
