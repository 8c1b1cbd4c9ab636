//! Configuration of the auth service, from flags or environment variables.

use std::net::SocketAddr;

use service_kit::{
    runtime::{BinaryConfig, NatsConfig, RunConfig},
    tokens::TokenSettings,
};

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
    /// Threads and stream replicas, as in every binary.
    #[command(flatten)]
    pub run: RunConfig,
    /// Lifetime of a token, in seconds.
    #[arg(long, env = "AUTH_TOKEN_TTL_SECS", default_value_t = 30 * 60)]
    pub token_ttl_secs: u64,
    /// How long one signing key signs before the next one takes over, in seconds.
    #[arg(long, env = "AUTH_KEY_ROTATION_SECS", default_value_t = 24 * 60 * 60)]
    pub key_rotation_secs: u64,
    /// The issuer and the clock leeway, shared with every verifier.
    #[command(flatten)]
    pub tokens: TokenSettings,
    /// Failed logins of one account before further attempts get 429.
    #[arg(long, env = "AUTH_MAX_FAILED_LOGINS", default_value_t = 5)]
    pub max_failed_logins: usize,
    /// The window in which failed logins are counted, in seconds.
    #[arg(long, env = "AUTH_FAILED_LOGIN_WINDOW_SECS", default_value_t = 300)]
    pub failed_login_window_secs: u64,
}

impl Config {
    /// A configuration for tests: HTTP on a free port, the given NATS.
    pub fn for_tests(nats_url: String) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nats: NatsConfig::anonymous(nats_url),
            run: RunConfig::default(),
            token_ttl_secs: 30 * 60,
            key_rotation_secs: 24 * 60 * 60,
            tokens: TokenSettings::default(),
            max_failed_logins: 5,
            failed_login_window_secs: 300,
        }
    }
}

impl BinaryConfig for Config {
    fn run_config(&self) -> RunConfig {
        self.run
    }
}
