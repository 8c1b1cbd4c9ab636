//! Follows the `ORDERS` stream in order and turns its purchase events into lines of
//! `purchases.json`: a batch is written, fsynced once, added to the index on disk, and
//! only then does the cursor (the next stream sequence to read) move past it.
//!
//! The file is reconciled with the stream itself, never with a consumer's
//! acknowledgements: each instance reads the stream with its own consumer, from its own
//! cursor, and a consumer that fails (nats-server restarted, consumer deleted, a
//! delivery lost, the stream made again) is replaced by a new one that starts at the
//! cursor. At start the cursor is where the file stops following the stream, and the
//! service answers nothing until the file holds every event the stream held then.
//! An event whose id is in the file already (a second copy of a retried key, a
//! replayed range) is skipped, so no purchase is written twice.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream::{RawMessageErrorKind, Stream},
};
use bus_schema::{
    orders::PurchasedEvent,
    trace::{ServiceTracer, Span},
    users::Username,
};
use opentelemetry::{
    KeyValue,
    trace::{Link, SpanBuilder, SpanKind, TraceContextExt as _},
};
use service_kit::feed::{Next, next_batch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::stream;
use crate::{
    domain::purchase::Line,
    service::Orders,
    store::{
        history,
        index::{Index, Positions},
        journal::Journal,
    },
};

/// Most events read per pull and written with one fsync.
const MAX_BATCH: usize = 1024;
/// The least time between two tries after the stream or the disk failed.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// The server sends a heartbeat this often when there is nothing to deliver; two missed
/// ones mean the consumer is gone (nats-server restarted, its node stalled): the events
/// are read one by one from the cursor, within a buy's deadline, until a new consumer
/// is made.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long events are read one by one after a consumer could not be made or stopped
/// delivering, before a consumer is tried (each try waits up to [`API_TIMEOUT`]).
const ONE_BY_ONE_FOR: Duration = Duration::from_secs(2);
/// How often the stream is asked for the event at the cursor meanwhile, once it had none.
const ONE_BY_ONE_POLL: Duration = Duration::from_millis(20);
/// A consumer nobody pulls from (its process died) is removed by the server after this.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);
/// How long a JetStream API call of the appender waits for its answer. A stream without
/// a leader (one being elected after a node died) answers nothing, and the next try
/// should come soon after the election rather than after async-nats' default 5 s.
const API_TIMEOUT: Duration = Duration::from_secs(1);

/// Writes the file; the only writer of the journal.
#[derive(Debug)]
pub struct Appender {
    orders: Orders,
    journal: Arc<Mutex<Journal>>,
    index: Arc<Index>,
    js: jetstream::Context,
    /// The last purchase read from the stream (sequence, id): when the stream no longer
    /// holds it there, the stream was deleted and made again (or wiped), and is read
    /// from its start.
    last_read: Option<(u64, Uuid)>,
    /// This instance's consumers are `<prefix>-<n>`.
    prefix: String,
    serial: u64,
    /// The consumer in use, deleted when it is replaced.
    consumer: Option<String>,
    /// When the stream last read was made: another time means it was made again.
    stream_created: Option<String>,
    /// Traces each batch and each traced event, when traces are exported.
    tracer: Option<ServiceTracer>,
}

/// The events of a batch, in stream order, each id once.
#[derive(Default)]
struct Sorted {
    lines: Vec<(Uuid, Line)>,
    /// Ids that came twice in the batch.
    duplicates: Vec<Uuid>,
}

impl Sorted {
    /// Adds the event of the message at `seq` (`subject`, `payload`) and returns its id;
    /// a message that is not a purchase is logged and left out.
    fn add(&mut self, subject: &str, payload: &[u8], seq: u64) -> Option<Uuid> {
        let Some((event, id)) = decode(payload) else {
            tracing::error!(subject, seq, "skipping an event that is not a purchase");
            return None;
        };
        self.push(event, id, seq);
        Some(id)
    }

    /// Adds `event` at `seq` unless it is already in this batch.
    fn push(&mut self, event: PurchasedEvent, id: Uuid, seq: u64) {
        if self.lines.iter().any(|(known, _)| *known == id) {
            self.duplicates.push(id);
            return;
        }
        self.lines.push((id, Line::new(event, seq)));
    }
}

impl Appender {
    pub fn new(
        orders: Orders,
        journal: Journal,
        nats: async_nats::Client,
        tracer: Option<ServiceTracer>,
    ) -> Self {
        let prefix = format!("orders-appender-{:08x}", rand_u32());
        Self {
            index: Arc::clone(orders.history_index()),
            orders,
            journal: Arc::new(Mutex::new(journal)),
            js: jetstream::ContextBuilder::new()
                .timeout(API_TIMEOUT)
                .build(nats),
            last_read: None,
            prefix,
            serial: 0,
            consumer: None,
            stream_created: None,
            tracer,
        }
    }

    /// Sets the cursor from the file's `positions`: after the file's last line when the
    /// stream holds that very event there, from the first line the file lacks when one
    /// went missing, and from the stream's first event when the two do not match (an
    /// empty or foreign file, a stream made again). Returns the stream's last sequence:
    /// the file is complete once the cursor is past it.
    pub async fn start(&mut self, stream: &Stream, positions: &Positions) -> Result<u64, String> {
        let info = stream
            .get_info()
            .await
            .map_err(|err| format!("cannot read the state of the event stream: {err}"))?;
        self.stream_created = Some(info.created.to_string());
        let first = info.state.first_sequence.max(1);
        let last = info.state.last_sequence;
        let cursor = match positions.tail {
            None => first,
            Some((seq, id)) if holds(stream, seq, id).await? => {
                self.last_read = Some((seq, id));
                match positions.first_gap(first) {
                    Some(gap) => {
                        tracing::warn!(
                            from = gap,
                            "purchases.json lacks events the stream holds; writing them again"
                        );
                        gap
                    }
                    None => (seq + 1).max(first),
                }
            }
            Some((seq, _)) => {
                tracing::warn!(
                    seq,
                    "the stream does not hold the last event of purchases.json (a new stream?); \
                     reading it from its start, writing only what the file lacks"
                );
                first
            }
        };
        self.orders.set_cursor(cursor);
        if cursor <= last {
            tracing::info!(
                from = cursor,
                to = last,
                "catching up with the event stream"
            );
        }
        Ok(last)
    }

    /// Follows the stream until `stop` is cancelled; a batch in progress is finished
    /// first.
    pub async fn run(mut self, stop: CancellationToken) {
        // Events are read one by one first, then a consumer is tried: after the last
        // consumer could not be made, or stopped delivering (its node may have stalled
        // or died, and the cluster's meta leader with it), a try may wait its whole
        // timeout while buys wait for their lines.
        let mut no_consumer = false;
        while !stop.is_cancelled() {
            // Tries start at least RETRY_AFTER apart; one that waited for its answer
            // that long is made again at once.
            let began = tokio::time::Instant::now();
            let stream = match self.prepare().await {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::warn!(%err, "cannot read the purchase events; retrying");
                    pause_until(&stop, began + RETRY_AFTER).await;
                    continue;
                }
            };
            if no_consumer && let Err(err) = self.read_one_by_one(&stream, &stop).await {
                tracing::warn!(%err, "cannot read the purchase events; retrying");
                pause_until(&stop, began + RETRY_AFTER).await;
                continue;
            }
            let mut messages = match self.consume(&stream).await {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(%err, "no consumer of the purchase events for now; reading them one by one meanwhile");
                    no_consumer = true;
                    continue;
                }
            };
            if no_consumer {
                tracing::info!("following the purchase events with a consumer again");
                no_consumer = false;
            }
            let mut delivered = 0;
            loop {
                let batch = match next_batch(&mut messages, &stop, MAX_BATCH).await {
                    Next::Batch(batch) => batch,
                    Next::Failed(err) => {
                        tracing::warn!(%err, "the purchase event feed failed; reading on from the cursor");
                        no_consumer = true;
                        break;
                    }
                    Next::Ended | Next::Stopped => break,
                };
                match self.append(&batch, &mut delivered).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) => {
                        tracing::error!(%err, "cannot write the purchases file; reading the events again");
                        pause(&stop).await;
                        break;
                    }
                }
            }
        }
        if let Some(name) = self.consumer.take()
            && let Ok(stream) = self.js.get_stream(bus_schema::orders::STREAM).await
        {
            let _ = stream.delete_consumer(&name).await;
        }
    }

    /// The stream as it is now, the cursor checked against it (moved back when the
    /// stream was made again or lost what this instance read).
    async fn prepare(&mut self) -> Result<Stream, String> {
        let stream = service_kit::feed::reopen(
            &self.js,
            bus_schema::orders::STREAM,
            stream::ensure(&self.js),
        )
        .await?;
        let info = stream.cached_info();
        if let Some((seq, id)) = self.last_read
            && let found = event_at(&stream, seq).await?
            && found != Some(id)
        {
            let same_stream = self.stream_created == Some(info.created.to_string());
            if same_stream && found.is_some() {
                // The same stream holds another event where this one was read: what
                // this instance read was never the stream's (a node cut off from its
                // cluster, still taking itself for the stream's leader, delivered
                // messages its cluster never stored; seen with nats-server 2.9.10). The
                // file is started again from the stream; the diverged one is kept aside.
                self.start_again(&stream).await?;
            } else {
                // A stream that lost its data keeps no messages below the cursor to
                // check; one made again starts at 1. Either way, read what it holds.
                tracing::warn!(
                    "the {} stream no longer holds the last purchase read (made again, or wiped); \
                     reading it from its start, writing only what the file lacks",
                    bus_schema::orders::STREAM
                );
                self.last_read = None;
                self.orders.set_cursor(info.state.first_sequence.max(1));
            }
        }
        self.stream_created = Some(info.created.to_string());
        Ok(stream)
    }

    /// A new consumer of `stream` from the cursor.
    async fn consume(&mut self, stream: &Stream) -> Result<pull::Stream, String> {
        let old = self.consumer.take();
        self.serial += 1;
        let name = format!("{}-{}", self.prefix, self.serial);
        let consumer = stream
            .create_consumer(pull::Config {
                name: Some(name.clone()),
                description: Some("Writes purchases.json of one orders instance".to_owned()),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: self.orders.cursor(),
                },
                ack_policy: AckPolicy::None,
                inactive_threshold: INACTIVE_THRESHOLD,
                memory_storage: true,
                ..pull::Config::default()
            })
            .await
            .map_err(|err| format!("cannot create the consumer {name}: {err}"))?;
        self.consumer = Some(name);
        // The consumer replaced goes in the background: after a node died it may not
        // answer for a while, and its inactivity threshold removes it anyway.
        if let Some(old) = old {
            let stream = stream.clone();
            tokio::spawn(async move {
                let _ = stream.delete_consumer(&old).await;
            });
        }
        consumer
            .stream()
            .max_messages_per_batch(MAX_BATCH)
            .heartbeat(HEARTBEAT)
            .messages()
            .await
            .map_err(|err| format!("cannot pull purchase events: {err}"))
    }

    /// Reads on from the cursor message by message for [`ONE_BY_ONE_FOR`], with
    /// `STREAM.MSG.GET`, which the stream's leader answers alone, and writes what it
    /// reads as a consumer's batches are written. A consumer is made through the
    /// cluster's meta leader: while another is elected (the node holding it stalled or
    /// died, 4 to 9 s), buys answered by this instance would otherwise wait for their
    /// lines past their deadline although the stream took them.
    ///
    /// Each batch is written only if the stream is still the one `prepare` checked. A
    /// sequence the leader says it does not hold is asked again a moment later, never
    /// skipped: it is the stream's end, or an event a leader just elected has not stored
    /// yet, or one removed from the stream, which only the consumer made next skips.
    async fn read_one_by_one(
        &mut self,
        stream: &Stream,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let until = tokio::time::Instant::now() + ONE_BY_ONE_FOR;
        while !stop.is_cancelled() && tokio::time::Instant::now() < until {
            let first = self.orders.cursor();
            let (mut sorted, mut next, mut last_read) = (Sorted::default(), first, None);
            while next < first + MAX_BATCH as u64 {
                let message = match stream.get_raw_message(next).await {
                    Ok(message) => message,
                    Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => break,
                    Err(err) => {
                        return Err(format!("cannot read event {next} of the stream: {err}"));
                    }
                };
                if let Some(id) = sorted.add(&message.subject, &message.payload, next) {
                    last_read = Some((next, id));
                }
                next += 1;
            }
            if next > first {
                // Asked by name, the events may be those of a stream made again since
                // `prepare` (deleted and created): then nothing is written, and the next
                // `prepare` starts the cursor over on the new stream.
                let info = stream
                    .get_info()
                    .await
                    .map_err(|err| format!("cannot read the state of the event stream: {err}"))?;
                if self.stream_created.as_deref() != Some(info.created.to_string().as_str()) {
                    return Ok(());
                }
                self.commit(sorted, next, None)
                    .await
                    .map_err(|err| format!("cannot write the purchases file: {err}"))?;
                if last_read.is_some() {
                    self.last_read = last_read;
                }
                continue;
            }
            // Nothing at the cursor (yet).
            service_kit::feed::pause(stop, ONE_BY_ONE_POLL).await;
        }
        Ok(())
    }

    /// Moves `purchases.json` aside to `purchases.json.diverged-<unix seconds>` and starts
    /// an empty file and index, read from the stream's first event.
    async fn start_again(&mut self, stream: &Stream) -> Result<(), String> {
        let journal = Arc::clone(&self.journal);
        let index = Arc::clone(&self.index);
        let aside = tokio::task::spawn_blocking(move || {
            let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
            let path = journal.path().to_owned();
            let seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut aside = path.clone().into_os_string();
            aside.push(format!(".diverged-{seconds}"));
            std::fs::rename(&path, &aside)
                .map_err(|err| format!("cannot move {} aside: {err}", path.display()))?;
            index.clear()?;
            *journal = Journal::open(&path, 0, |_, _, _, _| Ok(()))?.journal;
            Ok::<_, String>(aside)
        })
        .await
        .map_err(|err| err.to_string())??;
        tracing::error!(
            kept_in = %std::path::Path::new(&aside).display(),
            "purchases.json held events the ORDERS stream does not hold where they were read \
             (read from a node cut off from its cluster); writing it again from the stream"
        );
        self.last_read = None;
        self.orders
            .set_cursor(stream.cached_info().state.first_sequence.max(1));
        Ok(())
    }

    /// Writes the new events of `batch` in order and moves the cursor past them. Stops
    /// at a delivery that does not follow the previous one (the consumer lost a message):
    /// `Ok(false)`, and a new consumer reads on from the cursor.
    async fn append(
        &mut self,
        batch: &[jetstream::Message],
        delivered: &mut u64,
    ) -> std::io::Result<bool> {
        let traced = self
            .tracer
            .as_ref()
            .map(|tracer| Traced::start(tracer, batch));
        let mut sorted = Sorted::default();
        let mut next = self.orders.cursor();
        let mut in_order = true;
        let mut last_read = None;
        for message in batch {
            let Ok(info) = message.info() else {
                in_order = false;
                break;
            };
            if info.consumer_sequence != *delivered + 1 {
                tracing::warn!(
                    expected = *delivered + 1,
                    got = info.consumer_sequence,
                    "a purchase event was not delivered; reading on from the cursor"
                );
                in_order = false;
                break;
            }
            *delivered = info.consumer_sequence;
            let seq = info.stream_sequence;
            if seq < next {
                continue; // already read (cannot happen with a consumer started at the cursor)
            }
            if let Some(id) = sorted.add(&message.subject, &message.payload, seq) {
                last_read = Some((seq, id));
            }
            next = seq + 1;
        }
        let committed = self.commit(sorted, next, traced.as_ref()).await;
        if let Some(traced) = traced {
            traced.end(committed.as_ref().err());
        }
        committed?;
        if last_read.is_some() {
            self.last_read = last_read;
        }
        Ok(in_order)
    }

    /// On a blocking thread: leaves out the lines whose event the file holds already,
    /// writes and fsyncs the others, adds them to the index; then moves the cursor and
    /// wakes their buyers.
    async fn commit(
        &self,
        sorted: Sorted,
        next: u64,
        traced: Option<&Traced>,
    ) -> std::io::Result<()> {
        let Sorted {
            lines,
            mut duplicates,
        } = sorted;
        let written = if lines.is_empty() {
            Vec::new()
        } else {
            let journal = Arc::clone(&self.journal);
            let index = Arc::clone(&self.index);
            let cx = traced.map(|t| t.batch.context().clone());
            let (written, known) = tokio::task::spawn_blocking(move || {
                let _traced = cx.map(opentelemetry::Context::attach);
                write(&journal, &index, lines)
            })
            .await
            .map_err(std::io::Error::other)??;
            duplicates.extend(known);
            written
        };
        self.orders.committed(&written, &duplicates, next);
        Ok(())
    }
}

/// The spans of one batch: the batch's own (its write, fsync and index transaction are
/// its children), linked to each traced event's publish, and for each traced event a
/// consumer span in the buy's own trace, so that a buy's trace reaches the line in every
/// instance's file.
struct Traced {
    batch: Span,
    events: Vec<Span>,
}

impl Traced {
    fn start(tracer: &ServiceTracer, batch: &[jetstream::Message]) -> Self {
        let parents: Vec<_> = batch
            .iter()
            .map(|m| bus_schema::trace::remote_parent_of(m.headers.as_ref()))
            .filter(|cx| cx.has_active_span())
            .collect();
        let links = parents
            .iter()
            .map(|cx| Link::with_context(cx.span().span_context().clone()))
            .collect();
        let destination = bus_schema::orders::subject::PURCHASED_PREFIX;
        let batch_span = bus_schema::trace::start_in(
            tracer,
            &opentelemetry::Context::new(),
            SpanBuilder::from_name(format!("append {destination}"))
                .with_kind(SpanKind::Consumer)
                .with_links(links)
                .with_attributes(
                    bus_schema::trace::messaging("append", "process", destination)
                        .into_iter()
                        .chain([KeyValue::new(
                            "messaging.batch.message_count",
                            batch.len() as i64,
                        )]),
                ),
        );
        let batch_context = batch_span.context().span().span_context().clone();
        let events = parents
            .iter()
            .map(|parent| {
                bus_schema::trace::start_in(
                    tracer,
                    parent,
                    SpanBuilder::from_name(format!("process {destination}"))
                        .with_kind(SpanKind::Consumer)
                        .with_links(vec![Link::with_context(batch_context.clone())])
                        .with_attributes(bus_schema::trace::messaging(
                            "process",
                            "process",
                            destination,
                        )),
                )
            })
            .collect();
        Self {
            batch: batch_span,
            events,
        }
    }

    /// Ends every span, failed with `err` if the batch could not be written.
    fn end(self, err: Option<&std::io::Error>) {
        for span in std::iter::once(self.batch).chain(self.events) {
            if let Some(err) = err {
                span.fail("io", err.to_string());
            }
            span.end();
        }
    }
}

/// Writes the `lines` whose event the index does not hold to the file (one fsync) and
/// then to the index; the ids written, and those left out.
fn write(
    journal: &Mutex<Journal>,
    index: &Index,
    lines: Vec<(Uuid, Line)>,
) -> std::io::Result<(Vec<Uuid>, Vec<Uuid>)> {
    let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
    if index.covered().len != journal.len() {
        // The last batch reached the file but not the index: the index reads it there.
        *journal = history::follow(journal.path(), index)
            .map_err(std::io::Error::other)?
            .journal;
    }
    let ids: Vec<Uuid> = lines.iter().map(|(id, _)| *id).collect();
    let known = index.known(&ids).map_err(std::io::Error::other)?;
    let new: Vec<(Uuid, Line)> = lines
        .into_iter()
        .filter(|(id, _)| !known.contains(id))
        .collect();
    if new.is_empty() {
        return Ok((Vec::new(), known.into_iter().collect()));
    }
    let mut bytes = Vec::with_capacity(new.len() * 256);
    let mut last_len = 0;
    for (_, line) in &new {
        let before = bytes.len();
        line.encode_into(&mut bytes);
        last_len = bytes.len() - before;
    }
    let span = bus_schema::trace::start(|| {
        SpanBuilder::from_name("write and fsync purchases.json").with_attributes([
            KeyValue::new("shop.lines", new.len() as i64),
            KeyValue::new("shop.bytes", bytes.len() as i64),
        ])
    });
    let len = journal.append(&bytes);
    if let Some(span) = span {
        if let Err(err) = &len {
            span.fail("io", err.to_string());
        }
        span.end();
    }
    let len = len?;
    let span = bus_schema::trace::start(|| service_kit::trace::sqlite("INSERT", "purchases"));
    let applied = index.apply(&new, len, len - last_len as u64);
    if let Some(span) = span {
        if let Err(err) = &applied {
            span.fail("sqlite", err.to_string());
        }
        span.end();
    }
    applied.map_err(std::io::Error::other)?;
    Ok((
        new.into_iter().map(|(id, _)| id).collect(),
        known.into_iter().collect(),
    ))
}

/// Whether the stream holds the event `id` at `seq`; an error when the stream could not
/// be asked.
async fn holds(stream: &Stream, seq: u64, id: Uuid) -> Result<bool, String> {
    Ok(event_at(stream, seq).await? == Some(id))
}

/// The id of the purchase the stream holds at `seq` (`None`: no message there, or not a
/// purchase); an error when the stream could not be asked.
async fn event_at(stream: &Stream, seq: u64) -> Result<Option<Uuid>, String> {
    match stream.get_raw_message(seq).await {
        Ok(message) => Ok(decode(&message.payload).map(|(_, found)| found)),
        // Only the stream saying it has no such message means it lost it. Any other
        // answer (JetStream "temporarily unavailable" while a leader is elected, a
        // timeout) is asked again later: taken as "lost", it sent the appender back to
        // the stream's first event after a node was killed.
        Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(err) => Err(format!("cannot read event {seq} of the stream: {err}")),
    }
}

/// A purchase event with a valid id and username, or `None`.
fn decode(payload: &[u8]) -> Option<(PurchasedEvent, Uuid)> {
    let event: PurchasedEvent = serde_json::from_slice(payload).ok()?;
    let id = Uuid::parse_str(&event.id).ok()?;
    Username::parse(&event.username).ok()?;
    Some((event, id))
}

/// Random bits for this instance's consumer names.
fn rand_u32() -> u32 {
    // The last bytes of a UUIDv7 are random.
    let bytes = Uuid::now_v7().into_bytes();
    u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]])
}

async fn pause(stop: &CancellationToken) {
    service_kit::feed::pause(stop, RETRY_AFTER).await;
}

/// Waits until `until`, or less if `stop` is cancelled.
async fn pause_until(stop: &CancellationToken, until: tokio::time::Instant) {
    service_kit::feed::pause(
        stop,
        until.saturating_duration_since(tokio::time::Instant::now()),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use bus_schema::orders::{Article, subject};

    use super::*;

    #[tokio::test]
    async fn only_a_missing_message_means_the_stream_lost_an_event() {
        let server = testkit::NatsServer::start();
        let nats = async_nats::connect(server.url()).await.expect("connect");
        let js = jetstream::new(nats);
        let stream = stream::ensure(&js).await.expect("stream");
        let id = Uuid::now_v7();
        let event = PurchasedEvent {
            id: id.to_string(),
            username: "victor".to_owned(),
            article: Article {
                id: 1,
                name: "Article 1".to_owned(),
                price: 1000,
            },
            purchased_at: "2026-11-25T00:00:00Z".to_owned(),
            idempotency_key: None,
        };
        js.publish(
            subject::purchased("victor"),
            serde_json::to_vec(&event).expect("json").into(),
        )
        .await
        .expect("sent")
        .await
        .expect("stored");

        assert_eq!(holds(&stream, 1, id).await, Ok(true));
        assert_eq!(
            holds(&stream, 1, Uuid::now_v7()).await,
            Ok(false),
            "another event there"
        );
        assert_eq!(holds(&stream, 2, id).await, Ok(false), "no message there");
        // A question JetStream cannot answer (here: the stream is gone; after a node died:
        // no leader yet) is not an answer: it is asked again later, where "lost" would
        // send the appender back to the stream's first event.
        js.delete_stream(bus_schema::orders::STREAM)
            .await
            .expect("deleted");
        assert!(holds(&stream, 1, id).await.is_err());
    }
}
