//! The launcher: nats-server (unless `NATS_URL` names one), then every service in this
//! process, each with its own port and its own NATS connection, until Ctrl-C or SIGTERM.
//!
//! - [`Config`]: where things are; each service still reads its own variables
//!   (`USERS_HTTP_ADDR`, ...), only the data files are placed under `--data-dir`.
//! - [`nats`]: starting and stopping the bundled nats-server.
//! - [`run`]: the sequence, start to stop.

pub mod nats;
pub mod secrets;

use std::{future::Future, path::PathBuf};

use clap::Parser;
use service_kit::error::StartError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where the stack finds and keeps things.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "stack",
    version,
    about = "Runs nats-server and every service of the shop"
)]
pub struct Config {
    /// Use this NATS server instead of starting one.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// The nats-server binary to start.
    #[arg(long, env = "NATS_SERVER_BIN", default_value = "nats-server")]
    pub nats_server_bin: String,
    /// The server's configuration file.
    #[arg(long, env = "STACK_NATS_CONFIG", default_value = "nats.conf")]
    pub nats_config: PathBuf,
    /// Client port of the started server.
    #[arg(long, env = "STACK_NATS_PORT", default_value_t = 4222)]
    pub nats_port: u16,
    /// Monitoring port of the started server (0: no monitoring).
    #[arg(long, env = "STACK_NATS_MONITOR_PORT", default_value_t = 8222)]
    pub nats_monitor_port: u16,
    /// When the started server's JetStream fsyncs: `always`, before each write is
    /// acknowledged (a 201 survives a power cut; nats-server 2.10 and newer), or
    /// `interval`, the server's own default (every two minutes).
    #[arg(long, env = "SHOP_NATS_SYNC", value_enum, default_value_t = nats::Sync::Always)]
    pub nats_sync: nats::Sync,
    /// Runtime state: users.db, secrets/, purchases.json, catalog.json, nats-server.log.
    #[arg(long, env = "SHOP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Threads and stream replicas, for every service the stack runs.
    #[command(flatten)]
    pub run: service_kit::runtime::RunConfig,
}

/// Starts everything, prints where it is, and stops it all when `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // Hashes, purchases, secrets and logs: the owner's alone.
    let data_dir = config.data_dir.clone();
    tokio::task::spawn_blocking(move || {
        service_kit::private::data_dir(&data_dir)
            .and_then(|()| service_kit::private::dir(&data_dir.join("jetstream")))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|made| made)
    .map_err(|err| {
        StartError::Other(format!(
            "cannot create the data directory {}: {err}",
            config.data_dir.display()
        ))
    })?;
    let passwords =
        secrets::NatsPasswords::load_or_create(&config.data_dir.join("secrets")).await?;
    let (server, nats_url) = match &config.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            let server = nats::NatsServer::start(&config, &passwords.env()).await?;
            let url = server.url();
            (Some(server), url)
        }
    };

    // Every service reads its own variables; the stack only decides where data lives.
    let mut users_config = users::Config::parse_from(["users"]);
    users_config.nats = passwords.nats_config(&nats_url, "users");
    users_config.db_path = config.data_dir.join("users.db");
    let users = users::build(users_config).await?;
    let mut auth_config = auth::Config::parse_from(["auth"]);
    auth_config.nats = passwords.nats_config(&nats_url, "auth");
    let auth = auth::build(auth_config).await?;
    let mut orders_config = orders::Config::parse_from(["orders"]);
    orders_config.nats = passwords.nats_config(&nats_url, "orders");
    orders_config.purchases_path = config.data_dir.join("purchases.json");
    orders_config.catalog_path = config.data_dir.join("catalog.json");
    let orders = orders::build(orders_config).await?;
    let mut gateway_config = gateway::Config::parse_from(["gateway"]);
    gateway_config.nats = passwords.nats_config(&nats_url, "gateway");
    gateway_config.secrets_dir = Some(config.data_dir.join("secrets"));
    if server.is_some() {
        gateway_config.nats_monitor_url = (config.nats_monitor_port != 0)
            .then(|| format!("http://127.0.0.1:{}", config.nats_monitor_port));
    }
    let gateway = gateway::build(gateway_config).await?;

    println!("The shop is running:");
    match &server {
        Some(server) => println!(
            "  nats     {nats_url}  ({}, log {})",
            match config.nats_monitor_port {
                0 => "no monitoring".to_owned(),
                port => format!("monitoring http://127.0.0.1:{port}"),
            },
            server.log_path().display()
        ),
        None => println!("  nats     {nats_url}  (not started by the stack)"),
    }
    println!(
        "  gateway  http://{}/  (the shop: open it in a browser)",
        gateway.http_addr()
    );
    println!("  auth     http://{}", auth.http_addr());
    println!("  users    http://{}", users.http_addr());
    println!("  orders   http://{}", orders.http_addr());
    println!("Press Ctrl-C to stop.");

    let stop = CancellationToken::new();
    let mut running = JoinSet::new();
    for service in [gateway, auth, users, orders] {
        running.spawn(service.run_until_stopped(stop.clone().cancelled_owned()));
    }

    let mut result = Ok(());
    tokio::select! {
        () = shutdown => tracing::info!("stopping"),
        Some(ended) = running.join_next() => {
            result = flatten(ended);
            tracing::error!("a service stopped on its own; stopping the rest");
        }
    }
    stop.cancel();
    while let Some(ended) = running.join_next().await {
        result = result.and(flatten(ended));
    }
    if let Some(server) = server {
        server.stop().await;
    }
    println!("The shop has stopped.");
    result
}

fn flatten(
    ended: Result<Result<(), StartError>, tokio::task::JoinError>,
) -> Result<(), StartError> {
    ended.map_err(|err| StartError::Other(format!("a service panicked: {err}")))?
}
