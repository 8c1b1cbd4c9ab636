//! The rules of the users service, with no transport and no storage in sight: usernames
//! and passwords that can only be built valid.

pub use bus_schema::users::Username;

use bus_schema::{Invalid, Reason};

use crate::error::UsersError;

/// Shortest password for a new account.
pub const PASSWORD_MIN: usize = 8;
/// Longest password anyone may send: hashing is costly, the input must be bounded.
pub const PASSWORD_MAX: usize = 1024;

/// A normalised username that follows the naming rules (the rule is the contract's).
pub fn username(raw: &str) -> Result<Username, UsersError> {
    Ok(Username::parse(raw)?)
}

/// A password for a new account: 8 to 1024 characters.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: String) -> Result<Self, UsersError> {
        if raw.is_empty() {
            return Err(required());
        }
        let len = raw.chars().count();
        if len < PASSWORD_MIN {
            return Err(Invalid::limit(
                Reason::PasswordTooShort,
                PASSWORD_MIN,
                format!("password must be at least {PASSWORD_MIN} characters"),
            )
            .into());
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
            return Err(required());
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

fn required() -> UsersError {
    Invalid::new(Reason::PasswordRequired, "password is required").into()
}

fn too_long() -> UsersError {
    Invalid::limit(
        Reason::PasswordTooLong,
        PASSWORD_MAX,
        format!("password must be at most {PASSWORD_MAX} characters"),
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
