//! The accounts stream (`USERS`), the truth every users instance's `users.db` is a view
//! of.
//!
//! Each account has its own subject (`users.accounts.<name>`), and each record on it is
//! the whole account as of then (name, hash, imported id). A name is made unique by the
//! stream itself: a new account is published with `Nats-Expected-Last-Subject-Sequence:
//! 0`, which only the first of two racing instances gets stored. A hash is replaced by
//! a record that expects the account's latest sequence.
//!
//! [`Accounts`] keeps the view current: a task follows the stream in order from the
//! view's position with an ordered consumer (made again on any gap, nats-server
//! restart or missed heartbeat), applies each batch in one transaction, and publishes
//! how far it got. A read that misses in the view first asks the stream's end
//! ([`StreamTail`]) and waits for the view to reach it, so an account created on any
//! instance is found on every other right away.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull},
    context::PublishErrorKind,
    message::PublishMessage,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream},
};
use bus_schema::{
    Reason,
    users::{ACCOUNTS_STREAM, subject},
};

use opentelemetry::trace::SpanBuilder;
use service_kit::{
    feed::{Next, next_batch},
    stream_tail::StreamTail,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    error::UsersError,
    record::AccountRecord,
    store::{Store, StoredUser},
};

/// Most records applied in one transaction.
const MAX_BATCH: usize = 512;
/// Pause before following again after the stream or the database failed.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// How long a read waits for the view to reach the stream's end before a 503.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);
/// A feed that delivers nothing for this long while the stream holds records the view
/// lacks is given up and made again from the view's position. async-nats' ordered
/// consumer remakes itself after most failures, but once, after a node of a cluster was
/// cut off and joined again, it delivered nothing more and said nothing.
const STALL_AFTER: Duration = Duration::from_secs(3);

/// What a publish with an expected sequence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored at this stream sequence.
    At(u64),
    /// The account's subject was not at the expected sequence: the name is taken (for
    /// a new account) or the account changed meanwhile.
    Conflict,
}

/// The stream and this instance's view of it.
#[derive(Debug, Clone)]
pub struct Accounts {
    js: jetstream::Context,
    store: Store,
    /// The last stream sequence applied to the view.
    applied: watch::Sender<u64>,
    tail: StreamTail,
}

/// Creates or updates the stream; harmless when it exists.
pub async fn ensure(js: &jetstream::Context) -> Result<Stream, String> {
    let config = Config {
        name: ACCOUNTS_STREAM.to_owned(),
        description: Some("Accounts of the shop (password hashes: users alone)".to_owned()),
        subjects: vec![subject::ACCOUNTS.to_owned()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        num_replicas: service_kit::runtime::stream_replicas(),
        // Its end is read before every read of a view (`service_kit::stream_tail`):
        // on one replica, by a direct get of the last message.
        allow_direct: true,
        ..Config::default()
    };
    js.create_or_update_stream(config)
        .await
        .map_err(|err| format!("cannot create or update the {ACCOUNTS_STREAM} stream: {err}"))?;
    js.get_stream(ACCOUNTS_STREAM)
        .await
        .map_err(|err| format!("cannot open the {ACCOUNTS_STREAM} stream: {err}"))
}

/// Creates or updates the stream of the latest sign-up events (the public ones); the
/// sign-ups published on `users.events.>` are kept there.
pub async fn ensure_events(js: &jetstream::Context) -> Result<(), String> {
    let name = bus_schema::users::EVENTS_STREAM;
    js.create_or_update_stream(Config {
        name: name.to_owned(),
        description: Some("The latest sign-ups of the shop (public events)".to_owned()),
        subjects: vec![subject::EVENTS.to_owned()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        max_messages: 1000,
        num_replicas: service_kit::runtime::stream_replicas(),
        ..Config::default()
    })
    .await
    .map(drop)
    .map_err(|err| format!("cannot create or update the {name} stream: {err}"))
}

/// Publishes `record` if the account's subject is at `expected` (0: no account yet).
pub async fn publish(
    js: &jetstream::Context,
    record: &AccountRecord,
    expected: u64,
) -> Result<Stored, UsersError> {
    let payload = serde_json::to_vec(record).expect("BUG: a record always serialises");
    let unavailable = |err: &dyn std::fmt::Display| {
        UsersError::Unavailable(
            Reason::EventStoreUnavailable,
            format!("the account store did not confirm the change ({err}); try again"),
        )
    };
    let mut message = PublishMessage::build()
        .payload(payload.into())
        .expected_last_subject_sequence(expected);
    let span = bus_schema::trace::publishing(subject::ACCOUNTS_PREFIX);
    for (name, value) in span.iter().flat_map(bus_schema::trace::Span::headers) {
        message = message.header(name, value.as_str());
    }
    let ack = match js
        .send_publish(subject::account(&record.username), message)
        .await
    {
        Ok(ack) => ack.await,
        Err(err) => Err(err),
    };
    bus_schema::trace::published(span, &ack);
    match ack {
        Ok(ack) => Ok(Stored::At(ack.sequence)),
        Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => Ok(Stored::Conflict),
        Err(err) => Err(unavailable(&err)),
    }
}

/// Puts the accounts of an earlier version's database into the stream, keeping their
/// ids and hashes (werkzeug hashes of the Flask original included: they are replaced by
/// argon2id at each one's first login). A name the stream has already is left as the
/// stream has it. Returns (imported, already there).
pub async fn import(
    js: &jetstream::Context,
    rows: Vec<crate::store::LegacyUser>,
) -> Result<(usize, usize), UsersError> {
    let (mut imported, mut present) = (0, 0);
    for row in rows {
        let record = AccountRecord::new(row.username, row.hash, Some(row.id));
        match publish(js, &record, 0).await? {
            Stored::At(_) => imported += 1,
            Stored::Conflict => present += 1,
        }
    }
    Ok((imported, present))
}

impl Accounts {
    pub fn new(js: jetstream::Context, store: Store) -> Self {
        let tail = StreamTail::new(js.client(), ACCOUNTS_STREAM);
        Self {
            js,
            store,
            applied: watch::Sender::new(0),
            tail,
        }
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Ties the view to the stream as it is now. A view made from another stream (the
    /// stream was deleted and made again, or the view is older than the stream's end)
    /// gives its accounts back to the stream first, so that no account is lost with a
    /// wiped stream, and is then rebuilt from it.
    pub async fn start(&self) -> Result<(), String> {
        let mut stream = ensure(&self.js).await?;
        let info = stream.info().await.map_err(|err| {
            format!("cannot read the state of the {ACCOUNTS_STREAM} stream: {err}")
        })?;
        let created = info.created.to_string();
        let last = info.state.last_sequence;
        let position = self
            .store
            .position()
            .await
            .map_err(|err| format!("cannot read the view's position: {err}"))?;
        if position.stream_created == created && position.applied <= last {
            self.applied.send_replace(position.applied);
            return Ok(());
        }
        let rows = self
            .store
            .all()
            .await
            .map_err(|err| format!("cannot read the view: {err}"))?;
        if !rows.is_empty() {
            tracing::warn!(
                accounts = rows.len(),
                "users.db was made from another {ACCOUNTS_STREAM} stream (deleted and made again?); \
                 giving its accounts back to the stream before rebuilding it"
            );
        }
        for user in rows {
            let record = AccountRecord::new(user.username, user.hash, Some(user.id));
            publish(&self.js, &record, 0)
                .await
                .map_err(|err| err.to_string())?;
        }
        self.store
            .reset(created)
            .await
            .map_err(|err| format!("cannot reset the view: {err}"))?;
        self.applied.send_replace(0);
        Ok(())
    }

    /// Follows the stream until `stop` is cancelled.
    pub async fn follow(self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let mut messages = match self.open().await {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(%err, "cannot follow the accounts stream; retrying");
                    pause(&stop).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    next = next_batch(&mut messages, &stop, MAX_BATCH) => next,
                    behind = self.stalled() => {
                        tracing::warn!(
                            view = self.applied(),
                            stream = behind,
                            "the accounts feed delivers nothing while the stream is ahead; following again from the view"
                        );
                        break;
                    }
                };
                let batch = match next {
                    Next::Batch(batch) => batch,
                    Next::Failed(err) => {
                        tracing::warn!(%err, "the accounts feed failed; following again from the view");
                        break;
                    }
                    Next::Ended => break,
                    Next::Stopped => return,
                };
                if let Err(err) = self.apply(&batch).await {
                    tracing::error!(%err, "cannot write users.db; following again from the view");
                    break;
                }
            }
            pause(&stop).await;
        }
    }

    /// Returns (the stream's last sequence) once the view has stayed behind the stream for
    /// [`STALL_AFTER`] without moving; never while it keeps up.
    async fn stalled(&self) -> u64 {
        loop {
            let before = self.applied();
            tokio::time::sleep(STALL_AFTER).await;
            if self.applied() != before {
                continue;
            }
            // A record published just now may be on its way: behind twice, a second
            // apart, without a move.
            if let Ok(last) = self.tail.last_sequence().await
                && last > before
            {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if self.applied() == before {
                    return last;
                }
            }
        }
    }

    /// An ordered consumer from the record after the view's position.
    async fn open(&self) -> Result<pull::Ordered, String> {
        let stream = service_kit::feed::reopen(&self.js, ACCOUNTS_STREAM, ensure(&self.js)).await?;
        let next = *self.applied.borrow() + 1;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                description: Some("Keeps users.db of one users instance".to_owned()),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ..pull::OrderedConfig::default()
            })
            .await
            .map_err(|err| format!("cannot create a consumer of {ACCOUNTS_STREAM}: {err}"))?;
        consumer
            .messages()
            .await
            .map_err(|err| format!("cannot read {ACCOUNTS_STREAM}: {err}"))
    }

    /// Writes the records of `batch` in one transaction and moves the position.
    async fn apply(&self, batch: &[jetstream::Message]) -> Result<(), UsersError> {
        let applied = *self.applied.borrow();
        let mut records = Vec::with_capacity(batch.len());
        let mut last = applied;
        for message in batch {
            let Ok(info) = message.info() else { continue };
            let seq = info.stream_sequence;
            if seq <= last {
                continue;
            }
            last = seq;
            match serde_json::from_slice::<AccountRecord>(&message.payload) {
                Ok(record) => records.push((seq, record)),
                Err(err) => tracing::error!(
                    subject = %message.subject, seq, %err,
                    "skipping a record of the accounts stream that is not an account"
                ),
            }
        }
        if last == applied {
            return Ok(());
        }
        self.store.apply(records, last).await?;
        self.applied.send_replace(last);
        Ok(())
    }

    /// The questions about the stream's end, in the Prometheus text format.
    pub fn stream_end_metrics(&self) -> String {
        self.tail.metrics()
    }

    /// The last stream sequence in the view.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits (at most [`CATCH_UP_WAIT`]) until the view holds sequence `seq`.
    pub async fn wait_for(&self, seq: u64) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(CATCH_UP_WAIT, applied.wait_for(|at| *at >= seq))
            .await
            .is_ok_and(|changed| changed.is_ok())
    }

    /// Waits until the view holds everything the stream holds now.
    pub async fn catch_up(&self) -> Result<(), UsersError> {
        bus_schema::trace::traced(
            || SpanBuilder::from_name("catch up users.db with the USERS stream"),
            "view_behind",
            self.catch_up_untraced(),
        )
        .await
    }

    async fn catch_up_untraced(&self) -> Result<(), UsersError> {
        let behind = |why: String| {
            UsersError::Unavailable(
                Reason::ViewBehind,
                format!("cannot confirm this instance knows every account ({why}); try again"),
            )
        };
        let last = self
            .tail
            .last_sequence()
            .await
            .map_err(|err| behind(err.to_string()))?;
        if self.wait_for(last).await {
            Ok(())
        } else {
            Err(behind(format!(
                "users.db is still reading up to record {last}"
            )))
        }
    }

    /// The account named `username`: from the view, or, when the view does not have it,
    /// from the view once it has caught up with the stream.
    pub async fn find(&self, username: &str) -> Result<Option<StoredUser>, UsersError> {
        if let Some(user) = self.store.find(username.to_owned()).await? {
            return Ok(Some(user));
        }
        self.catch_up().await?;
        self.store.find(username.to_owned()).await
    }

    /// Whether the view's database answers.
    pub async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }
}

async fn pause(stop: &CancellationToken) {
    service_kit::feed::pause(stop, RETRY_AFTER).await;
}
