//! The NATS door: the micro service `orders`. A request that acts for a user
//! (`orders.purchases`, `orders.buy`) carries that user's token in its `Authorization:
//! Bearer` header, checked here: nobody on the bus buys or reads for someone else.

use async_nats::Client;
use bus_schema::{
    ErrorReply,
    orders::{self, ArticlesRequest, BuyRequest, PurchasesRequest},
};
use futures_util::TryFutureExt;
use service_kit::{
    error::StartError,
    metrics::Metrics,
    serve::{Encoded, MicroService},
};

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
        .add_encoded(orders::subject::PURCHASES, move |req: PurchasesRequest| {
            let c = c.clone();
            async move {
                c.authorize_token(service_kit::serve::bearer().as_deref(), &req.username)
                    .await?;
                let answer = c.purchases(&req).await?;
                Ok::<_, crate::error::OrdersError>(Encoded {
                    body: answer.reply,
                    headers: answer.view_next.map(|next| {
                        let mut headers = async_nats::HeaderMap::new();
                        headers.insert(orders::VIEW_NEXT_HEADER, next.to_string().as_str());
                        headers
                    }),
                })
            }
            .map_err(ErrorReply::from)
        })
        .await?;
    micro
        .add(orders::subject::BUY, move |req: BuyRequest| {
            let core = core.clone();
            async move {
                core.authorize_token(service_kit::serve::bearer().as_deref(), &req.username)
                    .await?;
                core.buy(req).await
            }
            .map_err(ErrorReply::from)
        })
        .await?;
    Ok(micro)
}
