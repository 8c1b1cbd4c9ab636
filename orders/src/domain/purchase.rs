//! A purchase as the shop records it: the event as the stream holds it, and its place
//! in the stream. One line of `purchases.json`, one entry of the history index.

use bus_schema::orders::PurchasedEvent;
use serde::{Deserialize, Serialize};

/// One line of the file: the event, and where it sits in the `ORDERS` stream beside
/// its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    #[serde(flatten)]
    pub event: PurchasedEvent,
    /// The stream sequence of the event.
    pub seq: u64,
}

impl Line {
    pub fn new(event: PurchasedEvent, seq: u64) -> Self {
        Self { event, seq }
    }

    /// The line as written: JSON and a newline.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        serde_json::to_writer(&mut *buf, self).expect("BUG: a line always serialises");
        buf.push(b'\n');
    }
}
