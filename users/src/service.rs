//! The operations of the users service that both doors call.
//!
//! [`Users`] validates with [`crate::domain`], hashes with [`crate::hasher`] and stores
//! with [`crate::store`].

use bus_schema::users::{
    CreateReply, CreateRequest, GetReply, GetRequest, VerifyReply, VerifyRequest,
};

use crate::{
    domain::{CandidatePassword, NewPassword, username},
    error::UsersError,
    hasher::Hasher,
    store::{Store, StoreOutcome},
};

/// The accounts of the original demo, created with a new database.
pub const DEMO_ACCOUNTS: [(&str, &str); 3] =
    [("victor", "1234"), ("kilian", "abcd"), ("baptiste", "pass")];

/// The users service's core.
#[derive(Debug, Clone)]
pub struct Users {
    store: Store,
    hasher: Hasher,
    /// Where sign-ups are announced (`users.events.created.<name>`), if anywhere.
    events: Option<async_nats::Client>,
    /// Wrong passwords per account.
    throttle: std::sync::Arc<service_kit::throttle::Throttle>,
}

impl Users {
    pub fn new(store: Store, hasher: Hasher, throttle: service_kit::throttle::Throttle) -> Self {
        Self {
            store,
            hasher,
            events: None,
            throttle: std::sync::Arc::new(throttle),
        }
    }

    /// Announces sign-ups on `nats`.
    pub fn with_events(mut self, nats: async_nats::Client) -> Self {
        self.events = Some(nats);
        self
    }

    /// Creates the demo accounts if the database is new (no row was ever written).
    ///
    /// Their passwords are shorter than the rules allow today: they are the original's,
    /// kept so that its users can log in as before.
    pub async fn seed_demo_accounts(&self) -> Result<(), UsersError> {
        if !self.store.is_new().await? {
            return Ok(());
        }
        for (name, password) in DEMO_ACCOUNTS {
            let hash = self.hasher.hash(password.to_owned()).await?;
            self.store.insert(name.to_owned(), hash).await?;
        }
        tracing::info!("created the demo accounts victor, kilian and baptiste");
        Ok(())
    }

    /// `users.create`: a new account with a hashed password.
    pub async fn create(&self, req: CreateRequest) -> Result<CreateReply, UsersError> {
        let username = username(&req.username)?;
        let password = NewPassword::parse(req.password)?;
        // A cheap early answer for a taken name; the UNIQUE constraint stays the judge
        // when two requests race.
        if self
            .store
            .find(username.as_str().to_owned())
            .await?
            .is_some()
        {
            return Err(UsersError::Taken(username.into_string()));
        }
        let hash = self.hasher.hash(password.into_string()).await?;
        match self
            .store
            .insert(username.as_str().to_owned(), hash)
            .await?
        {
            StoreOutcome::Inserted => {
                tracing::info!(username = username.as_str(), "account created");
                self.announce(username.as_str()).await;
                Ok(CreateReply {
                    username: username.into_string(),
                })
            }
            StoreOutcome::Duplicate => Err(UsersError::Taken(username.into_string())),
        }
    }

    /// Publishes the sign-up event; a lost event only means a quieter activity feed.
    async fn announce(&self, username: &str) {
        let Some(nats) = &self.events else { return };
        let event = bus_schema::users::CreatedEvent {
            username: username.to_owned(),
            created_at: service_kit::clock::now_rfc3339(),
        };
        let payload = serde_json::to_vec(&event).expect("BUG: an event always serialises");
        if let Err(err) = nats
            .publish(
                bus_schema::users::subject::created(username),
                payload.into(),
            )
            .await
        {
            tracing::warn!(%err, "could not announce a sign-up");
        }
    }

    /// `users.verify`: whether the password is right. An unknown user costs one hash,
    /// like a wrong password, and gets the same answer.
    pub async fn verify(&self, req: VerifyRequest) -> Result<VerifyReply, UsersError> {
        let username = username(&req.username)?;
        let password = CandidatePassword::parse(req.password)?;
        // Reserved before the hash is checked, so that parallel guesses cannot all pass.
        let attempt = self
            .throttle
            .attempt(username.as_str())
            .map_err(UsersError::Throttled)?;
        let checked = async {
            let stored = self.store.find(username.as_str().to_owned()).await?;
            self.hasher
                .verify(password.into_string(), stored.map(|user| user.hash))
                .await
        };
        match checked.await {
            Ok(true) => {
                attempt.succeeded();
                Ok(VerifyReply { valid: true })
            }
            Ok(false) => {
                attempt.failed();
                Ok(VerifyReply { valid: false })
            }
            Err(err) => {
                attempt.not_counted();
                Err(err)
            }
        }
    }

    /// `users.get`: the public view of an account.
    pub async fn get(&self, req: GetRequest) -> Result<GetReply, UsersError> {
        let username = username(&req.username)?;
        match self.store.find(username.as_str().to_owned()).await? {
            Some(user) => Ok(GetReply {
                id: user.id,
                username: user.username,
            }),
            None => Err(UsersError::NotFound(username.into_string())),
        }
    }

    /// Whether the database answers.
    pub async fn storage_ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    /// How many hashes wait for a slot right now.
    pub fn hash_queue_len(&self) -> usize {
        self.hasher.queued()
    }
}
