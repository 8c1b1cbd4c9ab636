//! The durable consumer that turns purchase events into lines of `purchases.json`:
//! a batch of events is written, fsynced once, added to the index, and only then
//! acknowledged. An event already in the file (a redelivery, a re-publish) is
//! acknowledged without being written again.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, AckKind, consumer::PushConsumer, stream::Stream};
use bus_schema::{orders::PurchasedEvent, users::Username};
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Orders, journal::Journal, journal::Line};

/// Most events written with one fsync.
const MAX_BATCH: usize = 1024;
/// Pause before trying again after the consumer or the disk failed.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Writes the file; the only writer of the journal.
#[derive(Debug)]
pub struct Appender {
    orders: Orders,
    journal: Arc<Mutex<Journal>>,
    consumer: PushConsumer,
    stream: Stream,
}

/// What a batch of messages holds.
#[derive(Default)]
struct Sorted {
    lines: Vec<(Uuid, Line)>,
    duplicates: Vec<Uuid>,
    bytes: Vec<u8>,
}

impl Sorted {
    /// Adds `event` at `seq` unless it is in the file or already in this batch.
    fn push(&mut self, orders: &Orders, event: PurchasedEvent, id: Uuid, seq: u64) {
        if orders.is_recorded(&id) || self.lines.iter().any(|(known, _)| *known == id) {
            self.duplicates.push(id);
            return;
        }
        let line = Line::new(event, seq);
        line.encode_into(&mut self.bytes);
        self.lines.push((id, line));
    }
}

impl Appender {
    pub fn new(orders: Orders, journal: Journal, consumer: PushConsumer, stream: Stream) -> Self {
        Self {
            orders,
            journal: Arc::new(Mutex::new(journal)),
            consumer,
            stream,
        }
    }

    /// Re-appends the events the consumer acknowledged but the file lacks (a line lost
    /// after its ack, or a file deleted by hand), reading them back from the stream.
    pub async fn fill_gap(&self) -> Result<usize, String> {
        let info = self
            .consumer
            .get_info()
            .await
            .map_err(|err| format!("cannot read the consumer's state: {err}"))?;
        let floor = info.ack_floor.stream_sequence;
        let mut filled = 0;
        let mut sorted = Sorted::default();
        for seq in self.orders.last_seq() + 1..=floor {
            let Ok(message) = self.stream.get_raw_message(seq).await else {
                continue; // deleted from the stream, or another subject
            };
            if let Some((event, id)) = decode(&message.payload) {
                sorted.push(&self.orders, event, id, seq);
            }
            if sorted.lines.len() >= MAX_BATCH {
                filled += sorted.lines.len();
                self.commit(std::mem::take(&mut sorted))
                    .await
                    .map_err(|err| format!("cannot write the purchases file: {err}"))?;
            }
        }
        filled += sorted.lines.len();
        self.commit(sorted)
            .await
            .map_err(|err| format!("cannot write the purchases file: {err}"))?;
        if filled > 0 {
            tracing::warn!(
                filled,
                "re-appended acknowledged events missing from the purchases file"
            );
        }
        Ok(filled)
    }

    /// Consumes events until `stop` is cancelled; a batch in progress is finished first.
    pub async fn run(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let mut messages = match self.consumer.messages().await {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(%err, "cannot pull purchase events; retrying");
                    pause(&stop).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = messages.next() => next,
                };
                let first = match next {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => {
                        tracing::warn!(%err, "the purchase event feed failed; reopening it");
                        pause(&stop).await;
                        break;
                    }
                    None => break,
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match messages.next().now_or_never() {
                        Some(Some(Ok(message))) => batch.push(message),
                        _ => break,
                    }
                }
                self.append(batch).await;
            }
        }
    }

    /// Writes the new events of `batch`, then acknowledges all of it.
    async fn append(&self, batch: Vec<jetstream::Message>) {
        let mut sorted = Sorted::default();
        let mut poison = Vec::new();
        for (i, message) in batch.iter().enumerate() {
            let seq = message.info().map(|info| info.stream_sequence).unwrap_or(0);
            match decode(&message.payload) {
                Some((event, id)) => sorted.push(&self.orders, event, id, seq),
                None => poison.push(i),
            }
        }
        if let Err(err) = self.commit(sorted).await {
            tracing::error!(%err, "cannot write the purchases file; the events will be delivered again");
            for message in &batch {
                let _ = message.ack_with(AckKind::Nak(Some(RETRY_AFTER))).await;
            }
            return;
        }
        for (i, message) in batch.iter().enumerate() {
            let kind = if poison.contains(&i) {
                tracing::error!(subject = %message.subject, "dropping an event that is not a purchase");
                AckKind::Term
            } else {
                AckKind::Ack
            };
            if let Err(err) = message.ack_with(kind).await {
                // The event comes again and is recognised as written.
                tracing::warn!(%err, "an ack was lost");
            }
        }
    }

    /// Writes and fsyncs the lines on a blocking thread, then updates the index.
    async fn commit(&self, sorted: Sorted) -> std::io::Result<()> {
        let Sorted {
            lines,
            duplicates,
            bytes,
        } = sorted;
        if !bytes.is_empty() {
            let journal = Arc::clone(&self.journal);
            tokio::task::spawn_blocking(move || {
                journal
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .append(&bytes)
            })
            .await
            .map_err(std::io::Error::other)??;
        }
        self.orders.committed(&lines, &duplicates);
        Ok(())
    }
}

/// A purchase event with a valid id and username, or `None`.
fn decode(payload: &[u8]) -> Option<(PurchasedEvent, Uuid)> {
    let event: PurchasedEvent = serde_json::from_slice(payload).ok()?;
    let id = Uuid::parse_str(&event.id).ok()?;
    Username::parse(&event.username).ok()?;
    Some((event, id))
}

async fn pause(stop: &CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => {},
        () = tokio::time::sleep(RETRY_AFTER) => {},
    }
}
