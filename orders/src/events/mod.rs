//! The purchase events: the `ORDERS` stream ([`stream`]) and the appender that follows
//! it into this instance's `purchases.json` ([`appender`]).

pub mod appender;
pub mod stream;
