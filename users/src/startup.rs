//! Building the users service and running it until it is told to stop.

use std::{future::Future, net::SocketAddr};

use async_nats::{Client, service::Service};
use bus_schema::{metrics::Metrics, runtime, runtime::StartError};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    Config, bus,
    domain::{Users, hasher::Hasher, store::Store},
    http,
};

/// A users service that is built (database open, bus joined, port bound) and ready to
/// run.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    nats: Client,
    service: Service,
    tasks: TaskTracker,
}

impl App {
    /// Opens the database (seeding the demo accounts when new), joins NATS, registers
    /// the micro service and binds the HTTP port.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let store = Store::open(&config.db_path).await.map_err(|err| {
            StartError::Other(format!(
                "cannot open the user database {}: {}",
                config.db_path.display(),
                bus_schema::error::ErrorChain(&err)
            ))
        })?;
        let hasher = Hasher::new(config.hash_concurrency)
            .await
            .map_err(|err| StartError::Other(err.to_string()))?;
        let core = Users::new(store, hasher);
        if !config.no_demo_accounts {
            core.seed_demo_accounts().await.map_err(|err| {
                StartError::Other(format!("cannot create the demo accounts: {err}"))
            })?;
        }

        let listener = runtime::bind(config.http_addr, "--http-addr / USERS_HTTP_ADDR").await?;
        let nats = runtime::connect(&config.nats_url, "users").await?;
        let metrics = Metrics::new("users");
        let tasks = TaskTracker::new();
        let service = bus::start(&nats, core.clone(), metrics.clone(), tasks.clone()).await?;
        let router = http::router(http::HttpState {
            core,
            nats: nats.clone(),
            metrics,
        });
        Ok(Self {
            listener,
            router,
            nats,
            service,
            tasks,
        })
    }

    /// The address the HTTP door listens on (useful with port 0).
    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("BUG: a bound listener has an address")
    }

    /// Serves both doors until `shutdown` resolves, then stops taking requests,
    /// finishes those in flight and drains the NATS connection.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });

        let http_stop = stop.clone();
        let http = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { http_stop.cancelled().await });
        let bus = async {
            stop.cancelled().await;
            if let Err(err) = self.service.stop().await {
                tracing::warn!(%err, "stopping the micro service");
            }
            self.tasks.close();
            self.tasks.wait().await;
        };
        let (served, ()) = tokio::join!(http, bus);
        if let Err(err) = self.nats.drain().await {
            tracing::debug!(%err, "draining the NATS connection");
        }
        tracing::info!("users service stopped");
        served.map_err(|err| StartError::Other(format!("the HTTP server failed: {err}")))
    }
}
