//! Helpers both orders test binaries use.

#![allow(dead_code)] // each test binary uses part of this

use std::path::Path;

use async_nats::jetstream;
use bus_schema::orders::{self, PurchasedEvent};
use serde_json::Value;

/// Stores `event` in the `ORDERS` stream as an orders instance would (with `msg_id` as
/// its `Nats-Msg-Id`), returning its stream sequence.
pub async fn publish(js: &jetstream::Context, event: &PurchasedEvent, msg_id: &str) -> u64 {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(
        orders::subject::purchased(&event.username),
        headers,
        serde_json::to_vec(event).expect("json").into(),
    )
    .await
    .expect("published")
    .await
    .expect("stored")
    .sequence
}

/// The lines of a purchases file, parsed; none when it does not exist.
pub fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}
