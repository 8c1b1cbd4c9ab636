//! Serving a micro service: decode each request, call the domain, encode the result.
//!
//! Every service's NATS door is a [`MicroService`] with one [`MicroService::add`] per
//! subject, so decoding rules, error headers, request ids and metrics are the same
//! everywhere.

use std::{future::Future, time::Instant};

use async_nats::{
    Client,
    service::{self, ServiceExt, error::Error as MicroError},
};
use futures_util::StreamExt;
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use bus_schema::{ErrorReply, MAX_BODY_BYTES, REQUEST_ID_HEADER};

use crate::{metrics::Metrics, runtime::StartError};

/// A registered micro service whose endpoints run in tasks of one tracker, so that
/// shutdown can wait for the requests in flight.
#[derive(Debug)]
pub struct MicroService {
    name: &'static str,
    service: service::Service,
    metrics: Metrics,
    tasks: TaskTracker,
}

impl MicroService {
    /// Registers `name` (with the crate `version`) on the bus.
    pub async fn start(
        nats: &Client,
        name: &'static str,
        version: &str,
        description: &str,
        metrics: Metrics,
    ) -> Result<Self, StartError> {
        let service = nats
            .service_builder()
            .description(description)
            .start(name, version)
            .await
            .map_err(|err| StartError::Service {
                service: name,
                reason: err.to_string(),
            })?;
        Ok(Self {
            name,
            service,
            metrics,
            tasks: TaskTracker::new(),
        })
    }

    /// Answers `subject` with `handler`; the endpoint is named after the subject's last
    /// token (`users.verify` -> `verify`).
    pub async fn add<Req, Rep, F, Fut>(
        &self,
        subject: &'static str,
        handler: F,
    ) -> Result<(), StartError>
    where
        Req: DeserializeOwned + Send + 'static,
        Rep: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Rep, ErrorReply>> + Send + 'static,
    {
        let op = subject.rsplit('.').next().unwrap_or(subject);
        let endpoint = self
            .service
            .endpoint_builder()
            .name(op)
            .add(subject)
            .await
            .map_err(|err| StartError::Service {
                service: self.name,
                reason: format!("endpoint {subject}: {err}"),
            })?;
        self.tasks.spawn(endpoint_loop(
            endpoint,
            self.name,
            op,
            self.metrics.clone(),
            self.tasks.clone(),
            handler,
        ));
        Ok(())
    }

    /// Stops taking requests and waits for those in flight to be answered.
    pub async fn stop(self) {
        if let Err(err) = self.service.stop().await {
            tracing::warn!(%err, "stopping the {} micro service", self.name);
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

tokio::task_local! {
    /// The token of the bus request being served (its `Authorization: Bearer` header).
    static BEARER: Option<String>;
}

/// The token the bus request being served carries in its `Authorization: Bearer <token>`
/// header ([`bus_schema::auth::AUTHORIZATION_HEADER`]), if any.
pub fn bearer() -> Option<String> {
    BEARER.try_with(Clone::clone).ok().flatten()
}

/// Decodes a bus request body. An empty body counts as `{}`, so that
/// `nats req orders.articles ''` works.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ErrorReply> {
    if payload.len() > MAX_BODY_BYTES {
        let mut err = ErrorReply::new(
            bus_schema::ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        );
        err.limit = u64::try_from(MAX_BODY_BYTES).ok();
        return Err(err);
    }
    let payload: &[u8] = if payload.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        payload
    };
    bus_schema::error::require_object(payload)?;
    serde_json::from_slice(payload).map_err(|err| {
        ErrorReply::bad_request(format!("the request body is not valid: {err}"))
            .because(bus_schema::Reason::MalformedBody)
    })
}

/// Answers every request of `endpoint` with `handler`, each in its own task tracked by
/// `tasks`, until the service is stopped.
async fn endpoint_loop<Req, Rep, F, Fut>(
    mut endpoint: service::endpoint::Endpoint,
    service: &'static str,
    op: &'static str,
    metrics: Metrics,
    tasks: TaskTracker,
    handler: F,
) where
    Req: DeserializeOwned + Send + 'static,
    Rep: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Rep, ErrorReply>> + Send + 'static,
{
    while let Some(request) = endpoint.next().await {
        let handler = handler.clone();
        let metrics = metrics.clone();
        let request_id = crate::request_id::from_header(
            request
                .message
                .headers
                .as_ref()
                .and_then(|h| h.get(REQUEST_ID_HEADER))
                .map(|v| v.as_str()),
        );
        let bearer = request
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(bus_schema::auth::AUTHORIZATION_HEADER))
            .and_then(|v| {
                let (scheme, token) = v.as_str().trim().split_once(' ')?;
                let token = token.trim();
                (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
                    .then(|| token.to_owned())
            });
        let span = tracing::info_span!("bus", service = %service, op, request_id = %request_id);
        let serve = async move {
            let started = Instant::now();
            let result = match decode::<Req>(&request.message.payload) {
                Ok(req) => handler(req).await,
                Err(err) => Err(err),
            };
            let reply = result.and_then(|rep| {
                serde_json::to_vec(&rep)
                    .map(Into::into)
                    .map_err(|err| ErrorReply::internal(&err))
            });
            let status = match &reply {
                Ok(_) => 200,
                Err(err) => err.code.as_u16(),
            };
            tracing::debug!(
                status,
                elapsed_us = started.elapsed().as_micros(),
                "answered"
            );
            let mut headers = async_nats::HeaderMap::new();
            let reply = reply.map_err(|err| {
                headers.insert(bus_schema::error::REASON_HEADER, err.reason.as_str());
                if let Some(limit) = err.limit {
                    headers.insert(bus_schema::error::LIMIT_HEADER, limit.to_string().as_str());
                }
                if let Some(secs) = err.retry_after {
                    headers.insert(
                        bus_schema::error::RETRY_AFTER_HEADER,
                        secs.to_string().as_str(),
                    );
                }
                MicroError {
                    status: err.message,
                    code: usize::from(err.code.as_u16()),
                }
            });
            if let Err(err) = request.respond_with_headers(reply, headers).await {
                tracing::warn!(%err, "could not send the reply");
            }
            metrics.record("nats", op, status, started.elapsed());
        };
        tasks.spawn(BEARER.scope(
            bearer,
            crate::request_id::scope(request_id, serve.instrument(span)),
        ));
    }
}
