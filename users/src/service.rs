//! The operations of the users service that both doors call.
//!
//! [`Users`] validates with [`crate::domain`], hashes with [`crate::hasher`], writes to
//! the accounts stream and reads this instance's view of it ([`crate::accounts`]).

use bus_schema::users::{
    CreateReply, CreateRequest, GetReply, GetRequest, VerifyReply, VerifyRequest,
};

use crate::{
    accounts::{Accounts, Stored, publish},
    domain::{CandidatePassword, NewPassword, username},
    error::UsersError,
    hasher::Hasher,
    record::AccountRecord,
    store::StoredUser,
    werkzeug,
};

/// The accounts of the original demo, created with a new accounts stream.
pub const DEMO_ACCOUNTS: [(&str, &str); 3] =
    [("victor", "1234"), ("kilian", "abcd"), ("baptiste", "pass")];

/// The users service's core.
#[derive(Debug, Clone)]
pub struct Users {
    accounts: Accounts,
    hasher: Hasher,
    /// Where sign-ups are announced (`users.events.created.<name>`), if anywhere.
    events: Option<async_nats::Client>,
    /// Wrong passwords per account, shared by every users instance.
    throttle: std::sync::Arc<service_kit::throttle::Throttle>,
}

impl Users {
    pub fn new(
        accounts: Accounts,
        hasher: Hasher,
        throttle: std::sync::Arc<service_kit::throttle::Throttle>,
    ) -> Self {
        Self {
            accounts,
            hasher,
            events: None,
            throttle,
        }
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Announces sign-ups on `nats`.
    pub fn with_events(mut self, nats: async_nats::Client) -> Self {
        self.events = Some(nats);
        self
    }

    /// Creates the demo accounts in a new shop: one whose stream holds nothing but some of
    /// them (a start cut short after the first), each missing one is made. Their passwords are shorter than the rules allow today: they are the original's,
    /// kept so that its users can log in as before.
    pub async fn seed_demo_accounts(&self) -> Result<(), UsersError> {
        self.accounts.catch_up().await?;
        let mut missing = Vec::new();
        for (name, password) in DEMO_ACCOUNTS {
            if self.accounts.find(name).await?.is_none() {
                missing.push((name, password));
            }
        }
        // Records other than the demo accounts' first ones: a shop in use, left as it is.
        let demo_present = DEMO_ACCOUNTS.len() - missing.len();
        if missing.is_empty() || self.accounts.applied() > demo_present as u64 {
            return Ok(());
        }
        for (name, password) in missing {
            let hash = self.hasher.hash(password.to_owned()).await?;
            let record = AccountRecord::new(name.to_owned(), hash, None);
            if let Stored::At(seq) = publish(self.accounts.jetstream(), &record, 0).await? {
                self.accounts.wait_for(seq).await;
                tracing::info!(username = name, "created a demo account");
            }
        }
        Ok(())
    }

    /// `users.create`: a new account with a hashed password, unique across every
    /// instance (the stream decides), in this instance's view when answered.
    pub async fn create(&self, req: CreateRequest) -> Result<CreateReply, UsersError> {
        let username = username(&req.username)?;
        let password = NewPassword::parse(req.password)?;
        // A cheap early answer for a taken name; the stream stays the judge when two
        // requests race.
        if self.accounts.find(username.as_str()).await?.is_some() {
            return Err(UsersError::Taken(username.into_string()));
        }
        let hash = self.hasher.hash(password.into_string()).await?;
        let record = AccountRecord::new(username.as_str().to_owned(), hash, None);
        match publish(self.accounts.jetstream(), &record, 0).await? {
            Stored::At(seq) => {
                self.accounts.wait_for(seq).await;
                tracing::info!(username = username.as_str(), "account created");
                self.announce(username.as_str()).await;
                Ok(CreateReply {
                    username: username.into_string(),
                })
            }
            Stored::Conflict => Err(UsersError::Taken(username.into_string())),
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
        let subject = bus_schema::users::subject::created(username);
        let span = bus_schema::trace::publishing(bus_schema::users::subject::CREATED_PREFIX);
        let sent = match &span {
            Some(span) => {
                let mut headers = async_nats::HeaderMap::new();
                span.inject(&mut headers);
                nats.publish_with_headers(subject, headers, payload.into())
                    .await
            }
            None => nats.publish(subject, payload.into()).await,
        };
        if let Err(err) = &sent {
            tracing::warn!(%err, "could not announce a sign-up");
        }
        bus_schema::trace::published(span, &sent);
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
        let password = password.into_string();
        let checked = async {
            let stored = self.accounts.find(username.as_str()).await?;
            let hash = stored.as_ref().map(|user| user.hash.clone());
            let valid = self.hasher.verify(password.clone(), hash).await?;
            Ok::<_, UsersError>((valid, stored))
        };
        match checked.await {
            Ok((true, stored)) => {
                attempt.succeeded();
                if let Some(user) = stored
                    && werkzeug::is_werkzeug(&user.hash)
                {
                    self.rehash(user, password).await;
                }
                Ok(VerifyReply { valid: true })
            }
            Ok((false, _)) => {
                attempt.failed();
                Ok(VerifyReply { valid: false })
            }
            Err(err) => {
                attempt.not_counted();
                Err(err)
            }
        }
    }

    /// Replaces an imported werkzeug hash by argon2id after a login proved the password.
    /// A failure only means the old hash is checked once more next time.
    async fn rehash(&self, user: StoredUser, password: String) {
        let upgraded = async {
            let hash = self.hasher.hash(password).await?;
            let record = AccountRecord::new(user.username.clone(), hash, Some(user.id));
            publish(self.accounts.jetstream(), &record, user.seq).await
        };
        match upgraded.await {
            Ok(Stored::At(seq)) => {
                self.accounts.wait_for(seq).await;
                tracing::info!(
                    username = user.username,
                    "replaced an imported hash by argon2id"
                );
            }
            Ok(Stored::Conflict) => {}
            Err(err) => tracing::warn!(%err, "could not replace an imported hash"),
        }
    }

    /// `users.get`: the public view of an account.
    pub async fn get(&self, req: GetRequest) -> Result<GetReply, UsersError> {
        let username = username(&req.username)?;
        match self.accounts.find(username.as_str()).await? {
            Some(user) => Ok(GetReply {
                id: user.id,
                username: user.username,
            }),
            None => Err(UsersError::NotFound(username.into_string())),
        }
    }

    /// Whether the database answers.
    pub async fn storage_ready(&self) -> bool {
        self.accounts.ready().await
    }

    /// The throttle of password checks, shared with the other instances.
    pub fn throttle(&self) -> &service_kit::throttle::Throttle {
        &self.throttle
    }

    /// How many hashes wait for a slot right now.
    pub fn hash_queue_len(&self) -> usize {
        self.hasher.queued()
    }
}
