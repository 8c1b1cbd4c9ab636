//! Configuration of the auth service, from flags or environment variables.

use std::{net::SocketAddr, path::PathBuf};

use service_kit::runtime::NatsConfig;
pub use service_kit::runtime::Secret;

/// How the auth service runs. Tests build this struct directly.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "auth", version, about = "The shop's auth service")]
pub struct Config {
    /// Address of the HTTP door.
    #[arg(long, env = "AUTH_HTTP_ADDR", default_value = "127.0.0.1:5001")]
    pub http_addr: SocketAddr,
    /// The bus: URL, user and password.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// The HS256 key (at least 32 bytes). Without it, a random key is made on first
    /// start in the secrets directory and reused.
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// Where the generated key is kept (mode 0700, the file 0600).
    #[arg(long, env = "AUTH_SECRETS_DIR", default_value = "data/secrets")]
    pub secrets_dir: PathBuf,
    /// Lifetime of a token, in seconds.
    #[arg(long, env = "AUTH_TOKEN_TTL_SECS", default_value_t = 30 * 60)]
    pub token_ttl_secs: u64,
    /// Clock difference tolerated when checking `exp` and `nbf`, in seconds.
    #[arg(long, env = "AUTH_CLOCK_LEEWAY_SECS", default_value_t = 5)]
    pub clock_leeway_secs: u64,
    /// Failed logins of one account before further attempts get 429.
    #[arg(long, env = "AUTH_MAX_FAILED_LOGINS", default_value_t = 5)]
    pub max_failed_logins: usize,
    /// The window in which failed logins are counted, in seconds.
    #[arg(long, env = "AUTH_FAILED_LOGIN_WINDOW_SECS", default_value_t = 300)]
    pub failed_login_window_secs: u64,
    /// The `iss` claim of issued tokens, and the only one accepted.
    #[arg(long, env = "AUTH_ISSUER", default_value = "shop-auth")]
    pub issuer: String,
}

impl Config {
    /// A configuration for tests: HTTP on a free port, the given NATS and secrets dir.
    pub fn for_tests(nats_url: String, secrets_dir: PathBuf) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nats: NatsConfig::anonymous(nats_url),
            jwt_secret: None,
            secrets_dir,
            token_ttl_secs: 30 * 60,
            clock_leeway_secs: 5,
            max_failed_logins: 5,
            failed_login_window_secs: 300,
            issuer: "shop-auth".to_owned(),
        }
    }
}
