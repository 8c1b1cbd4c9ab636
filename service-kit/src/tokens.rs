//! Checking tokens where they are used: the EdDSA public keys and the revoked token ids
//! come from auth's streams (`AUTH_KEYS`, `AUTH_REVOKED`) and are kept in memory, so a
//! request costs no bus call, and a verifier that starts while no auth instance runs
//! still has every key.
//!
//! Each stream is followed twice over: its subject live (a new key or a logout is known
//! at once) and the stream itself once a second and on demand, message by message from
//! where the last pass stopped (so a message missed while disconnected is read within a
//! second, and everything is read again after a restart). Only reads are needed
//! (`STREAM.INFO`, `STREAM.MSG.GET`): no consumer, whose deliver subject could be aimed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use bus_schema::{
    ErrorCode, ErrorReply, Reason,
    auth::{KEYS_STREAM, PublicKey, REVOKED_STREAM, Revoked, subject},
};
use futures_util::StreamExt;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// How often each stream is read again, at most a second behind.
const PASS_EVERY: Duration = Duration::from_secs(1);
/// An unknown key id makes the keys be read again at most this often.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// How long a verification waits for that reading.
const REFRESH_WAIT: Duration = Duration::from_secs(2);
/// How long one question of a pass waits for JetStream: a stream without a leader yet
/// (just made on a cluster, or electing one) answers nothing, and the next pass should
/// come a second later rather than after async-nats' default 5 s.
const PASS_TIMEOUT: Duration = Duration::from_secs(1);
/// Verified tokens remembered (their signature is not checked again), before the
/// memory is emptied.
const CACHE_MAX: usize = 50_000;

/// Who issues tokens and how much clock difference is tolerated: the same settings for
/// auth and every verifier.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenSettings {
    /// The `iss` claim of tokens, the only one accepted.
    #[arg(
        long = "token-issuer",
        env = "AUTH_ISSUER",
        default_value = "shop-auth"
    )]
    pub issuer: String,
    /// Clock difference tolerated when checking `exp` and `nbf`, in seconds.
    #[arg(
        long = "token-leeway-secs",
        env = "AUTH_CLOCK_LEEWAY_SECS",
        default_value_t = 5
    )]
    pub leeway_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "shop-auth".to_owned(),
            leeway_secs: 5,
        }
    }
}

/// The claims of a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The normalised username.
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    /// A random id: what a logout revokes.
    pub jti: String,
    pub iss: String,
}

/// Why a token is refused (or cannot be checked now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("a token is required: send Authorization: Bearer <token> (POST /auth/login gives one)")]
    Required,
    #[error("the token has expired; log in again")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was revoked (logged out); log in again")]
    Revoked,
    #[error("the token is invalid")]
    Invalid,
    #[error("the token keys are not loaded yet; try again in a moment")]
    Unavailable,
}

impl TokenError {
    /// The error reply: 401 with the reason, or 503 while the keys are not known yet.
    pub fn reply(self) -> ErrorReply {
        let reason = match self {
            Self::Required => Reason::TokenRequired,
            Self::Expired => Reason::TokenExpired,
            Self::NotYetValid => Reason::TokenNotYetValid,
            Self::Revoked => Reason::TokenRevoked,
            Self::Invalid => Reason::TokenInvalid,
            Self::Unavailable => {
                let mut reply = ErrorReply::new(ErrorCode::Unavailable, self.to_string());
                reply.retry_after = Some(1);
                return reply;
            }
        };
        ErrorReply::new(ErrorCode::Unauthorized, self.to_string()).because(reason)
    }
}

impl From<TokenError> for ErrorReply {
    fn from(err: TokenError) -> Self {
        err.reply()
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    pub jti: String,
    pub exp: u64,
    nbf: u64,
}

struct Key {
    decoding: DecodingKey,
    jwk: PublicKey,
}

/// Checks tokens with the published keys and the revocations; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "keys",
                &self.inner.keys.read().map(|k| k.len()).unwrap_or(0),
            )
            .finish_non_exhaustive()
    }
}

struct Inner {
    keys: RwLock<HashMap<String, Key>>,
    revoked: RwLock<HashMap<String, u64>>,
    cache: Mutex<HashMap<String, Verified>>,
    validation: Validation,
    leeway: u64,
    /// Per stream (0: keys, 1: revocations): the number of completed passes, and the
    /// last request for a pass that a completed pass began after.
    passes: watch::Sender<[(u64, u64); 2]>,
    /// Per stream: requests for a pass now, counted.
    requested: [std::sync::atomic::AtomicU64; 2],
    wake: [Notify; 2],
    last_refresh: Mutex<Option<Instant>>,
}

impl Verifier {
    /// A verifier with no key yet (tests add keys with [`Verifier::add_key`]).
    pub fn new(settings: &TokenSettings) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
        Self {
            inner: Arc::new(Inner {
                keys: RwLock::default(),
                revoked: RwLock::default(),
                cache: Mutex::default(),
                validation,
                leeway: settings.leeway_secs,
                passes: watch::Sender::new([(0, 0); 2]),
                requested: Default::default(),
                wake: [Notify::new(), Notify::new()],
                last_refresh: Mutex::new(None),
            }),
        }
    }

    /// A verifier that follows auth's streams on `nats` from now on.
    pub fn follow(settings: &TokenSettings, nats: &async_nats::Client) -> Self {
        let verifier = Self::new(settings);
        // The tasks hold the verifier weakly: they end once it is dropped.
        tokio::spawn(follow(
            nats.clone(),
            (KEYS_STREAM, subject::KEYS, KEYS),
            Arc::downgrade(&verifier.inner),
            |verifier: &Self, payload: &[u8]| verifier.add_key_json(payload),
        ));
        tokio::spawn(follow(
            nats.clone(),
            (REVOKED_STREAM, subject::REVOKED, REVOCATIONS),
            Arc::downgrade(&verifier.inner),
            |verifier: &Self, payload: &[u8]| verifier.revoke_json(payload),
        ));
        verifier
    }

    /// Waits for the first reading of both streams before a service answers: at most
    /// 10 s, then it answers 503 for tokens until they are read.
    pub async fn ready_before_serving(&self) {
        if !self.loaded(Duration::from_secs(10)).await {
            tracing::warn!(
                "the token keys could not be read yet (JetStream down?); tokens get 503 until they are"
            );
        }
    }

    /// Waits (at most `wait`) until both streams were read once; whether they were.
    pub async fn loaded(&self, wait: Duration) -> bool {
        let mut passes = self.inner.passes.subscribe();
        tokio::time::timeout(
            wait,
            passes.wait_for(|p| p[KEYS].0 > 0 && p[REVOCATIONS].0 > 0),
        )
        .await
        .is_ok_and(|done| done.is_ok())
    }

    fn add_key_json(&self, payload: &[u8]) {
        match serde_json::from_slice::<PublicKey>(payload) {
            Ok(jwk) => {
                if let Err(err) = self.add_key(jwk) {
                    tracing::warn!(%err, "ignoring a public key");
                }
            }
            Err(err) => tracing::warn!(%err, "ignoring a public key record that is not a JWK"),
        }
    }

    fn revoke_json(&self, payload: &[u8]) {
        match serde_json::from_slice::<Revoked>(payload) {
            Ok(revoked) => self.revoke(revoked.jti, revoked.exp),
            Err(err) => tracing::warn!(%err, "ignoring a revocation record"),
        }
    }

    /// Accepts tokens signed with `jwk` from now on; refuses anything but an Ed25519 key
    /// of exactly 32 bytes.
    pub fn add_key(&self, jwk: PublicKey) -> Result<(), String> {
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" || jwk.alg != bus_schema::auth::ALGORITHM {
            return Err(format!(
                "key {} is {}/{}/{}, not OKP/Ed25519/EdDSA",
                jwk.kid, jwk.kty, jwk.crv, jwk.alg
            ));
        }
        if jwk.kid.is_empty() || jwk.kid.len() > 128 {
            return Err("a key id must be 1 to 128 characters".to_owned());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk.x.trim_end_matches('='))
            .map_err(|err| format!("key {}: x is not base64url: {err}", jwk.kid))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("key {}: {} bytes, not 32", jwk.kid, b.len()))?;
        // Also refuses 32 bytes that are no point of the curve.
        ed_point_check(&bytes).map_err(|err| format!("key {}: {err}", jwk.kid))?;
        let decoding = DecodingKey::from_ed_der(&bytes);
        self.inner
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(jwk.kid.clone(), Key { decoding, jwk });
        Ok(())
    }

    /// Refuses the token `jti` until `exp`.
    pub fn revoke(&self, jti: String, exp: u64) {
        let now = now_secs();
        let mut revoked = self
            .inner
            .revoked
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if revoked.len() > CACHE_MAX {
            let leeway = self.inner.leeway;
            revoked.retain(|_, exp| *exp + leeway >= now);
        }
        revoked.insert(jti, exp);
    }

    /// The keys that may still sign a valid token, as a JWK Set.
    pub fn key_set(&self) -> bus_schema::auth::KeySet {
        let now = now_secs();
        let mut keys: Vec<PublicKey> = self
            .inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|key| key.jwk.valid_until + self.inner.leeway >= now)
            .map(|key| key.jwk.clone())
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        bus_schema::auth::KeySet { keys }
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.inner
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(jti)
    }

    /// The identity of a valid, unrevoked token, checked with the keys in memory (read
    /// again once, at most every second, for a key id not known yet).
    pub async fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        bus_schema::trace::traced(
            || opentelemetry::trace::SpanBuilder::from_name("verify token"),
            "token_refused",
            self.verify_untraced(token),
        )
        .await
    }

    async fn verify_untraced(&self, token: &str) -> Result<Verified, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Required);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let cached = self
            .inner
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        let verified = match cached {
            Some(verified) => {
                let now = now_secs();
                if verified.exp + self.inner.leeway < now {
                    return Err(TokenError::Expired);
                }
                if verified.nbf > now + self.inner.leeway {
                    return Err(TokenError::NotYetValid);
                }
                verified
            }
            None => self.check(token).await?,
        };
        if self.is_revoked(&verified.jti) {
            return Err(TokenError::Revoked);
        }
        Ok(verified)
    }

    async fn check(&self, token: &str) -> Result<Verified, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        if !self.knows(&kid) {
            if !self.loaded(Duration::ZERO).await {
                return Err(TokenError::Unavailable);
            }
            self.refresh_keys().await;
            if !self.knows(&kid) {
                return Err(TokenError::Invalid);
            }
        }
        let decoded = {
            let keys = self.inner.keys.read().unwrap_or_else(|p| p.into_inner());
            let key = keys.get(&kid).ok_or(TokenError::Invalid)?;
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.inner.validation)
        };
        let claims = match decoded {
            Ok(data) => data.claims,
            Err(err) => {
                return Err(match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                    _ => TokenError::Invalid,
                });
            }
        };
        if claims.sub.is_empty() || claims.jti.is_empty() {
            return Err(TokenError::Invalid);
        }
        let verified = Verified {
            username: claims.sub,
            jti: claims.jti,
            exp: claims.exp,
            nbf: claims.nbf,
        };
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(token.to_owned(), verified.clone());
        Ok(verified)
    }

    fn knows(&self, kid: &str) -> bool {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(kid)
    }

    /// Reads the keys' stream once more, unless that was done less than a second ago.
    async fn refresh_keys(&self) {
        {
            let mut last = self
                .inner
                .last_refresh
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| at.elapsed() < REFRESH_AT_MOST_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        // A pass that begins after this request reads every key stored before it.
        let ticket =
            self.inner.requested[KEYS].fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let mut passes = self.inner.passes.subscribe();
        self.inner.wake[KEYS].notify_one();
        let _ = tokio::time::timeout(REFRESH_WAIT, passes.wait_for(|p| p[KEYS].1 >= ticket)).await;
    }
}

/// PKCS#8 v1 (RFC 8410) prefix of an Ed25519 private key: the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The signing key of an Ed25519 `seed`, as jsonwebtoken takes it (a PKCS#8 document).
pub fn ed25519_signing_key(seed: &[u8; 32]) -> jsonwebtoken::EncodingKey {
    let mut der = Vec::with_capacity(48);
    der.extend_from_slice(&PKCS8_ED25519_PREFIX);
    der.extend_from_slice(seed);
    jsonwebtoken::EncodingKey::from_ed_der(&der)
}

/// Whether 32 bytes are an Ed25519 public key jsonwebtoken will accept.
fn ed_point_check(bytes: &[u8; 32]) -> Result<(), String> {
    // jsonwebtoken checks the point when it verifies; decoding a token signed by nobody
    // with this key tells a bad point (InvalidEddsaKey) from a bad signature.
    let probe = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    match jsonwebtoken::decode::<serde_json::Value>(
        probe,
        &DecodingKey::from_ed_der(bytes),
        &validation,
    ) {
        Err(err) if matches!(err.kind(), ErrorKind::InvalidEddsaKey) => {
            Err("not an Ed25519 public key".to_owned())
        }
        _ => Ok(()),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The followed streams, as indexes of [`Inner`]'s arrays.
const KEYS: usize = 0;
const REVOCATIONS: usize = 1;

/// Keeps one of auth's streams in memory: applies every message of `subject` as it is
/// published, and every message the stream holds beyond the last pass, once a second or
/// when woken. Ends when the verifier is dropped.
async fn follow(
    nats: async_nats::Client,
    (stream, subject, index): (&'static str, &'static str, usize),
    verifier: std::sync::Weak<Inner>,
    apply_to: impl Fn(&Verifier, &[u8]) + Send + 'static,
) {
    let apply = |payload: &[u8]| {
        if let Some(inner) = verifier.upgrade() {
            apply_to(&Verifier { inner }, payload);
        }
    };
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(PASS_TIMEOUT)
        .build(nats.clone());
    let mut live = loop {
        match nats.subscribe(subject).await {
            Ok(live) => break live,
            Err(err) => {
                tracing::warn!(%err, subject, "cannot follow; retrying");
                tokio::time::sleep(PASS_EVERY).await;
            }
        }
    };
    let mut read_up_to = 0u64;
    loop {
        let Some(inner) = verifier.upgrade() else {
            return;
        };
        let serving = inner.requested[index].load(std::sync::atomic::Ordering::SeqCst);
        drop(inner);
        match pass(&js, stream, &mut read_up_to, &apply).await {
            Ok(()) => {
                let Some(inner) = verifier.upgrade() else {
                    return;
                };
                inner.passes.send_modify(|passes| {
                    passes[index].0 += 1;
                    passes[index].1 = passes[index].1.max(serving);
                });
            }
            Err(err) => tracing::debug!(%err, stream, "cannot read the stream now"),
        }
        let Some(inner) = verifier.upgrade() else {
            return;
        };
        let next = tokio::time::sleep(PASS_EVERY);
        tokio::pin!(next);
        loop {
            tokio::select! {
                message = live.next() => match message {
                    Some(message) => apply(&message.payload),
                    None => return,
                },
                () = inner.wake[index].notified() => break,
                () = &mut next => break,
            }
        }
    }
}

/// Applies the messages of `stream` after `read_up_to`, and moves it.
async fn pass(
    js: &async_nats::jetstream::Context,
    stream: &str,
    read_up_to: &mut u64,
    apply: &impl Fn(&[u8]),
) -> Result<(), String> {
    let handle = match js.get_stream(stream).await {
        Ok(handle) => handle,
        // No auth instance ever made it: nothing to read, and that is a complete pass.
        Err(err) if crate::stream_tail::is_stream_not_found(&err) => {
            return Ok(());
        }
        Err(err) => return Err(err.to_string()),
    };
    // `get_stream` asked the server for the stream's info just now.
    let state = handle.cached_info().state.clone();
    if state.last_sequence < *read_up_to {
        *read_up_to = 0; // the stream was made again
    }
    let from = (*read_up_to + 1).max(state.first_sequence);
    for seq in from..=state.last_sequence {
        match handle.get_raw_message(seq).await {
            Ok(message) => apply(&message.payload),
            // Deleted or aged out meanwhile.
            Err(err)
                if err.kind()
                    == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => {}
            Err(err) => return Err(err.to_string()),
        }
        *read_up_to = seq;
    }
    *read_up_to = (*read_up_to).max(state.last_sequence);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(x: &str) -> PublicKey {
        PublicKey::ed25519("k1".to_owned(), x.to_owned(), u64::MAX / 2)
    }

    #[test]
    fn only_ed25519_keys_of_32_bytes_are_taken() {
        let verifier = Verifier::new(&TokenSettings::default());
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let good = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(verifier.add_key(jwk(&b64(&good))).is_ok());
        for bad in [
            b64(&good[..31]),
            b64(&[good.as_slice(), &[0]].concat()),
            String::new(),
            "!!".into(),
        ] {
            assert!(verifier.add_key(jwk(&bad)).is_err(), "{bad}");
        }
        let mut rsa = jwk(&b64(&good));
        rsa.kty = "RSA".into();
        assert!(verifier.add_key(rsa).is_err());
        assert_eq!(verifier.key_set().keys.len(), 1);
    }

    #[tokio::test]
    async fn without_keys_read_yet_a_token_is_a_503_not_a_401() {
        let verifier = Verifier::new(&TokenSettings::default());
        let token = "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vcGUifQ.e30.AAAA";
        assert_eq!(verifier.verify(token).await, Err(TokenError::Unavailable));
        assert_eq!(verifier.verify("  ").await, Err(TokenError::Required));
        assert_eq!(verifier.verify("garbage").await, Err(TokenError::Invalid));
    }
}
