//! Configuration of the gateway, from flags or environment variables.

use std::net::SocketAddr;

use service_kit::runtime::{BinaryConfig, NatsConfig, RunConfig};

/// How the gateway runs. Tests build this struct directly.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "gateway",
    version,
    about = "The shop's gateway: web pages and JSON API"
)]
pub struct Config {
    /// Address of the web server.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "127.0.0.1:5000")]
    pub http_addr: SocketAddr,
    /// The bus: URL, user and password.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// Threads and stream replicas, as in every binary.
    #[command(flatten)]
    pub run: RunConfig,
    /// The tokens' issuer and clock leeway (the same as auth's).
    #[command(flatten)]
    pub tokens: service_kit::tokens::TokenSettings,
    /// Mark cookies `Secure`: set this when the gateway is served over HTTPS.
    #[arg(long, env = "GATEWAY_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Failed logins from one client address before further attempts get 429.
    #[arg(
        long,
        env = "GATEWAY_MAX_FAILED_LOGINS_PER_ADDRESS",
        default_value_t = 20
    )]
    pub max_failed_logins_per_address: usize,
    /// The window in which they are counted, in seconds.
    #[arg(long, env = "GATEWAY_FAILED_LOGIN_WINDOW_SECS", default_value_t = 300)]
    pub failed_login_window_secs: u64,
    /// Logins from one client address in flight at once; more wait behind them (up to
    /// 1 s, then 429), so that a flood from one address cannot fill the password hashers
    /// for everyone.
    #[arg(
        long,
        env = "GATEWAY_MAX_LOGINS_IN_FLIGHT_PER_ADDRESS",
        default_value_t = 4
    )]
    pub max_logins_in_flight_per_address: usize,
    /// The NATS server's monitoring address, for the status page.
    #[arg(
        long,
        env = "GATEWAY_NATS_MONITOR_URL",
        default_value = "http://127.0.0.1:8222"
    )]
    pub nats_monitor_url: Option<String>,
    /// Where the key that signs CSRF tokens is kept (`csrf.key`, made on first start,
    /// mode 0600); gateways that share a site share it. Without one (tests), a key per
    /// process.
    #[arg(long, env = "GATEWAY_SECRETS_DIR", default_value = "data/secrets")]
    pub secrets_dir: Option<std::path::PathBuf>,
    /// How long a call to a service may take before the answer is a 503, in ms.
    #[arg(long, env = "GATEWAY_CALL_TIMEOUT_MS", default_value_t = 3000)]
    pub call_timeout_ms: u64,
    /// A trace UI (Jaeger's, say `http://127.0.0.1:16686`): the status page links each
    /// slow request's trace id to `<url>/trace/<id>`.
    #[arg(long, env = "GATEWAY_TRACE_UI")]
    pub trace_ui: Option<String>,
}

impl Config {
    /// A configuration for tests: HTTP on a free port.
    pub fn for_tests(nats_url: String) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nats: NatsConfig::anonymous(nats_url),
            run: RunConfig::default(),
            tokens: service_kit::tokens::TokenSettings::default(),
            secure_cookies: false,
            max_failed_logins_per_address: 20,
            failed_login_window_secs: 300,
            max_logins_in_flight_per_address: 4,
            nats_monitor_url: None,
            secrets_dir: None,
            call_timeout_ms: 3000,
            trace_ui: None,
        }
    }
}

impl BinaryConfig for Config {
    fn run_config(&self) -> RunConfig {
        self.run
    }
}
