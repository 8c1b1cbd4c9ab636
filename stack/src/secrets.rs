//! The NATS passwords of the services and of `ops`: random on first start, kept in
//! `<data>/secrets/nats-passwords.env` (mode 0600, shell syntax), given to nats-server
//! through its environment (`nats.conf` refers to them) and to each service.

use std::{collections::BTreeMap, path::Path};

use service_kit::{
    error::StartError,
    runtime::{NatsConfig, Secret},
};

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
            let (text, made) = service_kit::secret_file::load_or_create(&path, || {
                let mut text = String::from(
                    "# NATS passwords of the shop, made by the stack. Keep private.\n",
                );
                for user in USERS {
                    // A letter first: nats-server parses the variable as a config value,
                    // and a value starting with a digit would be read as a number.
                    text.push_str(&format!(
                        "{}=p{}\n",
                        variable(user),
                        service_kit::secret_file::random_hex(24)
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
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()))
                .ok_or_else(|| {
                    format!("no {} (delete the file to make new ones)", variable(user))
                })?;
            passwords.insert(user, Secret::new(*value));
        }
        Ok(Self(passwords))
    }

    /// `(variable, value)` for nats-server's environment. nats-server parses the value
    /// as a config value, so it is quoted: any password is then read as a string.
    pub fn env(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(user, secret)| (variable(user), format!("\"{}\"", secret.expose())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_are_made_once_and_given_to_nats_server_quoted() {
        let dir = tempfile::tempdir().expect("dir");
        let made = NatsPasswords::load_or_create(dir.path())
            .await
            .expect("made");
        let again = NatsPasswords::load_or_create(dir.path())
            .await
            .expect("read");
        assert_eq!(made.env(), again.env());
        for (name, value) in made.env() {
            assert!(name.starts_with("SHOP_NATS_PASSWORD_"));
            assert!(value.starts_with("\"p") && value.ends_with('"'), "{value}");
        }
        assert_eq!(made.env().len(), USERS.len());
    }

    #[test]
    fn a_broken_file_says_how_to_mend_it() {
        let err = NatsPasswords::parse("SHOP_NATS_PASSWORD_GATEWAY=x").expect_err("incomplete");
        assert!(err.contains("delete the file"), "{err}");
    }
}
