//! The live activity feeds open now, counted per client address, so that nobody can
//! hold every connection (and a NATS subscription each) open.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use bus_schema::{ErrorCode, ErrorReply};

/// Live feeds open at once, in all.
pub const MAX_FEEDS: usize = 256;
/// Live feeds open at once from one client address (a few browser tabs).
pub const MAX_FEEDS_PER_ADDRESS: usize = 4;

/// The feeds open now, by client address.
#[derive(Debug, Default)]
pub struct Feeds {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Feeds {
    /// A place for one more feed from `address`, or the refusal to answer.
    pub fn open(self: &Arc<Self>, address: IpAddr) -> Result<FeedSlot, ErrorReply> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.values().sum::<usize>() >= MAX_FEEDS {
            return Err(ErrorReply::new(
                ErrorCode::Unavailable,
                "the activity feed is full; try again later",
            ));
        }
        let mine = open.entry(address).or_default();
        if *mine >= MAX_FEEDS_PER_ADDRESS {
            return Err(ErrorReply::too_many(
                format!("at most {MAX_FEEDS_PER_ADDRESS} activity feeds from one address"),
                15,
            ));
        }
        *mine += 1;
        Ok(FeedSlot {
            feeds: Arc::clone(self),
            address,
        })
    }
}

/// One open feed; its place is given back when the feed ends.
#[derive(Debug)]
pub struct FeedSlot {
    feeds: Arc<Feeds>,
    address: IpAddr,
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let mut open = self.feeds.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}
