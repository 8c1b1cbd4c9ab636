//! Building the orders service: catalogue, journal (repaired and converted when need
//! be), stream and consumer, then both doors.

use std::{sync::Arc, time::Instant};

use service_kit::{
    error::StartError,
    metrics::Metrics,
    runtime::{self, Doors, Workers},
};

use crate::{
    Config, bus,
    domain::catalog::Catalog,
    events::{appender::Appender, stream},
    http,
    service::Orders,
    store::{
        flask,
        history::{self, Followed},
        journal,
    },
};

/// An orders service that is built and ready to run with [`Doors::run_until_stopped`].
pub type App = Doors;

/// Loads the catalogue, opens `purchases.json` and its index (repairing a cut-short last
/// line, moving a Flask-format file aside, reading only what the index lacks), joins NATS, sets up the stream and the appender, converts
/// the original's purchases if any, then registers the micro service and binds HTTP.
pub async fn build(config: Config) -> Result<App, StartError> {
    let started = Instant::now();
    let catalog = Catalog::load(&config.catalog_path)
        .await
        .map_err(StartError::Other)?;

    let path = config.purchases_path.clone();
    let (converting, opened) = tokio::task::spawn_blocking(move || {
        let converting = flask::take_over(&path)?;
        Ok::<_, String>((converting, history::open(&path)?))
    })
    .await
    .map_err(|err| StartError::Other(err.to_string()))?
    .map_err(StartError::Other)?;
    let history::Opened {
        index,
        followed: Followed {
            journal,
            repair,
            read,
        },
        rebuilt,
    } = opened;
    if let Some(repair) = repair {
        tracing::warn!(
            file = %journal.path().display(),
            lines = ?repair.lines,
            removed_bytes = repair.removed_bytes,
            kept_in = %journal::damaged_path(journal.path()).display(),
            "took lines that are not events out of the purchases file; their events are written again from the stream"
        );
    }
    if rebuilt {
        tracing::warn!(
            index = %index.path().display(),
            "the history index was not of this purchases.json (the file missing, replaced or cut back since); built it again from the file"
        );
    }
    tracing::info!(
        purchases = index.len(),
        read_from_file = read,
        elapsed_ms = started.elapsed().as_millis(),
        "opened the purchase history"
    );
    let positions = index.positions();

    let listener = runtime::bind(config.http_addr, "--http-addr / ORDERS_HTTP_ADDR").await?;
    let nats = runtime::connect(&config.nats, "orders").await?;
    let js = async_nats::jetstream::new(nats.clone());
    let stream =
        runtime::retry_at_start("the ORDERS stream", &config.nats, || stream::ensure(&js)).await?;
    stream::retire_legacy_consumer(&stream).await;
    let verifier = service_kit::tokens::Verifier::follow(&config.tokens, &nats);
    let core =
        Orders::new(catalog, Arc::new(index), js.clone(), verifier.clone()).map_err(|err| {
            StartError::Other(format!("cannot start the index's reader threads: {err}"))
        })?;
    core.read_at_start(read);
    let metrics = Metrics::new("orders");
    let mut appender = Appender::new(
        core.clone(),
        journal,
        nats.clone(),
        metrics.tracer().cloned(),
    );
    let last = appender
        .start(&stream, &positions)
        .await
        .map_err(StartError::Other)?;
    let workers = Workers::default();
    workers.tasks.spawn(appender.run(workers.stop.clone()));
    // Nothing is answered from a file that is behind the stream.
    core.written_up_to(last).await;

    if let Some(converting) = converting {
        flask::convert(&core, converting, &config.purchases_path)
            .await
            .map_err(StartError::Other)?;
    }

    verifier.ready_before_serving().await;
    let micro = bus::start(&nats, core.clone(), metrics.clone()).await?;
    let router = http::router(http::HttpState {
        core,
        nats: nats.clone(),
        metrics,
    });
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "orders service ready"
    );
    runtime::subscribed(&nats, "orders").await?;
    Ok(Doors {
        name: "orders",
        listener,
        router,
        nats,
        micro: Some(micro),
        workers,
    })
}
