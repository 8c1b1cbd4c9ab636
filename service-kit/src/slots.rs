//! Places for work in flight, per key (a client address) and in all: a caller that
//! finds none is refused at once instead of queueing behind a flood.

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

#[cfg(test)]
mod tests {
    use super::*;

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
