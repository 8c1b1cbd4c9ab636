//! The NATS door: the micro service `users` with one endpoint per operation.

use async_nats::{
    Client,
    service::{Service, ServiceExt},
};
use bus_schema::{
    ErrorReply,
    metrics::Metrics,
    runtime::StartError,
    serve,
    users::{self, CreateRequest, GetRequest, VerifyRequest},
};
use tokio_util::task::TaskTracker;

use crate::domain::Users;

/// Registers the `users` micro service and answers its endpoints until it is stopped.
pub async fn start(
    nats: &Client,
    core: Users,
    metrics: Metrics,
    tasks: TaskTracker,
) -> Result<Service, StartError> {
    let service = nats
        .service_builder()
        .description("User accounts and password checks")
        .start(users::SERVICE, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|err| StartError::Service {
            service: users::SERVICE,
            reason: err.to_string(),
        })?;
    let add = |subject: &'static str| {
        let name = subject.rsplit('.').next().unwrap_or(subject);
        service.endpoint_builder().name(name).add(subject)
    };
    let failed = |err: async_nats::Error| StartError::Service {
        service: users::SERVICE,
        reason: err.to_string(),
    };

    let create = add(users::subject::CREATE).await.map_err(failed)?;
    let verify = add(users::subject::VERIFY).await.map_err(failed)?;
    let get = add(users::subject::GET).await.map_err(failed)?;

    let c = core.clone();
    tasks.spawn(serve::endpoint(
        create,
        "create",
        metrics.clone(),
        tasks.clone(),
        move |req: CreateRequest| {
            let core = c.clone();
            async move { core.create(req).await.map_err(ErrorReply::from) }
        },
    ));
    let c = core.clone();
    tasks.spawn(serve::endpoint(
        verify,
        "verify",
        metrics.clone(),
        tasks.clone(),
        move |req: VerifyRequest| {
            let core = c.clone();
            async move { core.verify(req).await.map_err(ErrorReply::from) }
        },
    ));
    tasks.spawn(serve::endpoint(
        get,
        "get",
        metrics,
        tasks.clone(),
        move |req: GetRequest| {
            let core = core.clone();
            async move { core.get(req).await.map_err(ErrorReply::from) }
        },
    ));
    Ok(service)
}
