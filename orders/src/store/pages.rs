//! Long history pages lately read, kept as the bytes of their reply, so that a history
//! asked again is not read from the index again until it grows. A page of a thousand
//! purchases costs orders about half a millisecond of CPU to read and write out; sent
//! again it costs a copy of a pointer.
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
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use bus_schema::orders::Cursor;
use bytes::Bytes;

/// Bytes of replies kept, at most.
pub const KEPT_BYTES: usize = 16 * 1024 * 1024;
/// Replies shorter than this are not kept: a page of a few dozen purchases is read from
/// the index about as fast as it is found here, and many of them would fill the cache
/// with keys.
pub const SHORTEST_KEPT: usize = 16 * 1024;

/// Which page of whose history.
type Key = (String, Cursor, usize);

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
    /// A clock of uses, to forget the page used least lately when full.
    clock: u64,
    bytes: usize,
    pages: HashMap<Key, Kept>,
}

#[derive(Debug)]
struct Kept {
    reply: Bytes,
    used: u64,
}

impl Pages {
    /// The kept reply of this page, if any.
    pub fn get(&self, user: &str, cursor: Cursor, limit: usize) -> Option<Bytes> {
        let mut inner = self.inner();
        inner.clock += 1;
        let now = inner.clock;
        let key = (user.to_owned(), cursor, limit);
        let found = inner.pages.get_mut(&key).map(|kept| {
            kept.used = now;
            kept.reply.clone()
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

    /// Keeps `reply`, read from the index since `epoch`, unless a batch was committed
    /// in between or it is short.
    pub fn keep(&self, epoch: u64, user: &str, cursor: Cursor, limit: usize, reply: &Bytes) {
        if reply.len() < SHORTEST_KEPT || reply.len() > KEPT_BYTES / 4 {
            return;
        }
        let mut inner = self.inner();
        if inner.epoch != epoch {
            return;
        }
        inner.clock += 1;
        let used = inner.clock;
        let kept = Kept {
            reply: reply.clone(),
            used,
        };
        if let Some(old) = inner.pages.insert((user.to_owned(), cursor, limit), kept) {
            inner.bytes -= old.reply.len();
        }
        inner.bytes += reply.len();
        while inner.bytes > KEPT_BYTES {
            let Some(oldest) = inner
                .pages
                .iter()
                .min_by_key(|(_, kept)| kept.used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(gone) = inner.pages.remove(&oldest) {
                inner.bytes -= gone.reply.len();
            }
        }
    }

    /// A batch with purchases of `users` was committed: their pages are no longer exact.
    pub fn forget(&self, users: &HashSet<&str>) {
        let mut inner = self.inner();
        inner.epoch += 1;
        let mut freed = 0;
        inner.pages.retain(|(user, _, _), kept| {
            let keep = !users.contains(user.as_str());
            if !keep {
                freed += kept.reply.len();
            }
            keep
        });
        inner.bytes -= freed;
    }

    /// The index was emptied: no page is exact.
    pub fn clear(&self) {
        let mut inner = self.inner();
        inner.epoch += 1;
        inner.pages.clear();
        inner.bytes = 0;
    }

    /// Pages found here and pages read from the index, in the Prometheus text format.
    pub fn metrics(&self) -> String {
        let (found, read) = (
            self.found.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        );
        let (kept, bytes) = {
            let inner = self.inner();
            (inner.pages.len(), inner.bytes)
        };
        format!(
            "# HELP shop_history_pages_total History pages answered, by where they came from \
             (kept: sent again as last read; index: read from the index).\n\
             # TYPE shop_history_pages_total counter\n\
             shop_history_pages_total{{from=\"kept\"}} {found}\n\
             shop_history_pages_total{{from=\"index\"}} {read}\n\
             # HELP shop_history_pages_kept Long history pages kept, and their bytes.\n\
             # TYPE shop_history_pages_kept gauge\n\
             shop_history_pages_kept {kept}\n\
             # HELP shop_history_pages_kept_bytes Bytes of the long history pages kept.\n\
             # TYPE shop_history_pages_kept_bytes gauge\n\
             shop_history_pages_kept_bytes {bytes}\n"
        )
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn a_page_is_found_until_its_user_buys_again() {
        let pages = Pages::default();
        let epoch = pages.epoch();
        pages.keep(epoch, "ada", Cursor::From(0), 1000, &reply(SHORTEST_KEPT));
        assert_eq!(
            pages.get("ada", Cursor::From(0), 1000),
            Some(reply(SHORTEST_KEPT))
        );
        assert_eq!(pages.get("ada", Cursor::From(0), 999), None);
        pages.forget(&HashSet::from(["bob"]));
        assert!(pages.get("ada", Cursor::From(0), 1000).is_some());
        pages.forget(&HashSet::from(["ada"]));
        assert_eq!(pages.get("ada", Cursor::From(0), 1000), None);
        assert!(
            pages
                .metrics()
                .contains("shop_history_pages_total{from=\"kept\"} 2\n")
        );
        assert!(
            pages
                .metrics()
                .contains("shop_history_pages_kept_bytes 0\n")
        );
    }

    #[test]
    fn a_page_read_while_a_batch_was_committed_is_not_kept() {
        let pages = Pages::default();
        let epoch = pages.epoch();
        pages.forget(&HashSet::from(["bob"]));
        pages.keep(epoch, "ada", Cursor::From(0), 1000, &reply(SHORTEST_KEPT));
        assert_eq!(pages.get("ada", Cursor::From(0), 1000), None);
        pages.keep(
            pages.epoch(),
            "ada",
            Cursor::From(0),
            1000,
            &reply(SHORTEST_KEPT),
        );
        pages.clear();
        assert_eq!(pages.get("ada", Cursor::From(0), 1000), None);
    }

    #[test]
    fn short_pages_are_not_kept_and_the_least_used_go_first() {
        let pages = Pages::default();
        pages.keep(pages.epoch(), "ada", Cursor::From(0), 10, &reply(100));
        assert_eq!(pages.get("ada", Cursor::From(0), 10), None);
        let size = KEPT_BYTES / 4;
        for (i, user) in ["a", "b", "c", "d"].into_iter().enumerate() {
            pages.keep(
                pages.epoch(),
                user,
                Cursor::Before(u64::MAX),
                50,
                &reply(size),
            );
            if i == 2 {
                // "a" used last of the three: "b" is the one to go.
                assert!(pages.get("a", Cursor::Before(u64::MAX), 50).is_some());
            }
        }
        pages.keep(
            pages.epoch(),
            "e",
            Cursor::Before(u64::MAX),
            50,
            &reply(size),
        );
        assert!(pages.get("b", Cursor::Before(u64::MAX), 50).is_none());
        for user in ["a", "c", "d", "e"] {
            assert!(
                pages.get(user, Cursor::Before(u64::MAX), 50).is_some(),
                "{user}"
            );
        }
    }
}
