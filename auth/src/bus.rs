//! The NATS door: the micro service `auth` with `auth.login`, `auth.verify` and
//! `auth.logout`.

use async_nats::Client;
use bus_schema::{
    ErrorReply,
    auth::{self, LoginRequest, LogoutRequest, VerifyRequest},
};
use service_kit::{error::StartError, metrics::Metrics, serve::MicroService};

use crate::domain::Auth;

/// Registers the `auth` micro service and answers its endpoints until it is stopped.
pub async fn start(
    nats: &Client,
    core: Auth,
    metrics: Metrics,
) -> Result<MicroService, StartError> {
    let micro = MicroService::start(
        nats,
        auth::SERVICE,
        env!("CARGO_PKG_VERSION"),
        "Logins, token verification and logouts",
        metrics,
    )
    .await?;
    let c = core.clone();
    micro
        .add(auth::subject::LOGIN, move |req: LoginRequest| {
            let core = c.clone();
            async move { core.login(req).await.map_err(ErrorReply::from) }
        })
        .await?;
    let c = core.clone();
    micro
        .add(auth::subject::VERIFY, move |req: VerifyRequest| {
            let core = c.clone();
            async move { core.verify(&req).await.map_err(ErrorReply::from) }
        })
        .await?;
    micro
        .add(auth::subject::LOGOUT, move |req: LogoutRequest| {
            let core = core.clone();
            async move { core.logout(&req).await.map_err(ErrorReply::from) }
        })
        .await?;
    Ok(micro)
}
