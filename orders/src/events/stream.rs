//! The `ORDERS` stream: created or updated at start, and created again by the appender
//! or a buy that finds it gone (an operator's `nats stream rm`, a wiped store).

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};
use bus_schema::orders::{STREAM, subject};

/// The durable push consumer that wrote `purchases.json` before each instance read the
/// stream on its own (see `appender`); removed at start when it is still there.
pub const LEGACY_CONSUMER: &str = "orders-appender";

/// A re-published event (same `Nats-Msg-Id`) within this window is stored once: a retried
/// idempotency key gets the stream's "duplicate" answer for that long. Outside it a second
/// copy may be stored, and is still written once (lines are unique by id). The server
/// keeps one small entry per message for the window.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Creates or updates the stream; harmless when it exists.
pub async fn ensure(js: &jetstream::Context) -> Result<Stream, String> {
    let config = Config {
        name: STREAM.to_owned(),
        description: Some("Purchase events of the shop".to_owned()),
        subjects: vec![subject::EVENTS.to_owned()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: service_kit::runtime::stream_replicas(),
        // Its end is read before every read of a view (`service_kit::stream_tail`):
        // on one replica, by a direct get of the last message.
        allow_direct: true,
        ..Config::default()
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|err| format!("cannot create or update the {STREAM} stream: {err}"))?;
    js.get_stream(STREAM)
        .await
        .map_err(|err| format!("cannot open the {STREAM} stream: {err}"))
}

/// Deletes the shared durable consumer of earlier versions, which nobody reads any more.
pub async fn retire_legacy_consumer(stream: &Stream) {
    if stream.delete_consumer(LEGACY_CONSUMER).await.is_ok() {
        tracing::info!(
            consumer = LEGACY_CONSUMER,
            "removed the shared appender consumer of an earlier version"
        );
    }
}
