//! Serving a micro endpoint: decode the request, call the domain, encode the result.
//!
//! Every service's NATS door is a list of [`endpoint`] calls, so decoding rules, error
//! headers, request ids and metrics are the same everywhere.

use std::{future::Future, time::Instant};

use async_nats::service::{self, error::Error as MicroError};
use futures_util::StreamExt;
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{ErrorReply, MAX_BODY_BYTES, REQUEST_ID_HEADER, metrics::Metrics};

/// Decodes a bus request body. An empty body counts as `{}`, so that
/// `nats req orders.articles ''` works.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ErrorReply> {
    if payload.len() > MAX_BODY_BYTES {
        return Err(ErrorReply::new(
            crate::ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let payload: &[u8] = if payload.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        payload
    };
    serde_json::from_slice(payload)
        .map_err(|err| ErrorReply::bad_request(format!("the request body is not valid: {err}")))
}

/// Answers every request of `endpoint` with `handler`, each in its own task tracked by
/// `tasks`, until the service is stopped.
pub async fn endpoint<Req, Rep, F, Fut>(
    mut endpoint: service::endpoint::Endpoint,
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
        let request_id = request
            .message
            .headers
            .as_ref()
            .and_then(|h| h.get(REQUEST_ID_HEADER))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let span = tracing::info_span!("bus", op, request_id = %request_id);
        tasks.spawn(
            async move {
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
                tracing::debug!(status, "answered");
                let reply = reply.map_err(|err| MicroError {
                    status: err.message,
                    code: usize::from(err.code.as_u16()),
                });
                if let Err(err) = request.respond(reply).await {
                    tracing::warn!(%err, "could not send the reply");
                }
                metrics.record("nats", op, status, started.elapsed());
            }
            .instrument(span),
        );
    }
}
