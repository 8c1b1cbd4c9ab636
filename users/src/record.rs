//! The record of one account on the accounts stream (`USERS`): the wire format that the
//! stream holds and every view ([`crate::store`]) applies.

use serde::{Deserialize, Serialize};

/// One account as of one moment: what the stream holds on the account's subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountRecord {
    pub username: String,
    /// argon2id (PHC string), or an imported werkzeug hash until its first login.
    pub password_hash: String,
    /// The id of an imported account; new accounts are numbered by the view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// RFC 3339, UTC.
    pub recorded_at: String,
}

impl AccountRecord {
    pub fn new(username: String, password_hash: String, id: Option<i64>) -> Self {
        Self {
            username,
            password_hash,
            id,
            recorded_at: service_kit::clock::now_rfc3339(),
        }
    }
}
