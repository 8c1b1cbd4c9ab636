//! The `ORDERS` stream and the appender's durable consumer, created or updated at start,
//! and created again by a buy that finds them gone (see `Orders::heal`).
//!
//! The consumer pushes to a deliver subject (queue group `orders`) rather than being
//! pulled: the server delivers only while someone subscribes there, so an event
//! published while the service is down waits in the stream and arrives as soon as it is
//! back, instead of going to a pull request the dead process left behind (which would
//! hold it until the ack wait runs out).

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PushConsumer, push},
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};
use bus_schema::orders::{STREAM, subject};

/// The durable consumer that writes `purchases.json`.
pub const CONSUMER: &str = "orders-appender";
/// Where the consumer delivers; outside `orders.events.>` so it is not stored again.
pub const DELIVER_SUBJECT: &str = "_shop.orders.appender";
/// Instances of the service share deliveries through this queue group.
const DELIVER_GROUP: &str = "orders";
/// How long the server waits for an ack before it delivers an event again: far more
/// than a batch's write and fsync, short enough that an event delivered to a process
/// that just died is written soon after the next one starts.
const ACK_WAIT: Duration = Duration::from_secs(10);
/// A re-published event (same `Nats-Msg-Id`) within this window is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10);

/// Creates or updates the stream and the consumer; harmless when both exist.
pub async fn ensure(js: &jetstream::Context) -> Result<(Stream, PushConsumer), String> {
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
            push::Config {
                durable_name: Some(CONSUMER.to_owned()),
                deliver_subject: DELIVER_SUBJECT.to_owned(),
                deliver_group: Some(DELIVER_GROUP.to_owned()),
                description: Some("Appends purchases to purchases.json".to_owned()),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                // No filter: the stream holds only this service's events, and nats-server 2.9
                // counts the pending messages of a filtered consumer by scanning the stream,
                // which made every buy slower as the stream grew.
                filter_subject: String::new(),
                max_ack_pending: 20_000,
                ..push::Config::default()
            },
        )
        .await
        .map_err(|err| format!("cannot create the {CONSUMER} consumer: {err}"))?;
    Ok((stream, consumer))
}
