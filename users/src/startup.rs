//! Building the users service: database, hasher, bus and HTTP doors.

use service_kit::{
    metrics::Metrics,
    runtime::{self, Doors, StartError, Workers},
};

use crate::{Config, bus, hasher::Hasher, http, service::Users, store::Store};

/// A users service that is built (database open, bus joined, port bound) and ready to
/// run with [`Doors::run_until_stopped`].
pub type App = Doors;

/// Opens the database (seeding the demo accounts when new), joins NATS, registers the
/// micro service and binds the HTTP port.
pub async fn build(config: Config) -> Result<App, StartError> {
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
    let throttle = service_kit::throttle::Throttle::new(
        config.max_failed_verifies,
        std::time::Duration::from_secs(config.failed_verify_window_secs),
    );
    let core = Users::new(store, hasher, throttle);
    if !config.no_demo_accounts {
        core.seed_demo_accounts()
            .await
            .map_err(|err| StartError::Other(format!("cannot create the demo accounts: {err}")))?;
    }

    let listener = runtime::bind(config.http_addr, "--http-addr / USERS_HTTP_ADDR").await?;
    let nats = runtime::connect(&config.nats, "users").await?;
    let core = core.with_events(nats.clone());
    let metrics = Metrics::new("users");
    let micro = bus::start(&nats, core.clone(), metrics.clone()).await?;
    let router = http::router(http::HttpState {
        core,
        nats: nats.clone(),
        metrics,
    });
    Ok(Doors {
        name: "users",
        listener,
        router,
        nats,
        micro: Some(micro),
        workers: Workers::default(),
    })
}
