//! Building the users service: the accounts stream and this instance's view of it,
//! the hasher, the bus and HTTP doors.

use std::sync::Arc;

use service_kit::{
    error::StartError,
    metrics::Metrics,
    runtime::{self, Doors, Workers},
    throttle::Throttle,
};

use crate::{
    Config,
    accounts::{self, Accounts},
    bus,
    hasher::Hasher,
    http,
    service::Users,
    store::{self, Store},
};

/// A users service that is built (view current, bus joined, port bound) and ready to
/// run with [`Doors::run_until_stopped`].
pub type App = Doors;

/// Joins NATS, imports an earlier version's database, brings the view up to the
/// accounts stream (seeding the demo accounts in a new shop), registers the micro
/// service and binds the HTTP port.
pub async fn build(config: Config) -> Result<App, StartError> {
    let failed =
        |what: &str, err: &dyn std::fmt::Display| StartError::Other(format!("{what}: {err}"));
    let listener = runtime::bind(config.http_addr, "--http-addr / USERS_HTTP_ADDR").await?;
    let hasher = Hasher::new(config.hash_concurrency)
        .await
        .map_err(|err| StartError::Other(err.to_string()))?;
    let nats = runtime::connect(&config.nats, "users").await?;
    let js = async_nats::jetstream::new(nats.clone());
    runtime::retry_at_start("the accounts stream", &config.nats, || {
        accounts::ensure(&js)
    })
    .await?;
    runtime::retry_at_start("the sign-ups stream", &config.nats, || {
        accounts::ensure_events(&js)
    })
    .await?;
    let legacy = store::read_legacy(&config.db_path)
        .await
        .map_err(|err| failed("cannot read the user database", &err))?;
    let throttle = Arc::new(Throttle::new(
        config.max_failed_verifies,
        std::time::Duration::from_secs(config.failed_verify_window_secs),
    ));
    throttle
        .share(
            &nats,
            bus_schema::users::subject::VERIFY_THROTTLE.to_owned(),
        )
        .await
        .map_err(|err| failed("cannot share the password check throttle", &err))?;

    // The view opens only once an earlier database at its path is in the stream.
    if let Some(rows) = legacy {
        let found = rows.len();
        let (imported, present) = accounts::import(&js, rows)
            .await
            .map_err(|err| failed("cannot import the earlier user database", &err))?;
        let moved_to = store::retire_legacy(&config.db_path)
            .await
            .map_err(|err| failed("cannot move the imported database aside", &err))?;
        tracing::info!(
            found,
            imported,
            already_there = present,
            kept_in = %moved_to.display(),
            "imported the accounts of an earlier user database into the accounts stream"
        );
    }
    let store = Store::open(&config.db_path).await.map_err(|err| {
        StartError::Other(format!(
            "cannot open the user database {}: {}",
            config.db_path.display(),
            bus_schema::error::ErrorChain(&err)
        ))
    })?;
    let accounts = Accounts::new(js, store);
    // A cluster that has just made the stream may take a moment to answer for it.
    runtime::retry_at_start("the accounts stream", &config.nats, || accounts.start()).await?;
    let workers = Workers::default();
    workers
        .tasks
        .spawn(accounts.clone().follow(workers.stop.clone()));
    let core = Users::new(accounts, hasher, throttle);
    runtime::retry_at_start("users.db", &config.nats, || async {
        core.accounts()
            .catch_up()
            .await
            .map_err(|err| err.to_string())
    })
    .await?;
    if !config.no_demo_accounts {
        runtime::retry_at_start("the demo accounts", &config.nats, || async {
            core.seed_demo_accounts()
                .await
                .map_err(|err| format!("cannot create the demo accounts: {err}"))
        })
        .await?;
    }
    tracing::info!(
        accounts_at = core.accounts().applied(),
        "users.db is current with the accounts stream"
    );

    let core = core.with_events(nats.clone());
    let metrics = Metrics::new("users");
    let micro = bus::start(&nats, core.clone(), metrics.clone()).await?;
    let router = http::router(http::HttpState {
        core,
        nats: nats.clone(),
        metrics,
    });
    runtime::subscribed(&nats, "users").await?;
    Ok(Doors {
        name: "users",
        listener,
        router,
        nats,
        micro: Some(micro),
        workers,
    })
}
