//! Issuing EdDSA JWTs (`sub`, `iat`, `nbf`, `exp`, `jti`, `iss`, and the `kid` of the key
//! in the header). Checking them is [`service_kit::tokens::Verifier`]'s, here as in the
//! gateway and orders.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Header};
use service_kit::tokens::Claims;

use super::keys::{KeyRing, now_secs};
use crate::error::AuthError;

/// Issues tokens with this instance's current key.
#[derive(Debug)]
pub struct Tokens {
    keys: Arc<KeyRing>,
    ttl_secs: u64,
    issuer: String,
}

impl Tokens {
    pub fn new(keys: Arc<KeyRing>, ttl_secs: u64, issuer: &str) -> Self {
        Self {
            keys,
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
            jti: service_kit::random::hex(16),
            iss: self.issuer.clone(),
        };
        let signer = self.keys.current();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, &claims, &signer.encoding)
            .map_err(|err| AuthError::Issue(err.to_string()))
    }
}
