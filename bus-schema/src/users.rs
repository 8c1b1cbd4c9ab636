//! The `users` service: accounts and password checks.

use serde::{Deserialize, Serialize};

/// Name of the micro service, as `nats micro ls` shows it.
pub const SERVICE: &str = "users";

/// A username as every part of the shop compares it: trimmed and lower-cased, as in the
/// original. The users service also checks it against the naming rules.
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// The subjects the `users` service answers.
pub mod subject {
    /// Create an account: [`super::CreateRequest`] -> [`super::CreateReply`].
    pub const CREATE: &str = "users.create";
    /// Check a password: [`super::VerifyRequest`] -> [`super::VerifyReply`].
    pub const VERIFY: &str = "users.verify";
    /// Look up an account: [`super::GetRequest`] -> [`super::GetReply`].
    pub const GET: &str = "users.get";
}

/// A new account. Missing fields decode as empty and are refused by the service with a
/// message that names the field.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct CreateRequest {
    /// Trimmed and lower-cased by the service; 1 to 32 of `a-z 0-9 _ -`.
    #[serde(default)]
    pub username: String,
    /// 8 to 1024 characters.
    #[serde(default)]
    pub password: String,
}

/// The account that was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateReply {
    /// The normalised username.
    pub username: String,
}

/// A password to check.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct VerifyRequest {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// Whether the password is right. An unknown user is simply `false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReply {
    pub valid: bool,
}

/// An account to look up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GetRequest {
    #[serde(default)]
    pub username: String,
}

/// A public view of an account: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReply {
    /// The row id in `users.db`.
    pub id: i64,
    pub username: String,
}

redacted_debug!(CreateRequest, VerifyRequest);

typed_call!(
    /// `users.create`: 201-like success, 400 for a broken rule, 409 for a taken name.
    create, create_with: subject::CREATE, CreateRequest => CreateReply
);
typed_call!(
    /// `users.verify`: `{valid}`; 400 for a malformed request.
    verify, verify_with: subject::VERIFY, VerifyRequest => VerifyReply
);
typed_call!(
    /// `users.get`: the public view of an account; 404 when there is none.
    get, get_with: subject::GET, GetRequest => GetReply
);
