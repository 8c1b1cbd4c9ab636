//! The HS256 key: from `AUTH_JWT_SECRET`, or 32 random bytes kept in
//! `<secrets_dir>/jwt.key` (mode 0600) so that tokens survive a restart.
//!
//! Several auth instances must share one key: give them the same `AUTH_JWT_SECRET` or
//! the same secrets directory.

use std::{fmt, path::Path};

use crate::config::Secret;

/// Shortest key accepted: HS256 wants at least 256 bits.
pub const MIN_KEY_BYTES: usize = 32;
/// Name of the generated key file inside the secrets directory.
pub const KEY_FILE: &str = "jwt.key";

/// The signing key. Never printed.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key given by environment, or the one in `secrets_dir` (made when missing).
    /// Runs file I/O on a blocking thread.
    pub async fn load(given: Option<&Secret>, secrets_dir: &Path) -> Result<Self, String> {
        if let Some(secret) = given {
            let bytes = secret.expose().as_bytes();
            if bytes.len() < MIN_KEY_BYTES {
                return Err(format!(
                    "AUTH_JWT_SECRET must be at least {MIN_KEY_BYTES} bytes long"
                ));
            }
            return Ok(Self(bytes.to_vec()));
        }
        let dir = secrets_dir.to_owned();
        tokio::task::spawn_blocking(move || load_or_create(&dir))
            .await
            .map_err(|err| format!("key loading failed: {err}"))?
    }
}

fn load_or_create(dir: &Path) -> Result<SigningKey, String> {
    let path = dir.join(KEY_FILE);
    let (text, made) = service_kit::secret_file::load_or_create(&path, || {
        format!("{}\n", service_kit::secret_file::random_hex(MIN_KEY_BYTES))
    })?;
    if made {
        tracing::info!(path = %path.display(), "created a new token signing key");
    }
    parse(&text, &path)
}

fn parse(text: &str, path: &Path) -> Result<SigningKey, String> {
    let text = text.trim();
    let bytes = unhex(text)
        .filter(|b| b.len() >= MIN_KEY_BYTES)
        .ok_or_else(|| {
            format!(
                "{} is not a key of {MIN_KEY_BYTES} hex-encoded bytes; delete it to make a \
                 new one (tokens issued so far will stop working)",
                path.display()
            )
        })?;
    Ok(SigningKey(bytes))
}

#[cfg(test)]
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[tokio::test]
    async fn a_short_secret_from_the_environment_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let err = SigningKey::load(Some(&Secret::new("short")), dir.path())
            .await
            .expect_err("too short");
        assert!(err.contains("at least 32 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_corrupt_key_file_stops_start_up_with_a_message() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(KEY_FILE), "not hex").expect("write");
        let err = SigningKey::load(None, dir.path())
            .await
            .expect_err("corrupt");
        assert!(err.contains("delete it"), "{err}");
    }
}
