//! The purchase history in memory: built from `purchases.json` at start and kept up to
//! date by the appender, so that no request reads the file.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bus_schema::orders::{Article, PurchaseItem};
use uuid::Uuid;

use crate::domain::purchase::Line;

/// One recorded purchase, compact: articles are shared between purchases.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: Uuid,
    pub article: Arc<Article>,
    pub purchased_at: Box<str>,
}

impl Item {
    pub fn to_reply(&self) -> PurchaseItem {
        PurchaseItem {
            id: self.id.to_string(),
            article: (*self.article).clone(),
            purchased_at: self.purchased_at.to_string(),
        }
    }
}

/// Everything in `purchases.json`, by user, by event id and by idempotency key.
#[derive(Debug, Default)]
pub struct Index {
    by_user: HashMap<Box<str>, Vec<Item>>,
    seen: HashSet<Uuid>,
    /// (username, idempotency key) -> position in the user's history.
    keys: HashMap<(Box<str>, Box<str>), usize>,
    articles: HashSet<Arc<Article>>,
}

impl Index {
    /// Whether the event `id` is in the file already.
    pub fn contains(&self, id: &Uuid) -> bool {
        self.seen.contains(id)
    }

    /// Adds one line of the file; `false` (and nothing changes) when its event is known.
    pub fn insert(&mut self, id: Uuid, line: &Line) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        let article = match self.articles.get(&line.event.article) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(line.event.article.clone());
                self.articles.insert(Arc::clone(&shared));
                shared
            }
        };
        let history = self
            .by_user
            .entry(line.event.username.as_str().into())
            .or_default();
        if let Some(key) = &line.event.idempotency_key {
            self.keys
                .entry((line.event.username.as_str().into(), key.as_str().into()))
                .or_insert(history.len());
        }
        history.push(Item {
            id,
            article,
            purchased_at: line.event.purchased_at.as_str().into(),
        });
        true
    }

    /// The purchases of `username`, oldest first.
    pub fn history(&self, username: &str) -> &[Item] {
        self.by_user.get(username).map_or(&[], Vec::as_slice)
    }

    /// The purchase `username` made with idempotency key `key`, if any.
    pub fn by_key(&self, username: &str, key: &str) -> Option<&Item> {
        let position = *self.keys.get(&(username.into(), key.into()))?;
        self.by_user.get(username)?.get(position)
    }

    /// How many purchases are recorded.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
