//! The `users` service: accounts and password checks.

use serde::{Deserialize, Serialize};

use crate::{Invalid, Reason};

/// Name of the micro service, as `nats micro ls` shows it.
pub const SERVICE: &str = "users";

/// A username as every part of the shop compares it: trimmed and lower-cased, as in the
/// original.
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// Longest username; names appear in NATS subjects, so they stay short and plain.
pub const USERNAME_MAX: usize = 32;

/// A normalised username that follows the naming rules: 1 to 32 of `a-z 0-9 _ -`, so
/// that it is always a single, literal NATS subject token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Normalises `raw` and checks the rules; the error names the rule that is broken.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = normalize_username(raw);
        if name.is_empty() {
            return Err(Invalid::new(
                Reason::UsernameRequired,
                "username is required",
            ));
        }
        if name.chars().count() > USERNAME_MAX {
            return Err(Invalid::limit(
                Reason::UsernameTooLong,
                USERNAME_MAX,
                format!("username must be at most {USERNAME_MAX} characters"),
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(Invalid::new(
                Reason::UsernameInvalid,
                "username may only contain the letters a-z, digits 0-9, '_' and '-'",
            ));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The subjects the `users` service answers.
pub mod subject {
    /// Create an account: [`super::CreateRequest`] -> [`super::CreateReply`].
    pub const CREATE: &str = "users.create";
    /// Check a password: [`super::VerifyRequest`] -> [`super::VerifyReply`].
    pub const VERIFY: &str = "users.verify";
    /// Look up an account: [`super::GetRequest`] -> [`super::GetReply`].
    pub const GET: &str = "users.get";
    /// Where users instances share their password checks per account (users alone).
    pub const VERIFY_THROTTLE: &str = "users.throttle.verify";
    /// Every event of the service.
    pub const EVENTS: &str = "users.events.>";
    /// Prefix of the sign-up events; the username follows.
    pub const CREATED_PREFIX: &str = "users.events.created";

    /// The subject of `username`'s sign-up event.
    pub fn created(username: &str) -> String {
        format!("{CREATED_PREFIX}.{username}")
    }

    /// The accounts in [`super::ACCOUNTS_STREAM`], one subject per account. They carry
    /// password hashes: only the users service may publish, subscribe or read them.
    pub const ACCOUNTS: &str = "users.accounts.>";
    /// Prefix of the account subjects.
    pub const ACCOUNTS_PREFIX: &str = "users.accounts";

    /// The subject of `username`'s account records.
    pub fn account(username: &str) -> String {
        format!("{ACCOUNTS_PREFIX}.{}", super::subject_token(username))
    }
}

/// The JetStream stream that keeps the latest sign-up events (public, no hash), so that
/// the activity page can show the recent ones when it opens.
pub const EVENTS_STREAM: &str = "USER_EVENTS";

/// The JetStream stream that holds every account (the truth each users instance's
/// `users.db` is a view of).
pub const ACCOUNTS_STREAM: &str = "USERS";

/// A name as one NATS subject token: itself when it is made of `A-Z a-z 0-9 _ -` (every
/// name today's rules allow), else `~` and the hex of its UTF-8 bytes (names that older
/// versions and the Flask original let in). The two forms never meet: `~` is not in
/// the first.
pub fn subject_token(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        name.to_owned()
    } else {
        let mut token = String::with_capacity(1 + 2 * name.len());
        token.push('~');
        for byte in name.bytes() {
            token.push_str(&format!("{byte:02x}"));
        }
        token
    }
}

/// A new account, published (core NATS, not stored) on `users.events.created.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedEvent {
    pub username: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A new account. Missing fields decode as empty and are refused by the service with a
/// message that names the field.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateRequest {
    /// Trimmed and lower-cased by the service; 1 to 32 of `a-z 0-9 _ -`.
    #[serde(default)]
    pub username: String,
    /// 8 to 1024 characters.
    #[serde(default)]
    pub password: String,
}

/// The account that was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateReply {
    /// The normalised username.
    pub username: String,
}

/// A password to check.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyRequest {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// Whether the password is right. An unknown user is simply `false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyReply {
    pub valid: bool,
}

/// An account to look up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GetRequest {
    #[serde(default)]
    pub username: String,
}

/// A public view of an account: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_one_subject_token_and_no_two_names_share_one() {
        assert_eq!(subject::account("victor_1-x"), "users.accounts.victor_1-x");
        assert_eq!(
            subject::account("jean pierre"),
            "users.accounts.~6a65616e20706965727265"
        );
        assert_eq!(subject_token("a.b"), "~612e62");
        assert_eq!(subject_token(""), "~");
        for name in ["élodie", "a.b", "*", ">", "~", "x y", "", "~61"] {
            let token = subject_token(name);
            assert!(token.starts_with('~'), "{name}");
            assert!(
                !token.contains(['.', '*', '>', ' ']),
                "{name} gives the token {token}"
            );
        }
        assert_ne!(subject_token("~61"), subject_token("a"));
    }

    #[test]
    fn a_username_is_trimmed_and_lower_cased() {
        assert_eq!(
            Username::parse("  Victor_1-x ").map(Username::into_string),
            Ok("victor_1-x".to_owned())
        );
    }

    #[test]
    fn usernames_that_break_a_rule_are_refused_with_the_rule() {
        use Reason::*;
        for (raw, reason) in [
            ("", UsernameRequired),
            ("   ", UsernameRequired),
            (&"a".repeat(33), UsernameTooLong),
            ("../etc", UsernameInvalid),
            ("a.b", UsernameInvalid),
            ("orders.>", UsernameInvalid),
            ("a*", UsernameInvalid),
            ("jöhn", UsernameInvalid),
            ("a b", UsernameInvalid),
            ("a\0", UsernameInvalid),
        ] {
            let err = Username::parse(raw).expect_err(raw);
            assert_eq!(err.reason, reason, "{raw:?} gave {err:?}");
            assert!(!err.message.is_empty());
        }
        let long = Username::parse(&"a".repeat(33)).expect_err("too long");
        assert_eq!(long.limit, Some(32));
    }

    #[test]
    fn a_thirty_two_character_username_is_accepted() {
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }
}
