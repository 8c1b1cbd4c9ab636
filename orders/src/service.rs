//! The operations of the orders service that both doors call.
//!
//! A buy is an event: [`Orders::buy`] publishes it to the `ORDERS` stream and answers
//! once the [appender](crate::events::appender) has written it to `purchases.json` and to the [index](crate::store::index), so a
//! purchase that was confirmed is on disk and in the history. A buy with an idempotency
//! key publishes the one event id that key may ever have
//! ([`bus_schema::orders::purchase_id`]): the stream refuses a second copy within its
//! duplicate window, the file keeps one line per id in any case, and the buyer is
//! answered with the purchase that line holds.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{
    HeaderMap,
    jetstream::{
        self,
        context::{PublishError, PublishErrorKind},
        publish::PublishAck,
    },
};
use bus_schema::{
    Invalid, Reason,
    orders::{
        ArticlesReply, BuyReply, BuyRequest, Cursor, PurchasedEvent, PurchasesReply,
        PurchasesRequest, purchase_id, subject,
    },
    users::Username,
};
use bytes::Bytes;
use opentelemetry::{KeyValue, trace::SpanBuilder};
use service_kit::{
    pool::Pool,
    stream_tail::StreamTail,
    tokens::{TokenError, Verifier},
};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::{
    domain::{self, BUY_MESSAGE, catalog::Catalog},
    error::OrdersError,
    events::stream,
    store::{index::Index, pages::Page},
};

/// How long a buy may take, publishing and waiting for its line, before it gives up with
/// a 503: below the callers' timeout (3 s by default), so that the buyer hears what
/// became of the purchase rather than a bare timeout.
const BUY_DEADLINE: Duration = Duration::from_millis(2500);
/// Pause between two publishes of one purchase that no stream took.
const PUBLISH_RETRY_AFTER: Duration = Duration::from_millis(200);
/// How long a read waits for the file to reach the stream's end before it answers 503.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// The orders service's core, shared by both doors and the appender.
#[derive(Debug, Clone)]
pub struct Orders {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Catalog,
    /// The history on disk; read on the reader threads below.
    index: Arc<Index>,
    /// Buys waiting for the line of an event, by event id (several when one key is
    /// retried while its first request still waits).
    waiters: Mutex<HashMap<Uuid, Vec<oneshot::Sender<()>>>>,
    js: jetstream::Context,
    /// The next stream sequence the appender reads: every event below it is in the
    /// file (or is not a purchase).
    cursor: watch::Sender<u64>,
    /// Lines written since start.
    appended: AtomicU64,
    /// Lines read from the file at start: those the index lacked.
    read_at_start: AtomicU64,
    /// The stream's end, for reads that must include other instances' purchases.
    tail: StreamTail,
    /// Whether the file held the stream's end when the last read asked for it.
    view_was_current: AtomicBool,
    /// Checks the tokens of both doors with the keys auth publishes.
    verifier: Verifier,
    /// The threads that read the index, one per read connection.
    readers: Pool,
}

/// An answer of `orders.purchases`: the reply (JSON bytes) and, for a request
/// `view_as_is`, the next stream sequence the view had not applied when the page was
/// read.
#[derive(Debug, Clone)]
pub struct Purchases {
    pub reply: Bytes,
    pub view_next: Option<u64>,
}

fn view_behind(why: String) -> OrdersError {
    OrdersError::Unavailable(
        Reason::ViewBehind,
        format!("cannot confirm this instance's history is current ({why}); try again"),
    )
}

impl Orders {
    pub fn new(
        catalog: Catalog,
        index: Arc<Index>,
        js: jetstream::Context,
        verifier: Verifier,
    ) -> std::io::Result<Self> {
        let tail = StreamTail::new(js.client(), bus_schema::orders::STREAM);
        let readers = Pool::new("index-reader", crate::store::index::READERS)?;
        Ok(Self {
            inner: Arc::new(Inner {
                catalog,
                index,
                waiters: Mutex::default(),
                js,
                cursor: watch::Sender::new(0),
                appended: AtomicU64::new(0),
                read_at_start: AtomicU64::new(0),
                tail,
                view_was_current: AtomicBool::new(false),
                verifier,
                readers,
            }),
        })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// `orders.articles`
    pub fn articles(&self) -> ArticlesReply {
        ArticlesReply {
            articles: self.inner.catalog.articles().to_vec(),
        }
    }

    /// `orders.purchases`: one page of one user's history (the first [`MAX_PAGE`]
    /// purchases, oldest first, unless the request says otherwise), with the count and
    /// total of all of them; empty for a user who never bought anything. Includes every
    /// purchase the stream held when the request arrived, whichever instance recorded
    /// it: the file is first brought up to the stream's end. Encoded (the JSON of a
    /// [`PurchasesReply`]) as the index writes it; [`Self::purchases_page`] decodes it.
    ///
    /// With `if_none_match` the [`page_tag`](bus_schema::orders::page_tag) of the page as
    /// it is, the reply is [`NOT_MODIFIED`](bus_schema::orders::NOT_MODIFIED).
    ///
    /// [`MAX_PAGE`]: bus_schema::orders::MAX_PAGE
    ///
    /// With `view_as_is` the page is read from the view as it is, and the answer says
    /// how far the view went; with `stream_end` the view is brought up to that sequence
    /// instead of the stream's end asked here (see [`PurchasesRequest`]).
    pub async fn purchases(&self, req: &PurchasesRequest) -> Result<Purchases, OrdersError> {
        let (page, view_next) = self.page_viewed(req).await?;
        let reply = match &req.if_none_match {
            Some(tag) if **tag == *page.tag => Bytes::from_static(bus_schema::orders::NOT_MODIFIED),
            _ => page.reply,
        };
        Ok(Purchases { reply, view_next })
    }

    /// [`Self::purchases`]' page, always, with its tag (for an HTTP door's `ETag`).
    pub async fn page(&self, req: &PurchasesRequest) -> Result<Page, OrdersError> {
        self.page_viewed(req).await.map(|(page, _)| page)
    }

    /// The page, and with `view_as_is` the view's next sequence when it was read.
    ///
    /// Otherwise, when the view was current at the last read, the page is read while
    /// the stream's end is asked, and kept if the view it was read from already held
    /// that end; else (or when it did not) the page is read once the view holds it.
    async fn page_viewed(
        &self,
        req: &PurchasesRequest,
    ) -> Result<(Page, Option<u64>), OrdersError> {
        let username = domain::username(&req.username)?.into_string();
        let (limit, cursor) = domain::page(
            req.limit.map(u64::from),
            req.cursor.as_deref(),
            req.newest_first,
        )?;
        if req.view_as_is {
            // Everything below the cursor is in the index before the page is read.
            let next = self.cursor();
            let page = self.read_page(&username, cursor, limit).await?;
            return Ok((page, Some(next)));
        }
        if let Some(end) = req.stream_end {
            self.written_up_to_within(end).await?;
            return Ok((self.read_page(&username, cursor, limit).await?, None));
        }
        self.page_caught_up(&username, cursor, limit)
            .await
            .map(|page| (page, None))
    }

    /// A page that includes every event the stream held when this was called.
    async fn page_caught_up(
        &self,
        username: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Page, OrdersError> {
        if self.inner.view_was_current.load(Ordering::Relaxed) {
            // Everything below the cursor is in the index before the read begins.
            let before = self.cursor();
            let (current, page) = tokio::join!(
                self.catch_up(Some(before)),
                self.read_page(username, cursor, limit)
            );
            if current? {
                return page;
            }
        } else {
            self.catch_up(None).await?;
        }
        self.read_page(username, cursor, limit).await
    }

    /// A page of the index as it is now: kept from the last read when its user has not
    /// bought since, read otherwise.
    async fn read_page(
        &self,
        username: &str,
        cursor: Cursor,
        limit: usize,
    ) -> Result<Page, OrdersError> {
        if let Some(page) = self.inner.index.kept_page(username, cursor, limit) {
            return Ok(page);
        }
        let username = username.to_owned();
        self.read_index(move |index: &Index| index.page(&username, cursor, limit))
            .await
    }

    /// Asks the stream's end and, when the view did not hold it, waits until the file
    /// does; whether it did. The view is that of a read begun when the cursor was at
    /// `before` (the cursor now, without a read begun).
    async fn catch_up(&self, before: Option<u64>) -> Result<bool, OrdersError> {
        bus_schema::trace::traced(
            || SpanBuilder::from_name("catch up purchases.json with the ORDERS stream"),
            "view_behind",
            async {
                let end = self.stream_end().await?;
                let now = self.cursor();
                let current = before.map_or(now, |before| before.min(now)) > end;
                self.inner
                    .view_was_current
                    .store(current, Ordering::Relaxed);
                if !current {
                    self.written_up_to_within(end).await?;
                }
                Ok(current)
            },
        )
        .await
    }

    /// [`Self::page`], decoded.
    pub async fn purchases_page(
        &self,
        req: &PurchasesRequest,
    ) -> Result<PurchasesReply, OrdersError> {
        let page = self.page(req).await?;
        Ok(serde_json::from_slice(&page.reply).expect("BUG: the index writes replies that decode"))
    }

    /// The stream's last sequence now, as a 503 `view_behind` when it cannot be known.
    async fn stream_end(&self) -> Result<u64, OrdersError> {
        self.inner
            .tail
            .last_sequence()
            .await
            .map_err(|err| view_behind(err.to_string()))
    }

    /// Waits, for a while, until the file holds the stream's events up to `end`.
    async fn written_up_to_within(&self, end: u64) -> Result<(), OrdersError> {
        tokio::time::timeout(CATCH_UP_WAIT, self.written_up_to(end))
            .await
            .map_err(|_| view_behind(format!("the file is still writing up to event {end}")))
    }

    /// The questions about the stream's end before reads, and where the pages read came
    /// from, in the Prometheus text format.
    pub fn read_metrics(&self) -> String {
        let mut text = self.inner.tail.metrics();
        text.push_str(&self.inner.index.pages_metrics());
        text
    }

    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The bus door's rule: a request that acts for `username` carries that user's valid
    /// token (`token`, from its `Authorization` header). A name no account can have is
    /// a 400 first, as on the HTTP door.
    pub async fn authorize_token(
        &self,
        token: Option<&str>,
        username: &str,
    ) -> Result<(), OrdersError> {
        domain::username(username)?;
        let token = token.ok_or(TokenError::Required)?;
        let caller = self.inner.verifier.verify(token).await?;
        self.authorize(&caller.username, username).map(drop)
    }

    /// The HTTP door's rule: a caller may only act on their own account.
    pub fn authorize(&self, caller: &str, path_user: &str) -> Result<String, OrdersError> {
        let named = domain::username(path_user)?;
        if named.as_str() == caller {
            Ok(named.into_string())
        } else {
            Err(OrdersError::Forbidden(format!(
                "you are logged in as {caller} and may only see or buy for that account"
            )))
        }
    }

    /// `orders.buy`: records a purchase and answers once it is on disk. With an
    /// idempotency key, answers the key's first purchase, however often and wherever
    /// the key is retried.
    pub async fn buy(&self, req: BuyRequest) -> Result<BuyReply, OrdersError> {
        let username = domain::username(&req.username)?;
        let article_id = domain::article_id(&req.article_id)?;
        let article = self
            .inner
            .catalog
            .get(article_id)
            .ok_or(OrdersError::UnknownArticle(i64::from(article_id)))?
            .clone();
        let key = domain::idempotency_key(req.idempotency_key)?;
        let id = match &key {
            Some(key) => {
                if let Some(reply) = self.by_key(&username, key).await? {
                    return Ok(reply);
                }
                purchase_id(username.as_str(), key)
            }
            None => Uuid::now_v7(),
        };
        let event = PurchasedEvent {
            id: id.to_string(),
            username: username.as_str().to_owned(),
            article: (*article).clone(),
            purchased_at: service_kit::clock::now_rfc3339(),
            idempotency_key: key,
        };
        self.record_id(&event, event.idempotency_key.is_some())
            .await?;
        // The file holds one line per id: the first event of this key that reached the
        // stream, which may be another request's.
        if let Some(key) = event.idempotency_key.as_deref()
            && let Some(first) = self.by_key(&username, key).await?
        {
            return Ok(first);
        }
        Ok(reply(event))
    }

    /// The purchase `username` made with `key`, as a buy reply.
    async fn by_key(
        &self,
        username: &Username,
        key: &str,
    ) -> Result<Option<BuyReply>, OrdersError> {
        let (user, key) = (username.as_str().to_owned(), key.to_owned());
        let item = self
            .read_index(move |index| index.by_key(&user, &key))
            .await?;
        Ok(item.map(|item| BuyReply {
            message: BUY_MESSAGE.to_owned(),
            article: item.article,
            user: username.as_str().to_owned(),
            id: item.id.to_string(),
            purchased_at: item.purchased_at,
        }))
    }

    /// Runs `read` on the index on one of its reader threads; a failure is a 503.
    async fn read_index<T, F>(&self, read: F) -> Result<T, OrdersError>
    where
        T: Send + 'static,
        F: FnOnce(&Index) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let index = Arc::clone(&self.inner.index);
        let unavailable = |err: String| {
            tracing::error!(%err, "cannot read the purchase history index");
            OrdersError::Unavailable(
                Reason::ViewBehind,
                format!("cannot read the purchase history right now ({err}); try again"),
            )
        };
        let span = bus_schema::trace::start(|| service_kit::trace::sqlite("SELECT", "purchases"));
        let read = self
            .inner
            .readers
            .run(move || read(&index))
            .await
            .map_err(|err| unavailable(err.to_string()))
            .and_then(|read| read.map_err(|err| unavailable(err.to_string())));
        if let Some(span) = span {
            if let Err(err) = &read {
                span.fail("view_behind", err.to_string());
            }
            span.end();
        }
        read
    }

    /// Publishes `event` to the stream (unless its id is in the file already) and waits
    /// until a line with its id is in the file.
    pub async fn record(&self, event: &PurchasedEvent) -> Result<(), OrdersError> {
        self.record_id(event, true).await
    }

    /// [`Self::record`]; the index is asked whether the id is in the file already only
    /// when `may_be_known` (a key's id, a converted purchase's): a new UUIDv7 cannot be.
    async fn record_id(
        &self,
        event: &PurchasedEvent,
        may_be_known: bool,
    ) -> Result<(), OrdersError> {
        let id = Uuid::parse_str(&event.id)
            .map_err(|err| Invalid::new(Reason::InvalidRequest, format!("bad event id: {err}")))?;
        let (tx, appended) = oneshot::channel();
        self.waiters().entry(id).or_default().push(tx);
        let recorded = may_be_known
            && self
                .read_index(move |index| index.contains(&id))
                .await
                .inspect_err(|_| self.forget_waiter(&id))?;
        if recorded {
            drop(appended);
            self.forget_waiter(&id);
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + BUY_DEADLINE;
        let publishing = bus_schema::trace::publishing(subject::PURCHASED_PREFIX);
        if let Some(span) = &publishing {
            span.set(KeyValue::new("messaging.message.id", event.id.clone()));
        }
        let published =
            tokio::time::timeout_at(deadline, self.publish(event, deadline, publishing.as_ref()))
                .await
                .unwrap_or(Err(Published::Unknown));
        if let Some(span) = publishing {
            match &published {
                Ok(ack) => span.set(KeyValue::new("shop.stream.sequence", ack.sequence as i64)),
                Err(Published::Unknown) => span.fail("maybe_recorded", "no ack in time"),
                Err(Published::Refused(err)) => {
                    span.fail("event_store_unavailable", err.to_string())
                }
            }
            span.end();
        }
        let seq = match published {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(%id, seq = ack.sequence, "the stream holds this purchase already");
                }
                Some(ack.sequence)
            }
            // Perhaps stored: if it was, its line shows up like any other.
            Err(Published::Unknown) => None,
            Err(Published::Refused(err)) => {
                drop(appended);
                self.forget_waiter(&id);
                return Err(err);
            }
        };
        let waiting = bus_schema::trace::start(|| {
            SpanBuilder::from_name("wait for the line in purchases.json")
                .with_attributes([KeyValue::new("messaging.message.id", event.id.clone())])
        });
        let written = tokio::time::timeout_at(deadline, appended)
            .await
            .is_ok_and(|r| r.is_ok());
        if let Some(span) = waiting {
            if !written {
                span.fail("not_on_disk_yet", "the line was not written in time");
            }
            span.end();
        }
        if written {
            return Ok(());
        }
        self.forget_waiter(&id);
        Err(match seq {
            Some(seq) => {
                tracing::error!(%id, seq, "a published purchase was not written in time");
                OrdersError::Unavailable(
                    Reason::NotOnDiskYet,
                    "the purchase was accepted but is not on disk yet; look at your purchases \
                     in a moment, or repeat the request with the same Idempotency-Key"
                        .into(),
                )
            }
            None => {
                tracing::warn!(%id, "the event store did not confirm a purchase");
                OrdersError::Unavailable(
                    Reason::MaybeRecorded,
                    "the event store (JetStream) did not answer in time: the purchase may have \
                     been recorded; look at your purchases in a moment, or repeat the request \
                     with the same Idempotency-Key"
                        .into(),
                )
            }
        })
    }

    /// Publishes `event`, trying again with the same `Nats-Msg-Id` until `deadline` while
    /// no stream takes it: a clustered stream has no leader for some seconds after its
    /// leader died, and the publish then finds no responder (nothing is stored). A stream
    /// that was deleted (`nats stream rm ORDERS`) is made again once; the appender
    /// notices the new stream and reads it from its start.
    async fn publish(
        &self,
        event: &PurchasedEvent,
        deadline: tokio::time::Instant,
        span: Option<&bus_schema::trace::Span>,
    ) -> Result<PublishAck, Published> {
        let mut remade = false;
        let result = loop {
            match self.publish_once(event, span).await {
                Err(err) if err.kind() == PublishErrorKind::StreamNotFound => {
                    if !remade && self.stream_is_gone().await {
                        remade = true;
                        match stream::ensure(&self.inner.js).await {
                            Ok(_) => {
                                tracing::warn!(
                                    "created the {} stream again",
                                    bus_schema::orders::STREAM
                                );
                                continue;
                            }
                            Err(ensure) => {
                                tracing::warn!(%ensure, "cannot create the event stream again");
                            }
                        }
                    }
                    if tokio::time::Instant::now() + PUBLISH_RETRY_AFTER >= deadline {
                        break Err(err);
                    }
                    tracing::debug!("no stream took a purchase (a leader election?); trying again");
                    tokio::time::sleep(PUBLISH_RETRY_AFTER).await;
                }
                result => break result,
            }
        };
        result.map_err(|err| {
            tracing::warn!(%err, "cannot publish a purchase event");
            match err.kind() {
                // Sent, but no ack came back: the stream may hold it.
                PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => Published::Unknown,
                _ => Published::Refused(OrdersError::Unavailable(
                    Reason::EventStoreUnavailable,
                    "purchases cannot be recorded right now: the event store (JetStream) is \
                     unavailable; nothing was bought, try again in a moment"
                        .into(),
                )),
            }
        })
    }

    /// Whether JetStream says the `ORDERS` stream does not exist (not merely that it did
    /// not answer).
    async fn stream_is_gone(&self) -> bool {
        let asked = tokio::time::timeout(
            Duration::from_millis(500),
            self.inner.js.get_stream(bus_schema::orders::STREAM),
        )
        .await;
        matches!(asked, Ok(Err(err)) if service_kit::stream_tail::is_stream_not_found(&err))
    }

    /// Publishes `event` with its id as `Nats-Msg-Id` (and the trace context of `span`)
    /// and waits for the stream's ack.
    async fn publish_once(
        &self,
        event: &PurchasedEvent,
        span: Option<&bus_schema::trace::Span>,
    ) -> Result<PublishAck, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.as_str());
        if let Some(span) = span {
            span.inject(&mut headers);
        }
        let payload = serde_json::to_vec(event).expect("BUG: an event always serialises");
        self.inner
            .js
            .publish_with_headers(subject::purchased(&event.username), headers, payload.into())
            .await?
            .await
    }

    /// Called by the appender once the events `written` are in the file and the index:
    /// moves the cursor to `next` and wakes their buyers and those of `duplicates`
    /// (events whose id was in the file already).
    pub(crate) fn committed(&self, written: &[Uuid], duplicates: &[Uuid], next: u64) {
        self.inner
            .appended
            .fetch_add(written.len() as u64, Ordering::Relaxed);
        self.set_cursor(next);
        let mut waiters = self.waiters();
        for id in written.iter().chain(duplicates) {
            for waiter in waiters.remove(id).into_iter().flatten() {
                let _ = waiter.send(());
            }
        }
    }

    /// The history index, for the appender.
    pub(crate) fn history_index(&self) -> &Arc<Index> {
        &self.inner.index
    }

    /// Moves the appender's cursor (back, too, when the stream was made again).
    pub(crate) fn set_cursor(&self, next: u64) {
        self.inner.cursor.send_if_modified(|cursor| {
            let moved = *cursor != next;
            *cursor = next;
            moved
        });
    }

    /// The next stream sequence the appender reads.
    pub fn cursor(&self) -> u64 {
        *self.inner.cursor.borrow()
    }

    /// Waits until the appender has read the stream up to `seq`.
    pub async fn written_up_to(&self, seq: u64) {
        let mut cursor = self.inner.cursor.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = cursor.wait_for(|next| *next > seq).await;
    }

    /// Records how many lines of the file were read at start.
    pub(crate) fn read_at_start(&self, lines: u64) {
        self.inner.read_at_start.store(lines, Ordering::Relaxed);
    }

    /// Lines of the file read at start (those the index lacked).
    pub fn lines_read_at_start(&self) -> u64 {
        self.inner.read_at_start.load(Ordering::Relaxed)
    }

    /// Lines appended since start.
    pub fn appended(&self) -> u64 {
        self.inner.appended.load(Ordering::Relaxed)
    }

    /// Purchases in the file.
    pub fn recorded(&self) -> u64 {
        self.inner.index.len()
    }

    /// Events the stream holds that the appender has not read yet, from the server
    /// (within a second, or `None`).
    pub async fn unwritten(&self) -> Option<u64> {
        let ask = async {
            let stream = self
                .inner
                .js
                .get_stream(bus_schema::orders::STREAM)
                .await
                .ok()?;
            let last = stream.get_info().await.ok()?.state.last_sequence;
            Some((last + 1).saturating_sub(self.cursor()))
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<oneshot::Sender<()>>>> {
        self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the waiters of `id` that nobody waits on any more (ours, given up).
    fn forget_waiter(&self, id: &Uuid) {
        let mut waiters = self.waiters();
        if let Some(list) = waiters.get_mut(id) {
            list.retain(|waiter| !waiter.is_closed());
            if list.is_empty() {
                waiters.remove(id);
            }
        }
    }
}

/// Why a publish did not give an ack.
#[derive(Debug)]
enum Published {
    /// The stream refused it or could not be reached: nothing was stored.
    Refused(OrdersError),
    /// No answer in time: it may have been stored.
    Unknown,
}

fn reply(event: PurchasedEvent) -> BuyReply {
    BuyReply {
        message: BUY_MESSAGE.to_owned(),
        article: event.article,
        user: event.username,
        id: event.id,
        purchased_at: event.purchased_at,
    }
}
