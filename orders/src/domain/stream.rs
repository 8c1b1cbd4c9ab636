//! The `ORDERS` stream and the appender's durable consumer, created or updated at start.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};
use bus_schema::orders::{STREAM, subject};

/// The durable consumer that writes `purchases.json`.
pub const CONSUMER: &str = "orders-appender";
/// How long the server waits for an ack before it delivers an event again.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// A re-published event (same `Nats-Msg-Id`) within this window is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Creates or updates the stream and the consumer.
pub async fn ensure(js: &jetstream::Context) -> Result<(Stream, PullConsumer), String> {
    let config = Config {
        name: STREAM.to_owned(),
        description: Some("Purchase events of the shop".to_owned()),
        subjects: vec![subject::EVENTS.to_owned()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        duplicate_window: DUPLICATE_WINDOW,
        ..Config::default()
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|err| format!("cannot create or update the {STREAM} stream: {err}"))?;
    let stream = js
        .get_stream(STREAM)
        .await
        .map_err(|err| format!("cannot open the {STREAM} stream: {err}"))?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                description: Some("Appends purchases to purchases.json".to_owned()),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                filter_subject: format!("{}.>", subject::PURCHASED_PREFIX),
                max_ack_pending: 20_000,
                ..pull::Config::default()
            },
        )
        .await
        .map_err(|err| format!("cannot create the {CONSUMER} consumer: {err}"))?;
    Ok((stream, consumer))
}
