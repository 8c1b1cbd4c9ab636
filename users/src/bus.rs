//! The NATS door: the micro service `users` with one endpoint per operation.

use async_nats::Client;
use bus_schema::{
    ErrorReply,
    users::{self, CreateRequest, GetRequest, VerifyRequest},
};
use service_kit::{error::StartError, metrics::Metrics, serve::MicroService};

use crate::service::Users;

/// Registers the `users` micro service and answers its endpoints until it is stopped.
pub async fn start(
    nats: &Client,
    core: Users,
    metrics: Metrics,
) -> Result<MicroService, StartError> {
    let micro = MicroService::start(
        nats,
        users::SERVICE,
        env!("CARGO_PKG_VERSION"),
        "User accounts and password checks",
        metrics,
    )
    .await?;
    let c = core.clone();
    micro
        .add(users::subject::CREATE, move |req: CreateRequest| {
            let core = c.clone();
            async move { core.create(req).await.map_err(ErrorReply::from) }
        })
        .await?;
    let c = core.clone();
    micro
        .add(users::subject::VERIFY, move |req: VerifyRequest| {
            let core = c.clone();
            async move { core.verify(req).await.map_err(ErrorReply::from) }
        })
        .await?;
    micro
        .add(users::subject::GET, move |req: GetRequest| {
            let core = core.clone();
            async move { core.get(req).await.map_err(ErrorReply::from) }
        })
        .await?;
    Ok(micro)
}
