//! The rules of the orders service, with no transport in sight.
//!
//! A buy is an event: [`Orders::buy`] publishes it to the `ORDERS` stream and answers
//! once the [`appender`] has written it to `purchases.json` and to the [`index`], so a
//! purchase that was confirmed is on disk and in the history.

pub mod appender;
pub mod catalog;
pub mod flask;
pub mod index;
pub mod journal;
pub mod stream;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
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
    orders::{
        ArticlesReply, BuyReply, BuyRequest, PurchasedEvent, PurchasesReply, PurchasesRequest,
        subject,
    },
    users::Username,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::OrdersError;
use catalog::Catalog;
use index::{Index, Item};
use journal::Line;

/// How long a buy waits for its line to reach the disk before it gives up with a 503:
/// below the callers' timeout (3 s by default), so that the buyer hears this answer
/// rather than a bare timeout.
const APPEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 128;
/// What a successful buy says, as the original did.
pub const BUY_MESSAGE: &str = "Purchase successful";

/// The orders service's core, shared by both doors and the appender.
#[derive(Debug, Clone)]
pub struct Orders {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Catalog,
    index: RwLock<Index>,
    /// Buys waiting for their line, by event id.
    waiters: Mutex<HashMap<Uuid, oneshot::Sender<()>>>,
    /// One lock per user, held by buys that carry an idempotency key, so that two
    /// requests with the same key never both record a purchase.
    key_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    js: jetstream::Context,
    /// Held while the stream and the consumer are being created again.
    healing: Arc<tokio::sync::Mutex<()>>,
    appended: AtomicU64,
}

impl Orders {
    pub fn new(catalog: Catalog, index: Index, js: jetstream::Context) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog,
                index: RwLock::new(index),
                waiters: Mutex::default(),
                key_locks: Mutex::default(),
                js,
                healing: Arc::default(),
                appended: AtomicU64::new(0),
            }),
        }
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

    /// `orders.purchases`: the history of one user, oldest first; empty for a user who
    /// never bought anything.
    pub fn purchases(&self, req: &PurchasesRequest) -> Result<PurchasesReply, OrdersError> {
        let username = username(&req.username)?;
        let index = self.index();
        let history = index.history(username.as_str());
        Ok(PurchasesReply {
            user: username.into_string(),
            purchases: history.iter().map(|i| i.article.name.clone()).collect(),
            items: history.iter().map(Item::to_reply).collect(),
        })
    }

    /// The HTTP door's rule: a caller may only act on their own account.
    pub fn authorize(&self, caller: &str, path_user: &str) -> Result<String, OrdersError> {
        let named = username(path_user)?;
        if named.as_str() == caller {
            Ok(named.into_string())
        } else {
            Err(OrdersError::Forbidden(format!(
                "you are logged in as {caller} and may only see or buy for that account"
            )))
        }
    }

    /// `orders.buy`: records a purchase and answers once it is on disk.
    pub async fn buy(&self, req: BuyRequest) -> Result<BuyReply, OrdersError> {
        let username = username(&req.username)?;
        let article_id = article_id(&req.article_id)?;
        let article = self
            .inner
            .catalog
            .get(article_id)
            .ok_or(OrdersError::UnknownArticle(i64::from(article_id)))?
            .clone();
        let key = idempotency_key(req.idempotency_key)?;
        let event = |key| PurchasedEvent {
            id: Uuid::now_v7().to_string(),
            username: username.as_str().to_owned(),
            article: (*article).clone(),
            purchased_at: now_rfc3339(),
            idempotency_key: key,
        };
        let Some(key) = key else {
            let event = event(None);
            self.record(&event).await?;
            return Ok(reply(event));
        };

        let lock = self.key_lock(username.as_str());
        let _held = lock.lock().await;
        if let Some(item) = self.index().by_key(username.as_str(), &key) {
            return Ok(BuyReply {
                message: BUY_MESSAGE.to_owned(),
                article: (*item.article).clone(),
                user: username.into_string(),
                id: item.id.to_string(),
                purchased_at: item.purchased_at.to_string(),
            });
        }
        let event = event(Some(key));
        self.record(&event).await?;
        Ok(reply(event))
    }

    /// Publishes `event` to the stream and waits until its line is in the file.
    pub async fn record(&self, event: &PurchasedEvent) -> Result<(), OrdersError> {
        let id = Uuid::parse_str(&event.id)
            .map_err(|err| OrdersError::Invalid(format!("bad event id: {err}")))?;
        let (tx, appended) = oneshot::channel();
        self.waiters().insert(id, tx);
        if self.index().contains(&id) {
            self.waiters().remove(&id);
            return Ok(());
        }
        if let Err(err) = self.publish(event).await {
            self.waiters().remove(&id);
            return Err(err);
        }
        match tokio::time::timeout(APPEND_TIMEOUT, appended).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.waiters().remove(&id);
                tracing::error!(%id, "a published purchase was not appended in time");
                // Perhaps the appender's consumer was deleted: the event waits in the
                // stream and is written once the consumer exists again.
                if let Ok(healing) = Arc::clone(&self.inner.healing).try_lock_owned() {
                    let orders = self.clone();
                    tokio::spawn(async move {
                        let _healing = healing;
                        orders.heal().await;
                    });
                }
                Err(OrdersError::Unavailable(
                    "the purchase was accepted but is not on disk yet; look at your purchases \
                     in a moment before buying again"
                        .into(),
                ))
            }
        }
    }

    async fn publish(&self, event: &PurchasedEvent) -> Result<(), OrdersError> {
        let result = match self.publish_once(event).await {
            // The stream was deleted while the service runs (`nats stream rm ORDERS`):
            // create it and the consumer again, then try once more.
            Err(err) if err.kind() == PublishErrorKind::StreamNotFound => {
                let healed = {
                    let _healing = self.inner.healing.lock().await;
                    self.heal().await
                };
                if healed {
                    self.publish_once(event).await
                } else {
                    Err(err)
                }
            }
            result => result,
        };
        result.map(drop).map_err(|err| {
            tracing::warn!(%err, "cannot publish a purchase event");
            OrdersError::Unavailable(
                "purchases cannot be recorded right now: the event store (JetStream) is \
                 unavailable; nothing was bought, try again in a moment"
                    .into(),
            )
        })
    }

    /// Publishes `event` with its id as `Nats-Msg-Id` and waits for the stream's ack.
    async fn publish_once(&self, event: &PurchasedEvent) -> Result<PublishAck, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.as_str());
        let payload = serde_json::to_vec(event).expect("BUG: an event always serialises");
        self.inner
            .js
            .publish_with_headers(subject::purchased(&event.username), headers, payload.into())
            .await?
            .await
    }

    /// Creates the stream and the appender's consumer if they are missing (they are
    /// made at start; an operator may delete them later). The appender's subscription
    /// on the deliver subject outlives them, so a new consumer delivers to it at once,
    /// from the first event the stream holds; events already written are recognised by
    /// their id. The caller holds `healing`. Whether both exist now.
    async fn heal(&self) -> bool {
        match stream::ensure(&self.inner.js).await {
            Ok(_) => {
                tracing::warn!(
                    "made sure the {} stream and its appender consumer exist",
                    bus_schema::orders::STREAM
                );
                true
            }
            Err(err) => {
                tracing::warn!(%err, "cannot create the event stream again");
                false
            }
        }
    }

    /// Called by the appender once `lines` are on disk: adds them to the index and
    /// wakes their buyers. Lines of known events only wake their buyers.
    pub(crate) fn committed(&self, lines: &[(Uuid, Line)], duplicates: &[Uuid]) {
        {
            let mut index = self.inner.index.write().unwrap_or_else(|p| p.into_inner());
            for (id, line) in lines {
                index.insert(*id, line);
            }
        }
        self.inner
            .appended
            .fetch_add(lines.len() as u64, Ordering::Relaxed);
        let mut waiters = self.waiters();
        for id in lines.iter().map(|(id, _)| id).chain(duplicates) {
            if let Some(waiter) = waiters.remove(id) {
                let _ = waiter.send(());
            }
        }
    }

    /// Whether the event `id` is in the file.
    pub fn is_recorded(&self, id: &Uuid) -> bool {
        self.index().contains(id)
    }

    /// The highest stream sequence in the file.
    pub fn last_seq(&self) -> u64 {
        self.index().last_seq()
    }

    /// Lines appended since start.
    pub fn appended(&self) -> u64 {
        self.inner.appended.load(Ordering::Relaxed)
    }

    /// Purchases in the file.
    pub fn recorded(&self) -> usize {
        self.index().len()
    }

    /// Events the appender has not written and acknowledged yet, from the server (within
    /// a second, or `None`).
    pub async fn consumer_pending(&self) -> Option<u64> {
        let ask = async {
            let stream = self
                .inner
                .js
                .get_stream(bus_schema::orders::STREAM)
                .await
                .ok()?;
            let info = stream.consumer_info(stream::CONSUMER).await.ok()?;
            Some(info.num_pending + info.num_ack_pending as u64)
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.inner.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, oneshot::Sender<()>>> {
        self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key_lock(&self, username: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .key_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(locks.entry(username.to_owned()).or_default())
    }
}

fn username(raw: &str) -> Result<Username, OrdersError> {
    Username::parse(raw).map_err(OrdersError::Invalid)
}

/// `article_id` must be a JSON integer naming an article.
fn article_id(value: &serde_json::Value) -> Result<u32, OrdersError> {
    match value {
        serde_json::Value::Null => Err(OrdersError::Invalid("article_id is required".into())),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(id) => u32::try_from(id).map_err(|_| OrdersError::UnknownArticle(id)),
            None => Err(OrdersError::Invalid(format!(
                "article_id must be an integer, not {n}"
            ))),
        },
        other => Err(OrdersError::Invalid(format!(
            "article_id must be an integer, not {other}"
        ))),
    }
}

fn idempotency_key(key: Option<String>) -> Result<Option<String>, OrdersError> {
    let Some(key) = key else { return Ok(None) };
    let key = key.trim().to_owned();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OrdersError::Invalid(format!(
            "the idempotency key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(Some(key))
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

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("BUG: the current time is always formattable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn article_ids_must_be_integers() {
        assert_eq!(article_id(&json!(2)).ok(), Some(2));
        for bad in [json!(null), json!("2"), json!(2.5), json!([2]), json!(true)] {
            assert!(
                matches!(article_id(&bad), Err(OrdersError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            article_id(&json!(-1)),
            Err(OrdersError::UnknownArticle(-1))
        ));
        assert!(matches!(
            article_id(&json!(1u64 << 40)),
            Err(OrdersError::UnknownArticle(_))
        ));
    }

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert_eq!(
            idempotency_key(Some(" abc-1 ".into())).ok(),
            Some(Some("abc-1".into()))
        );
        assert!(idempotency_key(Some(String::new())).is_err());
        assert!(idempotency_key(Some("a b".into())).is_err());
        assert!(idempotency_key(Some("é".into())).is_err());
        assert!(idempotency_key(Some("k".repeat(129))).is_err());
    }
}
