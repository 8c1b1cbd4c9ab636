//! The NATS passwords of the services and of `ops`: random on first start, kept in
//! `<data>/secrets/nats-passwords.env` (mode 0600, shell syntax), given to nats-server
//! through its environment (`nats.conf` refers to them) and to each service.

use std::{collections::BTreeMap, path::Path};

use bus_schema::runtime::{NatsConfig, Secret, StartError};

/// The NATS users of `nats.conf`.
pub const USERS: [&str; 5] = ["gateway", "auth", "users", "orders", "ops"];
/// The file, inside the secrets directory.
pub const FILE: &str = "nats-passwords.env";

/// The password of every NATS user.
#[derive(Debug, Clone)]
pub struct NatsPasswords(BTreeMap<&'static str, Secret>);

/// The environment variable that holds `user`'s password.
pub fn variable(user: &str) -> String {
    format!("SHOP_NATS_PASSWORD_{}", user.to_uppercase())
}

impl NatsPasswords {
    /// The passwords in `secrets_dir`, made there on first start.
    pub async fn load_or_create(secrets_dir: &Path) -> Result<Self, StartError> {
        let path = secrets_dir.join(FILE);
        tokio::task::spawn_blocking(move || {
            let (text, made) = bus_schema::secret_file::load_or_create(&path, || {
                let mut text = String::from(
                    "# NATS passwords of the shop, made by the stack. Keep private.\n",
                );
                for user in USERS {
                    text.push_str(&format!(
                        "{}={}\n",
                        variable(user),
                        bus_schema::secret_file::random_hex(24)
                    ));
                }
                text
            })?;
            if made {
                tracing::info!(path = %path.display(), "created NATS passwords");
            }
            Self::parse(&text).map_err(|err| format!("{}: {err}", path.display()))
        })
        .await
        .map_err(|err| StartError::Other(err.to_string()))?
        .map_err(StartError::Other)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let values: BTreeMap<&str, &str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let mut passwords = BTreeMap::new();
        for user in USERS {
            let value = values
                .get(variable(user).as_str())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    format!("no {} (delete the file to make new ones)", variable(user))
                })?;
            passwords.insert(user, Secret::new(*value));
        }
        Ok(Self(passwords))
    }

    /// `(variable, password)` for nats-server's environment.
    pub fn env(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(user, secret)| (variable(user), secret.expose().to_owned()))
            .collect()
    }

    /// How `user` joins the bus at `url`.
    pub fn nats_config(&self, url: &str, user: &str) -> NatsConfig {
        NatsConfig {
            url: url.to_owned(),
            user: Some(user.to_owned()),
            password: self.0.get(user).cloned(),
        }
    }
}
