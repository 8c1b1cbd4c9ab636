//! The signing keys: Ed25519 pairs made by each auth instance, kept in its memory only,
//! their public halves published in the `AUTH_KEYS` stream before they sign anything.
//!
//! Each instance has its own pair rather than one shared by all: no private key is ever
//! written to disk, copied between machines or handed to an operator; a verifier knows
//! every instance's public key from the stream; a restarted instance makes a new pair
//! (tokens signed with the old one stay valid, its public key stays published). Pairs
//! rotate every `rotation`: a public key stays published until the last token it could
//! have signed has expired.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_nats::jetstream::{
    self,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType},
};
use base64::Engine;
use bus_schema::auth::{KEYS_STREAM, PublicKey, REVOKED_STREAM, subject};
use jsonwebtoken::EncodingKey;
use tokio_util::sync::CancellationToken;

/// One signing key: its id and the private half. Never printed.
pub struct Signer {
    pub kid: String,
    pub encoding: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key this instance signs with now, replaced every rotation period.
pub struct KeyRing {
    current: RwLock<Arc<Signer>>,
    js: jetstream::Context,
    /// How long one key signs.
    rotation: Duration,
    /// How long a public key stays published after it stopped signing.
    after: Duration,
    /// Told of each new public key at once (this instance's own verifier).
    on_new: Box<dyn Fn(PublicKey) + Send + Sync>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current())
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Makes the streams, then a first pair, published before this returns.
    pub async fn start(
        js: jetstream::Context,
        rotation: Duration,
        token_ttl: Duration,
        leeway: Duration,
        on_new: impl Fn(PublicKey) + Send + Sync + 'static,
    ) -> Result<Arc<Self>, String> {
        let after = token_ttl + leeway;
        ensure_streams(&js, rotation + after, after).await?;
        let on_new: Box<dyn Fn(PublicKey) + Send + Sync> = Box::new(on_new);
        let first = make(&js, rotation + after, &on_new).await?;
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(first)),
            js,
            rotation,
            after,
            on_new,
        }))
    }

    /// The key to sign with now.
    pub fn current(&self) -> Arc<Signer> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes and publishes a new pair, then signs with it.
    pub async fn rotate(&self) -> Result<(), String> {
        let next = make(&self.js, self.rotation + self.after, &self.on_new).await?;
        tracing::info!(kid = next.kid, "rotated the token signing key");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// Rotates every period until `stop`; a failed rotation is tried again in a minute,
    /// signing with the current key meanwhile.
    pub async fn rotate_every_period(self: Arc<Self>, stop: CancellationToken) {
        let mut wait = self.rotation;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = match self.rotate().await {
                Ok(()) => self.rotation,
                Err(err) => {
                    tracing::warn!(%err, "cannot rotate the signing key; trying again in a minute");
                    Duration::from_secs(60).min(self.rotation)
                }
            };
        }
    }
}

/// A new pair whose public half is stored in `AUTH_KEYS` (valid for `lifetime`).
async fn make(
    js: &jetstream::Context,
    lifetime: Duration,
    on_new: &(dyn Fn(PublicKey) + Send + Sync),
) -> Result<Signer, String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|err| format!("no randomness for a key: {err}"))?;
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let kid = service_kit::random::hex(8);
    let jwk = PublicKey::ed25519(
        kid.clone(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
        now_secs() + lifetime.as_secs(),
    );
    let body = serde_json::to_vec(&jwk).expect("BUG: a JWK always serialises");
    js.publish(subject::key(&kid), body.into())
        .await
        .map_err(|err| format!("cannot publish the public key: {err}"))?
        .await
        .map_err(|err| format!("the {KEYS_STREAM} stream did not store the public key: {err}"))?;
    on_new(jwk);
    Ok(Signer {
        kid,
        encoding: service_kit::tokens::ed25519_signing_key(&seed),
    })
}

/// The keys' and the revocations' streams, each keeping a record as long as it matters.
async fn ensure_streams(
    js: &jetstream::Context,
    keys_for: Duration,
    revoked_for: Duration,
) -> Result<(), String> {
    for (name, subjects, max_age, description) in [
        (
            KEYS_STREAM,
            subject::KEYS,
            keys_for,
            "Public keys of the shop's tokens (JWKs)",
        ),
        (
            REVOKED_STREAM,
            subject::REVOKED,
            revoked_for,
            "Revoked token ids, kept while the tokens could be valid",
        ),
    ] {
        let config = Config {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            subjects: vec![subjects.to_owned()],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            // A minute more than needed, so that nothing leaves a moment too early.
            max_age: max_age + Duration::from_secs(60),
            num_replicas: service_kit::runtime::stream_replicas(),
            ..Config::default()
        };
        js.create_or_update_stream(config)
            .await
            .map_err(|err| format!("cannot create or update the {name} stream: {err}"))?;
    }
    Ok(())
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
