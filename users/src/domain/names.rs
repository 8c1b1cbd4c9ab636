//! Usernames and passwords that can only be built valid.

use crate::error::UsersError;

/// Longest username; names appear in NATS subjects, so they stay short and plain.
pub const USERNAME_MAX: usize = 32;
/// Shortest password for a new account.
pub const PASSWORD_MIN: usize = 8;
/// Longest password anyone may send: hashing is costly, the input must be bounded.
pub const PASSWORD_MAX: usize = 1024;

/// A normalised username: trimmed, lower-cased, 1 to 32 of `a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, UsersError> {
        let name = bus_schema::users::normalize_username(raw);
        if name.is_empty() {
            return Err(UsersError::Invalid("username is required".into()));
        }
        if name.chars().count() > USERNAME_MAX {
            return Err(UsersError::Invalid(format!(
                "username must be at most {USERNAME_MAX} characters"
            )));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(UsersError::Invalid(
                "username may only contain the letters a-z, digits 0-9, '_' and '-'".into(),
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

/// A password for a new account: 8 to 1024 characters.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: String) -> Result<Self, UsersError> {
        if raw.is_empty() {
            return Err(UsersError::Invalid("password is required".into()));
        }
        let len = raw.chars().count();
        if len < PASSWORD_MIN {
            return Err(UsersError::Invalid(format!(
                "password must be at least {PASSWORD_MIN} characters"
            )));
        }
        if len > PASSWORD_MAX {
            return Err(too_long());
        }
        Ok(Self(raw))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A password to check: anything non-empty up to 1024 characters, since accounts made
/// under older rules (the demo accounts) have shorter ones.
pub struct CandidatePassword(String);

impl CandidatePassword {
    pub fn parse(raw: String) -> Result<Self, UsersError> {
        if raw.is_empty() {
            return Err(UsersError::Invalid("password is required".into()));
        }
        if raw.chars().count() > PASSWORD_MAX {
            return Err(too_long());
        }
        Ok(Self(raw))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Passwords never show in logs or panics.
macro_rules! redacted {
    ($($ty:ident),+) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($ty), "(..)"))
            }
        }
    )+};
}
redacted!(NewPassword, CandidatePassword);

fn too_long() -> UsersError {
    UsersError::Invalid(format!(
        "password must be at most {PASSWORD_MAX} characters"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_trimmed_and_lower_cased() {
        assert_eq!(
            Username::parse("  Victor_1-x ").map(|u| u.0).ok(),
            Some("victor_1-x".into())
        );
    }

    #[test]
    fn usernames_that_break_a_rule_are_refused_with_the_rule() {
        for (raw, rule) in [
            ("", "required"),
            ("   ", "required"),
            (&"a".repeat(33), "at most 32"),
            ("../etc", "may only contain"),
            ("a.b", "may only contain"),
            ("orders.>", "may only contain"),
            ("a*", "may only contain"),
            ("jöhn", "may only contain"),
            ("a b", "may only contain"),
            ("a\0", "may only contain"),
        ] {
            let err = Username::parse(raw)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(rule),
                "{raw:?} gave {err:?}, expected {rule:?}"
            );
        }
    }

    #[test]
    fn a_thirty_two_character_username_is_accepted() {
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn new_passwords_must_be_eight_to_1024_characters() {
        assert!(NewPassword::parse("1234567".into()).is_err());
        assert!(NewPassword::parse("12345678".into()).is_ok());
        assert!(NewPassword::parse("é".repeat(1024)).is_ok());
        assert!(NewPassword::parse("x".repeat(1025)).is_err());
    }

    #[test]
    fn a_short_password_may_still_be_checked() {
        assert!(CandidatePassword::parse("1234".into()).is_ok());
        assert!(CandidatePassword::parse(String::new()).is_err());
        assert!(CandidatePassword::parse("x".repeat(1025)).is_err());
    }
}
