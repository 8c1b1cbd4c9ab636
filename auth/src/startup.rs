//! Building the auth service: the verifier (keys and revocations from the streams), a
//! first signing key, the bus and HTTP doors.

use std::{sync::Arc, time::Duration};

use service_kit::{
    error::StartError,
    metrics::Metrics,
    runtime::{self, Doors, Workers},
    throttle::Throttle,
    tokens::Verifier,
};

use crate::{
    Config, bus,
    domain::{Auth, keys::KeyRing, tokens::Tokens},
    http,
};

/// An auth service that is built (key published, bus joined, port bound) and ready to
/// run with [`Doors::run_until_stopped`].
pub type App = Doors;

/// Joins NATS, follows the keys and revocations, makes and publishes a signing key,
/// registers the micro service and binds the HTTP port.
pub async fn build(config: Config) -> Result<App, StartError> {
    let listener = runtime::bind(config.http_addr, "--http-addr / AUTH_HTTP_ADDR").await?;
    let nats = runtime::connect(&config.nats, "auth").await?;
    let verifier = Verifier::follow(&config.tokens, &nats);
    let js = async_nats::jetstream::new(nats.clone());
    let keys = runtime::retry_at_start("the keys streams", &config.nats, || {
        let own = verifier.clone();
        KeyRing::start(
            js.clone(),
            Duration::from_secs(config.key_rotation_secs.max(1)),
            Duration::from_secs(config.token_ttl_secs),
            Duration::from_secs(config.tokens.leeway_secs),
            move |jwk| {
                if let Err(err) = own.add_key(jwk) {
                    tracing::error!(%err, "BUG: our own public key is refused");
                }
            },
        )
    })
    .await?;
    // Every key and revocation there is, before the first token is checked.
    if !verifier.loaded(runtime::STREAMS_AT_START).await {
        return Err(StartError::Other(
            "cannot read the keys and revocations streams".to_owned(),
        ));
    }
    let workers = Workers::default();
    workers
        .tasks
        .spawn(Arc::clone(&keys).rotate_every_period(workers.stop.clone()));
    let tokens = Tokens::new(keys, config.token_ttl_secs, &config.tokens.issuer);
    let throttle = Arc::new(Throttle::new(
        config.max_failed_logins,
        Duration::from_secs(config.failed_login_window_secs),
    ));
    throttle
        .share(&nats, bus_schema::auth::subject::LOGIN_THROTTLE.to_owned())
        .await
        .map_err(|err| StartError::Other(format!("cannot share the login throttle: {err}")))?;
    let core = Auth::new(nats.clone(), tokens, verifier, throttle);
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
    runtime::subscribed(&nats, "auth").await?;
    Ok(Doors {
        name: "auth",
        listener,
        router,
        nats,
        micro: Some(micro),
        workers,
    })
}
