//! Places for work in flight, per key (a client address) and in all: [`Slots`] refuses a
//! caller that finds none at once (live feeds); [`Queues`] lets it wait a little behind
//! its own key only, never behind another's (logins: a flood from one address waits for
//! its own hashes, and its connections wait idle instead of hammering the door).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// At most `per_key` places held by one key, and `total` in all.
#[derive(Debug)]
pub struct Slots {
    per_key: usize,
    total: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// Why no place was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The key holds all it may.
    Key,
    /// Every place is taken.
    All,
}

impl Slots {
    pub fn new(per_key: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_key: per_key.max(1),
            total: total.max(1),
            held: Mutex::default(),
        })
    }

    /// A place for `key`, given back when the [`Slot`] is dropped.
    pub fn take(self: &Arc<Self>, key: &str) -> Result<Slot, Full> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.values().sum::<usize>() >= self.total {
            return Err(Full::All);
        }
        let mine = held.entry(key.to_owned()).or_default();
        if *mine >= self.per_key {
            return Err(Full::Key);
        }
        *mine += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            key: key.to_owned(),
        })
    }
}

/// One place held.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// At most `per_key` callers of one key at work; more wait for a place of their own key
/// up to a limit, then are refused.
#[derive(Debug)]
pub struct Queues {
    per_key: usize,
    waits: std::time::Duration,
    keys: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// A place of one key at work; given back when dropped.
#[derive(Debug)]
pub struct Turn {
    queues: Arc<Queues>,
    key: String,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Queues {
    pub fn new(per_key: usize, waits: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            per_key: per_key.max(1),
            waits,
            keys: Mutex::default(),
        })
    }

    /// A place for `key`, waiting at most the queue's limit for one; `None` when none
    /// came in time.
    pub async fn turn(self: &Arc<Self>, key: &str) -> Option<Turn> {
        let semaphore = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                keys.entry(key.to_owned())
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_key))),
            )
        };
        let permit = tokio::time::timeout(self.waits, semaphore.acquire_owned()).await;
        let turn = Turn {
            queues: Arc::clone(self),
            key: key.to_owned(),
            permit: permit.ok().and_then(Result::ok),
        };
        // Dropped at once when it has no permit: the key is forgotten if idle.
        turn.permit.is_some().then_some(turn)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut keys = self.queues.keys.lock().unwrap_or_else(|p| p.into_inner());
        // Nobody holds or waits for this key's places: forget it, so that made-up keys
        // cannot fill memory.
        if keys.get(&self.key).is_some_and(|s| {
            Arc::strong_count(s) == 1 && s.available_permits() == self.queues.per_key
        }) {
            keys.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_waits_behind_itself_only_and_is_refused_after_the_limit() {
        let queues = Queues::new(1, std::time::Duration::from_millis(50));
        let first = queues.turn("a").await.expect("free");
        assert!(
            queues.turn("b").await.is_some(),
            "another key does not wait"
        );
        assert!(queues.turn("a").await.is_none(), "refused after waiting");
        drop(first);
        assert!(queues.turn("a").await.is_some(), "the place came back");
        assert!(
            queues.keys.lock().expect("lock").is_empty(),
            "idle keys are forgotten"
        );
    }

    #[test]
    fn a_key_holds_its_share_and_places_come_back() {
        let slots = Slots::new(2, 3);
        let a1 = slots.take("a").expect("free");
        let _a2 = slots.take("a").expect("free");
        assert_eq!(slots.take("a").err(), Some(Full::Key));
        let _b = slots.take("b").expect("another key has its own share");
        assert_eq!(slots.take("c").err(), Some(Full::All));
        drop(a1);
        assert!(slots.take("a").is_ok(), "a place came back");
    }
}
