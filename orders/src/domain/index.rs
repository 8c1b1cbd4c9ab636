//! The purchase history in memory: built from `purchases.json` at start and kept up to
//! date by the appender, so that no request reads the file.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use bus_schema::orders::{Article, Cursor, MAX_PAGE_BYTES, PurchaseItem};
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

/// One user's purchases, oldest first, and their total, kept as they are added so that
/// no request sums a whole history.
#[derive(Debug, Default)]
struct History {
    items: Vec<Item>,
    /// In cents.
    total: u64,
}

/// One page of a history.
#[derive(Debug)]
pub struct Page<'a> {
    /// In the page's order.
    pub items: Vec<&'a Item>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
    /// Every purchase of the user.
    pub count: u64,
    /// Their total price, in cents.
    pub total: u64,
}

/// What one purchase may take in a reply, encoded, at most: its item and its name in
/// `purchases`, a name's every byte escaped (`\u0000`) at worst.
fn reply_bytes(item: &Item) -> usize {
    160 + 12 * item.article.name.len() + item.purchased_at.len()
}

/// Everything in `purchases.json`, by user, by event id and by idempotency key.
#[derive(Debug, Default)]
pub struct Index {
    by_user: HashMap<Box<str>, History>,
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
                .or_insert(history.items.len());
        }
        history.total += u64::from(article.price);
        history.items.push(Item {
            id,
            article,
            purchased_at: line.event.purchased_at.as_str().into(),
        });
        true
    }

    /// The purchases of `username`, oldest first.
    pub fn history(&self, username: &str) -> &[Item] {
        self.by_user
            .get(username)
            .map_or(&[], |history| history.items.as_slice())
    }

    /// Up to `limit` purchases of `username` from `cursor` on, fewer when they would not
    /// fit [`MAX_PAGE_BYTES`] (one at least), with the cursor of the next page.
    pub fn page(&self, username: &str, cursor: Cursor, limit: usize) -> Page<'_> {
        let (items, total) = self
            .by_user
            .get(username)
            .map_or((&[][..], 0), |h| (h.items.as_slice(), h.total));
        let len = items.len() as u64;
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut fits = |item: &Item, taken: usize| {
            bytes += reply_bytes(item);
            taken < limit && (taken == 0 || bytes <= MAX_PAGE_BYTES)
        };
        let next = match cursor {
            Cursor::From(start) => {
                let start = usize::try_from(start.min(len)).unwrap_or(items.len());
                for item in &items[start..] {
                    if !fits(item, page.len()) {
                        break;
                    }
                    page.push(item);
                }
                let end = start + page.len();
                (end < items.len()).then_some(Cursor::From(end as u64))
            }
            Cursor::Before(end) => {
                let end = usize::try_from(end.min(len)).unwrap_or(items.len());
                for item in items[..end].iter().rev() {
                    if !fits(item, page.len()) {
                        break;
                    }
                    page.push(item);
                }
                let start = end - page.len();
                (start > 0).then_some(Cursor::Before(start as u64))
            }
        };
        Page {
            items: page,
            next,
            count: len,
            total,
        }
    }

    /// The purchase `username` made with idempotency key `key`, if any.
    pub fn by_key(&self, username: &str, key: &str) -> Option<&Item> {
        let position = *self.keys.get(&(username.into(), key.into()))?;
        self.by_user.get(username)?.items.get(position)
    }

    /// How many purchases are recorded.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use bus_schema::orders::PurchasedEvent;

    use super::*;

    fn index_of(user: &str, names: &[String]) -> Index {
        let mut index = Index::default();
        for (n, name) in names.iter().enumerate() {
            let event = PurchasedEvent {
                id: Uuid::now_v7().to_string(),
                username: user.into(),
                article: Article {
                    id: 1,
                    name: name.clone(),
                    price: 100 + n as u32,
                },
                purchased_at: "2026-12-06T12:00:00Z".into(),
                idempotency_key: None,
            };
            let id = Uuid::parse_str(&event.id).expect("uuid");
            index.insert(id, &Line::new(event, n as u64 + 1));
        }
        index
    }

    fn names(page: &Page<'_>) -> Vec<String> {
        page.items.iter().map(|i| i.article.name.clone()).collect()
    }

    #[test]
    fn pages_walk_a_history_both_ways_with_its_count_and_total() {
        let all: Vec<String> = (0..7).map(|n| format!("a{n}")).collect();
        let index = index_of("ada", &all);
        let mut seen = Vec::new();
        let mut cursor = Cursor::From(0);
        loop {
            let page = index.page("ada", cursor, 3);
            assert_eq!((page.count, page.total), (7, 721));
            seen.extend(names(&page));
            match page.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        assert_eq!(seen, all);
        let first = index.page("ada", Cursor::Before(u64::MAX), 3);
        assert_eq!(names(&first), ["a6", "a5", "a4"]);
        let second = index.page("ada", first.next.expect("more"), 3);
        assert_eq!(names(&second), ["a3", "a2", "a1"]);
        let last = index.page("ada", second.next.expect("more"), 3);
        assert_eq!((names(&last), last.next), (vec!["a0".to_owned()], None));
        let nobody = index.page("bob", Cursor::From(0), 3);
        assert_eq!(
            (nobody.items.len(), nobody.count, nobody.next),
            (0, 0, None)
        );
        // A cursor past the end is an empty last page, not an error.
        assert!(index.page("ada", Cursor::From(99), 3).items.is_empty());
    }

    #[test]
    fn a_page_of_long_names_is_cut_to_fit_one_message() {
        let long: Vec<String> = (0..400)
            .map(|n| format!("{n:04}{}", "x".repeat(2000)))
            .collect();
        let index = index_of("ada", &long);
        let page = index.page("ada", Cursor::From(0), 1000);
        assert!(page.items.len() < 400 && !page.items.is_empty());
        let bytes: usize = page.items.iter().map(|i| reply_bytes(i)).sum();
        assert!(bytes <= MAX_PAGE_BYTES, "{bytes}");
        assert_eq!(page.next, Some(Cursor::From(page.items.len() as u64)));
    }
}
