//! The `auth` service: logins, JWTs (EdDSA) and their public keys, revocation.

use serde::{Deserialize, Serialize};

/// Name of the micro service, as `nats micro ls` shows it.
pub const SERVICE: &str = "auth";

/// The subjects the `auth` service answers.
pub mod subject {
    /// Log in: [`super::LoginRequest`] -> [`super::LoginReply`].
    pub const LOGIN: &str = "auth.login";
    /// Check a token: [`super::VerifyRequest`] -> [`super::VerifyReply`].
    pub const VERIFY: &str = "auth.verify";
    /// Revoke a token (log out): [`super::LogoutRequest`] -> [`super::LogoutReply`].
    pub const LOGOUT: &str = "auth.logout";
    /// Where auth instances share their login attempts per account (auth alone).
    pub const LOGIN_THROTTLE: &str = "auth.throttle.login";
    /// The public keys, one subject per key id, stored in [`super::KEYS_STREAM`].
    pub const KEYS: &str = "auth.keys.>";
    /// Prefix of the key subjects.
    pub const KEYS_PREFIX: &str = "auth.keys";
    /// The revoked token ids, one subject per id, stored in [`super::REVOKED_STREAM`].
    pub const REVOKED: &str = "auth.revoked.>";
    /// Prefix of the revocation subjects.
    pub const REVOKED_PREFIX: &str = "auth.revoked";

    /// The subject of the public key `kid`.
    pub fn key(kid: &str) -> String {
        format!("{KEYS_PREFIX}.{}", crate::users::subject_token(kid))
    }

    /// The subject of the revocation of token id `jti`.
    pub fn revoked(jti: &str) -> String {
        format!("{REVOKED_PREFIX}.{}", crate::users::subject_token(jti))
    }
}

/// The stream of the public keys tokens are signed with ([`PublicKey`] records).
pub const KEYS_STREAM: &str = "AUTH_KEYS";
/// The stream of revoked token ids ([`Revoked`] records), each kept for a token lifetime.
pub const REVOKED_STREAM: &str = "AUTH_REVOKED";
/// The only signing algorithm, as JWT headers and JWKs name it.
pub const ALGORITHM: &str = "EdDSA";
/// The NATS header that carries the token of the user a bus request acts for
/// (`orders.buy`, `orders.purchases`): `Bearer <token>`.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// One public key, as a JWK (RFC 8037: `OKP`, `Ed25519`) with its id and the time after
/// which no valid token can carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicKey {
    /// `OKP`
    pub kty: String,
    /// `Ed25519`
    pub crv: String,
    /// `EdDSA`
    pub alg: String,
    /// `sig`
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// Unix seconds: after this no token signed with the key is valid any more.
    pub valid_until: u64,
}

impl PublicKey {
    /// The JWK of an Ed25519 public key `x` (base64url) named `kid`.
    pub fn ed25519(kid: String, x: String, valid_until: u64) -> Self {
        Self {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            alg: ALGORITHM.to_owned(),
            use_: "sig".to_owned(),
            kid,
            x,
            valid_until,
        }
    }
}

/// The public keys as a JWK Set, at `GET /.well-known/jwks.json` on auth's port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
}

/// A revoked token: its `jti`, refused until its `exp` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revoked {
    pub jti: String,
    pub exp: u64,
}

/// A token to revoke.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogoutRequest {
    #[serde(default)]
    pub token: String,
}

/// The token is revoked on every verifier within a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogoutReply {
    pub revoked: bool,
}

/// A login attempt.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

/// A token for the account that logged in.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginReply {
    /// The JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// The normalised username the token is for.
    pub username: String,
}

/// A token to check.
#[derive(Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyRequest {
    #[serde(default)]
    pub token: String,
}

/// The identity a valid token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifyReply {
    pub username: String,
    /// Always `true`: an invalid token is a 401 error, not a reply.
    pub valid: bool,
}

redacted_debug!(LoginRequest, LoginReply, VerifyRequest, LogoutRequest);

typed_call!(
    /// `auth.login`: 401 for a wrong password or an unknown user alike.
    login, login_with: subject::LOGIN, LoginRequest => LoginReply
);
typed_call!(
    /// `auth.verify`: 401 for an invalid or expired token.
    verify, verify_with: subject::VERIFY, VerifyRequest => VerifyReply
);
typed_call!(
    /// `auth.logout`: revokes the token; 401 for an invalid or expired one.
    logout, logout_with: subject::LOGOUT, LogoutRequest => LogoutReply
);
