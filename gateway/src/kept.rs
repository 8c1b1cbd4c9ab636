//! The last long whole histories the gateway sent, by user, so that reading one again
//! costs the bus a question rather than the history: the gateway asks orders with the
//! copy's tag (`if_none_match`), and orders answers `NOT_MODIFIED` while the history is
//! still that one. A copy is sent only when orders has just said so, after its usual
//! catch-up with the stream: a read shows every purchase, as without the copy.

use std::{collections::VecDeque, sync::Mutex};

use bus_schema::orders;
use bytes::Bytes;

/// Replies shorter than this are not kept: they cost the bus about what the question
/// does.
pub const KEPT_FROM: usize = 64 * 1024;
/// Copies kept, at most (a reply is at most `MAX_PAGE_BYTES`, 512 KB: 32 MB in all).
pub const KEPT_AT_MOST: usize = 64;

/// A user's history as last sent, with its [`orders::page_tag`].
#[derive(Debug, Clone)]
pub struct Copy {
    pub tag: String,
    pub reply: Bytes,
}

#[derive(Debug, Default)]
pub struct KeptHistories {
    /// The copy used last first.
    copies: Mutex<VecDeque<(String, Copy)>>,
}

impl KeptHistories {
    /// The copy of `user`'s whole history, if one is kept.
    pub fn get(&self, user: &str) -> Option<Copy> {
        let mut copies = self.copies();
        let at = copies.iter().position(|(u, _)| u == user)?;
        let entry = copies.remove(at)?;
        let copy = entry.1.clone();
        copies.push_front(entry);
        Some(copy)
    }

    /// Keeps `reply`, `user`'s whole history as orders just sent it, when it is long and
    /// whole (a reply with a next page is not the whole history); its tag when kept.
    pub fn keep(&self, user: &str, reply: &Bytes) -> Option<String> {
        if reply.len() < KEPT_FROM || orders::reply_has_next(reply) {
            return None;
        }
        let tag = orders::page_tag(reply);
        let copy = Copy {
            tag: tag.clone(),
            reply: reply.clone(),
        };
        let mut copies = self.copies();
        copies.retain(|(u, _)| u != user);
        copies.push_front((user.to_owned(), copy));
        copies.truncate(KEPT_AT_MOST);
        Some(tag)
    }

    fn copies(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Copy)>> {
        self.copies.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(user: &str, fill: u8) -> Bytes {
        let mut body = format!(r#"{{"user":"{user}","purchases":[""#).into_bytes();
        body.resize(KEPT_FROM, fill);
        body.extend_from_slice(br#""],"items":[],"count":1,"total":1}"#);
        Bytes::from(body)
    }

    #[test]
    fn long_whole_histories_are_kept_the_last_used_first() {
        let kept = KeptHistories::default();
        kept.keep(
            "ada",
            &Bytes::from_static(br#"{"user":"ada","purchases":[]}"#),
        );
        assert!(kept.get("ada").is_none(), "short replies are not kept");
        let mut paged = reply("ada", b'a').to_vec();
        paged.truncate(paged.len() - 1);
        paged.extend_from_slice(br#","next":"f1000"}"#);
        kept.keep("ada", &Bytes::from(paged));
        assert!(
            kept.get("ada").is_none(),
            "a first page is not a whole history"
        );

        kept.keep("ada", &reply("ada", b'a'));
        let copy = kept.get("ada").expect("kept");
        assert_eq!(copy.reply, reply("ada", b'a'));
        assert_eq!(copy.tag, orders::page_tag(&reply("ada", b'a')));
        kept.keep("ada", &reply("ada", b'b'));
        assert_eq!(kept.get("ada").expect("kept").reply, reply("ada", b'b'));

        for n in 0..KEPT_AT_MOST {
            kept.keep(&format!("u{n}"), &reply("u", b'c'));
            if n == 0 {
                assert!(kept.get("ada").is_some());
            }
        }
        // "ada" was used after "u0": "u0" went first.
        assert!(kept.get("ada").is_some());
        assert!(kept.get("u0").is_none());
        assert!(kept.get("u1").is_some());
    }
}
