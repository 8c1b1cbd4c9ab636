//! History pages lately read, kept as the bytes of their reply with its tag, so that a
//! history asked again is not read from the index (nor its tag computed) again until it
//! grows. A page of a thousand
//! purchases costs orders about half a millisecond of CPU to read and write out, a page
//! of twenty the hop to a reader thread and back; sent again either costs a lookup.
//!
//! A page is exact until its user buys again: histories only grow, and a user's pages
//! are forgotten when the index takes a batch with a purchase of theirs
//! ([`Pages::forget`], after that batch is committed and before the appender's cursor
//! moves past it). A page read from the index is kept only if no batch was committed
//! while it was read ([`Pages::epoch`]): a read that began before a batch may hold the
//! index as it was.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use bus_schema::orders::Cursor;
use bytes::Bytes;

/// Bytes kept, at most: the replies, and [`OVERHEAD`] for each.
pub const KEPT_BYTES: usize = 16 * 1024 * 1024;
/// What a kept page costs besides its reply and its user's name (the maps' entries).
const OVERHEAD: usize = 96;
/// When full, the pages used least lately are forgotten until this much is left: a sort
/// of every page now and then rather than a search for the oldest at every page kept.
const FULL_LEFT: usize = KEPT_BYTES / 4 * 3;

/// Which page of a user's history.
type Which = (Cursor, usize);

/// A reply of `orders.purchases` (its JSON bytes) and its
/// [`page_tag`](bus_schema::orders::page_tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub reply: Bytes,
    pub tag: Arc<str>,
}

impl Page {
    /// `reply` with its tag (a pass over its bytes: made where the page is read).
    pub fn of(reply: Bytes) -> Self {
        let tag = bus_schema::orders::page_tag(&reply).into();
        Self { reply, tag }
    }
}

#[derive(Debug, Default)]
pub struct Pages {
    inner: Mutex<Inner>,
    found: AtomicU64,
    read: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Batches committed (and clears) so far.
    epoch: u64,
    /// A clock of uses, to forget the pages used least lately when full.
    clock: u64,
    bytes: usize,
    pages: usize,
    by_user: HashMap<String, HashMap<Which, Kept>>,
}

#[derive(Debug)]
struct Kept {
    page: Page,
    used: u64,
}

fn cost(user: &str, page: &Page) -> usize {
    page.reply.len() + page.tag.len() + user.len() + OVERHEAD
}

impl Pages {
    /// The kept reply of this page, if any.
    pub fn get(&self, user: &str, cursor: Cursor, limit: usize) -> Option<Page> {
        let mut inner = self.inner();
        inner.clock += 1;
        let now = inner.clock;
        let found = inner
            .by_user
            .get_mut(user)
            .and_then(|pages| pages.get_mut(&(cursor, limit)))
            .map(|kept| {
                kept.used = now;
                kept.page.clone()
            });
        drop(inner);
        let counter = if found.is_some() {
            &self.found
        } else {
            &self.read
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Where the index stands: take it before a read, give it to [`Self::keep`].
    pub fn epoch(&self) -> u64 {
        self.inner().epoch
    }

    /// Keeps `page`, read from the index since `epoch`, unless a batch was committed
    /// in between.
    pub fn keep(&self, epoch: u64, user: &str, cursor: Cursor, limit: usize, page: &Page) {
        let added = cost(user, page);
        if added > KEPT_BYTES - FULL_LEFT {
            return;
        }
        let mut inner = self.inner();
        if inner.epoch != epoch {
            return;
        }
        inner.clock += 1;
        let kept = Kept {
            page: page.clone(),
            used: inner.clock,
        };
        let replaced = match inner.by_user.get_mut(user) {
            Some(pages) => pages.insert((cursor, limit), kept),
            None => {
                let pages = HashMap::from([((cursor, limit), kept)]);
                inner.by_user.insert(user.to_owned(), pages);
                None
            }
        };
        match replaced {
            Some(old) => inner.bytes -= cost(user, &old.page),
            None => inner.pages += 1,
        }
        inner.bytes += added;
        if inner.bytes > KEPT_BYTES {
            inner.forget_least_used();
        }
    }

    /// A batch with purchases of `users` was committed: their pages are no longer exact.
    pub fn forget(&self, users: &HashSet<&str>) {
        let mut inner = self.inner();
        inner.epoch += 1;
        for user in users {
            if let Some(pages) = inner.by_user.remove(*user) {
                inner.pages -= pages.len();
                inner.bytes -= pages
                    .values()
                    .map(|kept| cost(user, &kept.page))
                    .sum::<usize>();
            }
        }
    }

    /// The index was emptied: no page is exact.
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.epoch += 1;
        inner.by_user.clear();
        inner.bytes = 0;
        inner.pages = 0;
    }

    /// Pages found here and pages read from the index, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let (found, read) = (
            self.found.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        );
        let (kept, bytes) = {
            let inner = self.inner();
            (inner.pages, inner.bytes)
        };
        format!(
            "# HELP shop_history_pages_total History pages answered, by where they came from \
             (kept: sent again as last read; index: read from the index).\n\
             # TYPE shop_history_pages_total counter\n\
             shop_history_pages_total{{from=\"kept\"}} {found}\n\
             shop_history_pages_total{{from=\"index\"}} {read}\n\
             # HELP shop_history_pages_kept History pages kept.\n\
             # TYPE shop_history_pages_kept gauge\n\
             shop_history_pages_kept {kept}\n\
             # HELP shop_history_pages_kept_bytes Bytes of the history pages kept.\n\
             # TYPE shop_history_pages_kept_bytes gauge\n\
             shop_history_pages_kept_bytes {bytes}\n"
        )
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Forgets the pages used least lately until [`FULL_LEFT`] bytes are left.
    fn forget_least_used(&mut self) {
        let mut all: Vec<(u64, String, Which)> = self
            .by_user
            .iter()
            .flat_map(|(user, pages)| {
                pages
                    .iter()
                    .map(|(page, kept)| (kept.used, user.clone(), *page))
            })
            .collect();
        all.sort_unstable_by_key(|(used, _, _)| *used);
        for (_, user, page) in all {
            if self.bytes <= FULL_LEFT {
                break;
            }
            let Some(pages) = self.by_user.get_mut(&user) else {
                continue;
            };
            if let Some(gone) = pages.remove(&page) {
                self.bytes -= cost(&user, &gone.page);
                self.pages -= 1;
            }
            if pages.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(len: usize) -> Page {
        Page::of(Bytes::from(vec![b'x'; len]))
    }

    #[test]
    fn a_page_is_found_until_its_user_buys_again() {
        let pages = Pages::default();
        let epoch = pages.epoch();
        pages.keep(epoch, "ada", Cursor::From(0), 1000, &reply(100));
        pages.keep(epoch, "ada", Cursor::From(0), 20, &reply(30));
        assert_eq!(pages.get("ada", Cursor::From(0), 1000), Some(reply(100)));
        assert_eq!(pages.get("ada", Cursor::From(0), 999), None);
        pages.forget(&HashSet::from(["bob"]));
        assert!(pages.get("ada", Cursor::From(0), 1000).is_some());
        pages.forget(&HashSet::from(["ada"]));
        assert_eq!(pages.get("ada", Cursor::From(0), 1000), None);
        assert_eq!(pages.get("ada", Cursor::From(0), 20), None);
        let metrics = pages.metrics();
        assert!(metrics.contains("shop_history_pages_total{from=\"kept\"} 2\n"));
        assert!(metrics.contains("shop_history_pages_total{from=\"index\"} 3\n"));
        assert!(metrics.contains("shop_history_pages_kept 0\n"));
        assert!(metrics.contains("shop_history_pages_kept_bytes 0\n"));
    }

    #[test]
    fn a_page_read_while_a_batch_was_committed_is_not_kept() {
        let pages = Pages::default();
        let epoch = pages.epoch();
        pages.forget(&HashSet::from(["bob"]));
        pages.keep(epoch, "ada", Cursor::From(0), 1000, &reply(100));
        assert_eq!(pages.get("ada", Cursor::From(0), 1000), None);
        pages.keep(pages.epoch(), "ada", Cursor::From(0), 1000, &reply(100));
        pages.clear();
        assert_eq!(pages.get("ada", Cursor::From(0), 1000), None);
        assert!(pages.metrics().contains("shop_history_pages_kept 0\n"));
    }

    #[test]
    fn when_full_the_pages_used_least_lately_go_first() {
        let pages = Pages::default();
        // Ten pages fill it; the first three used again, so the next four go (until a
        // quarter is free).
        let whole = KEPT_BYTES / 10 - OVERHEAD - 1;
        let size = whole - reply(whole).tag.len();
        for user in 0..10 {
            pages.keep(
                pages.epoch(),
                &user.to_string(),
                Cursor::From(0),
                50,
                &reply(size),
            );
        }
        for user in 0..3 {
            assert!(pages.get(&user.to_string(), Cursor::From(0), 50).is_some());
        }
        pages.keep(pages.epoch(), "10", Cursor::From(0), 50, &reply(size));
        let kept: Vec<u32> = (0..=10)
            .filter(|user| pages.get(&user.to_string(), Cursor::From(0), 50).is_some())
            .collect();
        assert_eq!(kept, [0, 1, 2, 7, 8, 9, 10]);
        assert!(pages.metrics().contains("shop_history_pages_kept 7\n"));
        // A reply larger than what a full cache leaves is never kept.
        pages.keep(
            pages.epoch(),
            "big",
            Cursor::From(0),
            50,
            &reply(KEPT_BYTES / 3),
        );
        assert_eq!(pages.get("big", Cursor::From(0), 50), None);
    }
}
