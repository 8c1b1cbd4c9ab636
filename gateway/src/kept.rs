//! The whole histories the gateway sent, by user, so that reading one again costs less
//! than reading it. A copy is sent again only when the source of truth has just said it
//! is whole, in one of two ways ([`crate::reads`]):
//!
//! - the stream says so, and orders is not asked at all: its end is still the one the
//!   copy was read at (nothing was appended since), or, on a stream of one replica, the
//!   user's newest event (a direct get, answered by nats-server alone) is still the
//!   copy's;
//! - otherwise the gateway asks orders with the copy's tag (`if_none_match`), and orders
//!   answers `NOT_MODIFIED` after its usual catch-up with the stream while the history
//!   is still that one: a question of a few dozen bytes instead of the history.

use std::{collections::HashMap, sync::Mutex};

use bus_schema::orders;
use bytes::Bytes;
use service_kit::stream_tail::{End, Newest};

/// What the copies may hold in all, replies and names.
pub const KEPT_BYTES: usize = 32 * 1024 * 1024;
/// What a copy costs besides its reply and its user's name (the entry, the tag).
const OVERHEAD: usize = 128;

/// A user's whole history as last sent, with its [`orders::page_tag`].
#[derive(Debug, Clone)]
pub struct Copy {
    pub tag: String,
    pub reply: Bytes,
    /// The user's newest event in the stream when the copy was read (the reply holds it
    /// and everything before it); `None` when it is not known.
    pub newest: Option<Newest>,
    /// An end of the stream the reply holds every event of the user's up to.
    pub stream_end: Option<End>,
}

impl Copy {
    /// A copy of `reply`, with its tag.
    pub fn of(reply: Bytes, newest: Option<Newest>, stream_end: Option<End>) -> Self {
        Self {
            tag: orders::page_tag(&reply),
            reply,
            newest,
            stream_end,
        }
    }
}

#[derive(Debug, Default)]
pub struct KeptHistories {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each copy, and when it was last used.
    copies: HashMap<String, (Copy, u64)>,
    bytes: usize,
    clock: u64,
}

fn cost(user: &str, copy: &Copy) -> usize {
    user.len() + copy.reply.len() + OVERHEAD
}

impl KeptHistories {
    /// The copy of `user`'s whole history, if one is kept.
    pub fn get(&self, user: &str) -> Option<Copy> {
        let mut inner = self.inner();
        inner.clock += 1;
        let now = inner.clock;
        let (copy, used) = inner.copies.get_mut(user)?;
        *used = now;
        Some(copy.clone())
    }

    /// Keeps `copy` of `user`'s history, when it is whole (a reply with a next page is
    /// not); whether it was kept. When the copies are over [`KEPT_BYTES`], those used
    /// least lately go until a quarter is free.
    pub fn keep(&self, user: &str, copy: Copy) -> bool {
        if orders::reply_has_next(&copy.reply) {
            return false;
        }
        let mut inner = self.inner();
        inner.clock += 1;
        let now = inner.clock;
        inner.bytes += cost(user, &copy);
        if let Some((old, _)) = inner.copies.insert(user.to_owned(), (copy, now)) {
            inner.bytes -= cost(user, &old);
        }
        if inner.bytes > KEPT_BYTES {
            inner.evict(KEPT_BYTES / 4 * 3);
        }
        true
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Drops the copies used least lately until they hold at most `bytes`.
    fn evict(&mut self, bytes: usize) {
        let mut by_use: Vec<(u64, String)> = self
            .copies
            .iter()
            .map(|(user, (_, used))| (*used, user.clone()))
            .collect();
        by_use.sort_unstable();
        for (_, user) in by_use {
            if self.bytes <= bytes {
                break;
            }
            if let Some((copy, _)) = self.copies.remove(&user) {
                self.bytes -= cost(&user, &copy);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(user: &str, len: usize, fill: u8) -> Bytes {
        let mut body = format!(r#"{{"user":"{user}","purchases":[""#).into_bytes();
        body.resize(len, fill);
        body.extend_from_slice(br#""],"items":[],"count":1,"total":1}"#);
        Bytes::from(body)
    }

    #[test]
    fn whole_histories_are_kept_with_their_tag_newest_event_and_stream_end() {
        let kept = KeptHistories::default();
        let mut paged = reply("ada", 100, b'a').to_vec();
        paged.truncate(paged.len() - 1);
        paged.extend_from_slice(br#","next":"f1000"}"#);
        assert!(!kept.keep("ada", Copy::of(Bytes::from(paged), None, None)));
        assert!(
            kept.get("ada").is_none(),
            "a first page is not a whole history"
        );

        let short = Bytes::from_static(br#"{"user":"ada","purchases":[]}"#);
        let newest = Newest::Message {
            seq: 7,
            stored_at: "t".into(),
        };
        let end = End {
            seq: 9,
            stored_at: "t2".into(),
        };
        assert!(kept.keep(
            "ada",
            Copy::of(short.clone(), Some(newest.clone()), Some(end.clone()))
        ));
        let copy = kept.get("ada").expect("kept");
        assert_eq!(copy.tag, orders::page_tag(&short));
        assert_eq!(
            (copy.reply, copy.newest, copy.stream_end),
            (short.clone(), Some(newest), Some(end))
        );
        // Kept again (orders said it is the same): as given.
        let again = Copy {
            tag: "given".into(),
            reply: short,
            newest: None,
            stream_end: None,
        };
        kept.keep("ada", again);
        let copy = kept.get("ada").expect("kept");
        assert_eq!((copy.tag.as_str(), copy.newest), ("given", None));
    }

    #[test]
    fn when_full_the_copies_used_least_lately_go() {
        let kept = KeptHistories::default();
        let size = KEPT_BYTES / 10;
        for n in 0..9 {
            kept.keep(
                &format!("u{n}"),
                Copy::of(reply("u", size, b'c'), None, None),
            );
        }
        assert!(kept.get("u0").is_some(), "nine fit");
        // "u0" was used after the others: the tenth and eleventh push out u1, u2, u3.
        kept.keep("u9", Copy::of(reply("u", size, b'c'), None, None));
        kept.keep("u10", Copy::of(reply("u", size, b'c'), None, None));
        for gone in ["u1", "u2", "u3"] {
            assert!(kept.get(gone).is_none(), "{gone}");
        }
        for here in ["u0", "u4", "u8", "u9", "u10"] {
            assert!(kept.get(here).is_some(), "{here}");
        }
        assert!(kept.inner().bytes <= KEPT_BYTES);
    }
}
