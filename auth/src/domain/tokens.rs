//! Issuing and checking HS256 JWTs: `sub`, `iat`, `nbf`, `exp`, `jti`, `iss`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::keys::SigningKey;
use crate::error::AuthError;

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;

/// The claims of a token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The normalised username.
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// A random id, so that two tokens are never equal.
    pub jti: String,
    pub iss: String,
}

/// Issues and checks tokens with one key; HS256 is the only algorithm accepted.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
    issuer: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("ttl_secs", &self.ttl_secs)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(key: &SigningKey, ttl_secs: u64, leeway_secs: u64, issuer: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(key.as_bytes()),
            decoding: DecodingKey::from_secret(key.as_bytes()),
            validation,
            ttl_secs,
            issuer: issuer.to_owned(),
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A token for `username`, valid from now for the configured lifetime.
    pub fn issue(&self, username: &str) -> Result<String, AuthError> {
        let now = now_secs();
        let claims = Claims {
            sub: username.to_owned(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            jti: random_id().map_err(AuthError::Issue)?,
            iss: self.issuer.clone(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| AuthError::Issue(err.to_string()))
    }

    /// The username of a valid token; says whether a refused token expired, is not
    /// valid yet, or is invalid for any other reason.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidToken);
        }
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) if !data.claims.sub.is_empty() => Ok(data.claims.sub),
            Ok(_) => Err(AuthError::InvalidToken),
            Err(err) => Err(match err.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::InvalidToken,
            }),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| err.to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
