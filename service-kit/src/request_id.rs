//! One request id end to end: the gateway takes `X-Request-Id` or makes one, every bus
//! call carries it in a header, and each service keeps it in a task-local
//! ([`bus_schema::request_id`]) for the duration of the request, so that its log lines
//! and its own bus calls carry it too.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

pub use bus_schema::request_id::{current, scope};

/// Longest request id accepted from outside.
const MAX_LEN: usize = 64;

/// A new id: 32 hex digits, a random prefix drawn once per process and then a counter.
/// Ids must be unique, not secret: one system call per request for fresh randomness
/// was a sixth of the gateway's system calls.
pub fn new_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("BUG: the OS has no randomness");
        u64::from_le_bytes(bytes)
    });
    format!("{prefix:016x}{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An id from outside, if it is a sane one (1 to 64 of `A-Z a-z 0-9 - _ . :`), so that
/// nobody can write odd characters into the logs.
pub fn accept(raw: &str) -> Option<String> {
    let raw = raw.trim();
    (!raw.is_empty()
        && raw.len() <= MAX_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')))
    .then(|| raw.to_owned())
}

/// The id given in `header`, or a new one.
pub fn from_header(header: Option<&str>) -> String {
    header.and_then(accept).unwrap_or_else(new_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_ids_are_replaced() {
        assert_eq!(accept("abc-123"), Some("abc-123".into()));
        assert_eq!(accept("a b"), None);
        assert_eq!(accept("line\nbreak"), None);
        assert_eq!(accept(&"x".repeat(65)), None);
        assert_eq!(from_header(None).len(), 32);
        assert_ne!(new_id(), new_id());
    }
}
