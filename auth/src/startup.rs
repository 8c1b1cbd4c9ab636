//! Building the auth service: key, bus and HTTP doors.

use std::time::Duration;

use service_kit::{
    metrics::Metrics,
    runtime::{self, Doors, StartError, Workers},
    throttle::Throttle,
};

use crate::{
    Config, bus,
    domain::{Auth, keys::SigningKey, tokens::Tokens},
    http,
};

/// An auth service that is built (key loaded, bus joined, port bound) and ready to run
/// with [`Doors::run_until_stopped`].
pub type App = Doors;

/// Loads or creates the key, joins NATS, registers the micro service and binds the
/// HTTP port.
pub async fn build(config: Config) -> Result<App, StartError> {
    let key = SigningKey::load(config.jwt_secret.as_ref(), &config.secrets_dir)
        .await
        .map_err(StartError::Other)?;
    let tokens = Tokens::new(
        &key,
        config.token_ttl_secs,
        config.clock_leeway_secs,
        &config.issuer,
    );
    let listener = runtime::bind(config.http_addr, "--http-addr / AUTH_HTTP_ADDR").await?;
    let nats = runtime::connect(&config.nats, "auth").await?;
    let throttle = std::sync::Arc::new(Throttle::new(
        config.max_failed_logins,
        Duration::from_secs(config.failed_login_window_secs),
    ));
    throttle
        .share(&nats, bus_schema::auth::subject::LOGIN_THROTTLE.to_owned())
        .await
        .map_err(|err| StartError::Other(format!("cannot share the login throttle: {err}")))?;
    let core = Auth::new(nats.clone(), tokens, throttle);
    let metrics = Metrics::new("auth");
    let micro = bus::start(&nats, core.clone(), metrics.clone()).await?;
    let router = http::router(http::HttpState {
        core,
        nats: nats.clone(),
        metrics,
        logins: service_kit::slots::Queues::new(
            http::MAX_LOGINS_IN_FLIGHT_PER_ADDRESS,
            http::LOGIN_WAIT,
        ),
    });
    Ok(Doors {
        name: "auth",
        listener,
        router,
        nats,
        micro: Some(micro),
        workers: Workers::default(),
    })
}
