//! This instance's files: `purchases.json` ([`journal`]) and the conversion of the Flask
//! original's file ([`flask`]).

pub mod flask;
pub mod journal;
