//! The NATS door: the micro service `orders`. The bus is trusted: the username is a
//! field of the request (the gateway checked the token).

use async_nats::Client;
use bus_schema::{
    ErrorReply,
    orders::{self, ArticlesRequest, BuyRequest, PurchasesRequest},
};
use service_kit::{metrics::Metrics, runtime::StartError, serve::MicroService};

use crate::service::Orders;

/// Registers the `orders` micro service and answers its endpoints until it is stopped.
pub async fn start(
    nats: &Client,
    core: Orders,
    metrics: Metrics,
) -> Result<MicroService, StartError> {
    let micro = MicroService::start(
        nats,
        orders::SERVICE,
        env!("CARGO_PKG_VERSION"),
        "Catalogue, purchases and purchase history",
        metrics,
    )
    .await?;
    let c = core.clone();
    micro
        .add(orders::subject::ARTICLES, move |_: ArticlesRequest| {
            std::future::ready(Ok::<_, ErrorReply>(c.articles()))
        })
        .await?;
    let c = core.clone();
    micro
        .add(orders::subject::PURCHASES, move |req: PurchasesRequest| {
            let c = c.clone();
            async move { c.purchases(&req).await.map_err(ErrorReply::from) }
        })
        .await?;
    micro
        .add(orders::subject::BUY, move |req: BuyRequest| {
            let core = core.clone();
            async move { core.buy(req).await.map_err(ErrorReply::from) }
        })
        .await?;
    Ok(micro)
}
