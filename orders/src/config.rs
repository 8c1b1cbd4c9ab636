//! Configuration of the orders service, from flags or environment variables.

use service_kit::runtime::{BinaryConfig, NatsConfig, RunConfig};
use std::{net::SocketAddr, path::PathBuf};

/// How the orders service runs. Tests build this struct directly.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "orders", version, about = "The shop's orders service")]
pub struct Config {
    /// Address of the HTTP door.
    #[arg(long, env = "ORDERS_HTTP_ADDR", default_value = "127.0.0.1:5003")]
    pub http_addr: SocketAddr,
    /// The bus: URL, user and password.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// Threads and stream replicas, as in every binary.
    #[command(flatten)]
    pub run: RunConfig,
    /// The purchase journal (JSON Lines), created when missing.
    #[arg(
        long,
        env = "ORDERS_PURCHASES_FILE",
        default_value = "data/purchases.json"
    )]
    pub purchases_path: PathBuf,
    /// The tokens' issuer and clock leeway (the same as auth's).
    #[command(flatten)]
    pub tokens: service_kit::tokens::TokenSettings,
    /// A catalogue replacing the built-in one, when the file exists.
    #[arg(long, env = "ORDERS_CATALOG_FILE", default_value = "data/catalog.json")]
    pub catalog_path: PathBuf,
}

impl Config {
    /// A configuration for tests: HTTP on a free port, files in `data_dir`.
    pub fn for_tests(nats_url: String, data_dir: &std::path::Path) -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            nats: NatsConfig::anonymous(nats_url),
            run: RunConfig::default(),
            tokens: service_kit::tokens::TokenSettings::default(),
            purchases_path: data_dir.join("purchases.json"),
            catalog_path: data_dir.join("catalog.json"),
        }
    }
}

impl BinaryConfig for Config {
    fn run_config(&self) -> RunConfig {
        self.run
    }
}
