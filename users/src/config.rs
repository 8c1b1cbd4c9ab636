//! Configuration of the users service, from flags or environment variables.

use service_kit::runtime::{BinaryConfig, NatsConfig, RunConfig};
use std::{net::SocketAddr, path::PathBuf};

/// How the users service runs. Tests build this struct directly.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "users", version, about = "The shop's users service")]
pub struct Config {
    /// Address of the HTTP door.
    #[arg(long, env = "USERS_HTTP_ADDR", default_value = "127.0.0.1:5002")]
    pub http_addr: SocketAddr,
    /// The bus: URL, user and password.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// Threads and stream replicas, as in every binary.
    #[command(flatten)]
    pub run: RunConfig,
    /// The SQLite database; created with its directory when missing.
    #[arg(long, env = "USERS_DB", default_value = "data/users.db")]
    pub db_path: PathBuf,
    /// Do not create the original's demo accounts in a new database.
    #[arg(long, env = "USERS_NO_DEMO_ACCOUNTS")]
    pub no_demo_accounts: bool,
    /// Wrong passwords per account within the window before `users.verify` answers 429,
    /// on both doors (the per-account limit belongs where passwords are checked).
    #[arg(long, env = "USERS_MAX_FAILED_VERIFIES", default_value_t = 5)]
    pub max_failed_verifies: usize,
    /// The window of that count, in seconds.
    #[arg(long, env = "USERS_FAILED_VERIFY_WINDOW_SECS", default_value_t = 300)]
    pub failed_verify_window_secs: u64,
    /// How many argon2 hashes may run at once (each holds 19 MiB).
    #[arg(long, env = "USERS_HASH_CONCURRENCY", default_value_t = default_hash_concurrency())]
    pub hash_concurrency: usize,
}

impl Config {
    /// A configuration for tests: HTTP on a free port, the given NATS and database.
    pub fn for_tests(nats_url: String, db_path: PathBuf) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nats: NatsConfig::anonymous(nats_url),
            run: RunConfig::default(),
            db_path,
            no_demo_accounts: false,
            max_failed_verifies: 5,
            failed_verify_window_secs: 300,
            hash_concurrency: default_hash_concurrency(),
        }
    }
}

/// One hash per core: more would only queue inside the CPU and cost memory.
fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl BinaryConfig for Config {
    fn run_config(&self) -> RunConfig {
        self.run
    }
}
