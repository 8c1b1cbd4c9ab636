//! Serving a micro service: decode each request, call the domain, encode the result;
//! and answer the discovery of the NATS micro services API (ADR-32: `$SRV.PING`,
//! `$SRV.INFO`, `$SRV.STATS`) so that the `nats` CLI and the official clients of other
//! languages (nats.go, nats.py) see every instance, its endpoints and its counters.
//!
//! Every service's NATS door is a [`MicroService`] with one [`MicroService::add`] per
//! subject, so decoding rules, error headers, request ids and metrics are the same
//! everywhere. The protocol is written here rather than taken from async-nats's
//! `service` module, whose `$SRV.STATS` reply has no `metadata`, no endpoint `data` and
//! a start time in nanoseconds: nats.py cannot read it.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::{Client, HeaderMap, Subscriber};
use futures_util::StreamExt;
use opentelemetry::{KeyValue, trace::SpanBuilder};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use bus_schema::{ErrorReply, MAX_BODY_BYTES, REQUEST_ID_HEADER};

use crate::{error::StartError, metrics::Metrics};

use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use bus_schema::discovery::QUEUE_GROUP;

/// A registered micro service whose endpoints run in tasks of one tracker, so that
/// shutdown can wait for the requests in flight.
#[derive(Debug)]
pub struct MicroService {
    identity: Arc<Identity>,
    nats: Client,
    metrics: Metrics,
    tasks: TaskTracker,
    /// Stops the endpoints' and the discovery's subscriptions.
    stop: CancellationToken,
}

/// Who this instance is, and its endpoints with their counters.
#[derive(Debug)]
struct Identity {
    name: &'static str,
    id: String,
    version: String,
    description: String,
    /// RFC 3339 in UTC with microseconds, as every client parses it.
    started: String,
    endpoints: Mutex<Vec<Arc<Endpoint>>>,
}

#[derive(Debug)]
struct Endpoint {
    name: String,
    subject: String,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    requests: u64,
    errors: u64,
    last_error: String,
    processing: Duration,
}

impl Identity {
    fn ping(&self) -> serde_json::Value {
        json!({
            "type": "io.nats.micro.v1.ping_response",
            "name": self.name, "id": self.id, "version": self.version, "metadata": {},
        })
    }

    fn info(&self) -> serde_json::Value {
        let endpoints: Vec<_> = self
            .endpoints()
            .iter()
            .map(|e| json!({
                "name": e.name, "subject": e.subject, "queue_group": QUEUE_GROUP, "metadata": {},
            }))
            .collect();
        json!({
            "type": "io.nats.micro.v1.info_response",
            "name": self.name, "id": self.id, "version": self.version,
            "description": self.description, "metadata": {}, "endpoints": endpoints,
        })
    }

    fn stats(&self) -> serde_json::Value {
        let endpoints: Vec<_> = self
            .endpoints()
            .iter()
            .map(|e| {
                let c = e.counters.lock().unwrap_or_else(|p| p.into_inner());
                let total = u64::try_from(c.processing.as_nanos()).unwrap_or(u64::MAX);
                let average = total.checked_div(c.requests).unwrap_or(0);
                json!({
                    "name": e.name, "subject": e.subject, "queue_group": QUEUE_GROUP,
                    "num_requests": c.requests, "num_errors": c.errors,
                    "last_error": c.last_error, "processing_time": total,
                    // An object, as the official schema (jsm.go's
                    // micro/v1/stats_response) wants; nats.py needs the key.
                    "average_processing_time": average, "data": {},
                })
            })
            .collect();
        json!({
            "type": "io.nats.micro.v1.stats_response",
            "name": self.name, "id": self.id, "version": self.version,
            "started": self.started, "metadata": {}, "endpoints": endpoints,
        })
    }

    fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A new instance id: 22 characters of `0-9 A-Z a-z`, as nats.go's NUIDs look.
fn instance_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 22];
    getrandom::fill(&mut bytes).expect("BUG: the OS has no randomness");
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

impl MicroService {
    /// Registers `name` (with the crate `version`) on the bus: from now on it answers
    /// `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` (for all, for `name`, for its id).
    pub async fn start(
        nats: &Client,
        name: &'static str,
        version: &str,
        description: &str,
        metrics: Metrics,
    ) -> Result<Self, StartError> {
        let failed = |err: &dyn std::fmt::Display| StartError::Service {
            service: name,
            reason: err.to_string(),
        };
        let started = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .map_err(|err| failed(&err))?;
        let identity = Arc::new(Identity {
            name,
            id: instance_id(),
            version: version.to_owned(),
            description: description.to_owned(),
            started,
            endpoints: Mutex::default(),
        });
        let service = Self {
            identity,
            nats: nats.clone(),
            metrics,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        };
        for verb in ["PING", "INFO", "STATS"] {
            for subject in [
                format!("$SRV.{verb}"),
                format!("$SRV.{verb}.{name}"),
                format!("$SRV.{verb}.{name}.{}", service.identity.id),
            ] {
                let requests = nats.subscribe(subject).await.map_err(|err| failed(&err))?;
                service.tasks.spawn(discovery_loop(
                    requests,
                    verb,
                    Arc::clone(&service.identity),
                    nats.clone(),
                    service.stop.clone(),
                ));
            }
        }
        Ok(service)
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
        self.add_encoded(subject, move |req| {
            let reply = handler(req);
            async move {
                let reply = reply.await?;
                serde_json::to_vec(&reply)
                    .map(bytes::Bytes::from)
                    .map_err(|err| ErrorReply::internal(&err))
            }
        })
        .await
    }

    /// [`Self::add`] with a `handler` that answers with its reply already encoded (JSON
    /// bytes, or [`Encoded`] with headers), for a reply that is cheaper written straight
    /// from where it is kept.
    pub async fn add_encoded<Req, Rep, F, Fut>(
        &self,
        subject: &'static str,
        handler: F,
    ) -> Result<(), StartError>
    where
        Req: DeserializeOwned + Send + 'static,
        Rep: Into<Encoded> + Send + 'static,
        F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Rep, ErrorReply>> + Send + 'static,
    {
        let op = subject.rsplit('.').next().unwrap_or(subject);
        let requests = self
            .nats
            .queue_subscribe(subject, QUEUE_GROUP.to_owned())
            .await
            .map_err(|err| StartError::Service {
                service: self.identity.name,
                reason: format!("endpoint {subject}: {err}"),
            })?;
        let endpoint = Arc::new(Endpoint {
            name: op.to_owned(),
            subject: subject.to_owned(),
            counters: Mutex::default(),
        });
        self.identity
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::clone(&endpoint));
        self.tasks.spawn(endpoint_loop(
            requests,
            Served {
                service: self.identity.name,
                op,
                endpoint,
                nats: self.nats.clone(),
                metrics: self.metrics.clone(),
                tasks: self.tasks.clone(),
                stop: self.stop.clone(),
            },
            handler,
        ));
        Ok(())
    }

    /// Stops taking requests and waits for those in flight to be answered.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Answers one discovery verb until `stop`.
async fn discovery_loop(
    mut requests: Subscriber,
    verb: &'static str,
    identity: Arc<Identity>,
    nats: Client,
    stop: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => break,
            request = requests.next() => request,
        };
        let Some(request) = request else { break };
        let Some(reply) = request.reply else { continue };
        let body = match verb {
            "PING" => identity.ping(),
            "INFO" => identity.info(),
            _ => identity.stats(),
        };
        let body = serde_json::to_vec(&body).expect("BUG: discovery replies always serialise");
        if let Err(err) = nats.publish(reply, body.into()).await {
            tracing::debug!(%err, verb, "could not answer a discovery request");
        }
    }
    let _ = requests.unsubscribe().await;
}

/// What an endpoint's loop needs besides its handler.
struct Served {
    service: &'static str,
    op: &'static str,
    endpoint: Arc<Endpoint>,
    nats: Client,
    metrics: Metrics,
    tasks: TaskTracker,
    stop: CancellationToken,
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

/// A reply already encoded, and the headers it is sent with, if any.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub body: bytes::Bytes,
    pub headers: Option<HeaderMap>,
}

impl From<bytes::Bytes> for Encoded {
    fn from(body: bytes::Bytes) -> Self {
        Self {
            body,
            headers: None,
        }
    }
}

/// Answers every request of one endpoint with `handler`, each in its own task tracked
/// by `served.tasks`, until the service is stopped.
async fn endpoint_loop<Req, Rep, F, Fut>(mut requests: Subscriber, served: Served, handler: F)
where
    Req: DeserializeOwned + Send + 'static,
    Rep: Into<Encoded> + Send + 'static,
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Rep, ErrorReply>> + Send + 'static,
{
    let Served {
        service,
        op,
        endpoint,
        nats,
        metrics,
        tasks,
        stop,
    } = served;
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => break,
            request = requests.next() => request,
        };
        let Some(request) = request else { break };
        let Some(reply_to) = request.reply.clone() else {
            continue; // a publish, not a request: nobody to answer
        };
        let handler = handler.clone();
        let (metrics, nats, endpoint) = (metrics.clone(), nats.clone(), Arc::clone(&endpoint));
        let header = |name: &str| {
            request
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let request_id = crate::request_id::from_header(header(REQUEST_ID_HEADER).as_deref());
        let bearer = header(bus_schema::auth::AUTHORIZATION_HEADER).and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
        });
        let span = tracing::info_span!("bus", service = %service, op, request_id = %request_id);
        let traced = metrics.tracer().map(|tracer| {
            let subject = request.subject.as_str();
            crate::trace::serve(
                tracer,
                header(bus_schema::trace::TRACEPARENT).as_deref(),
                header(bus_schema::trace::TRACESTATE).as_deref(),
                SpanBuilder::from_name(format!("process {subject}")).with_attributes(
                    bus_schema::trace::messaging("process", "process", subject.to_owned())
                        .into_iter()
                        .chain([
                            KeyValue::new("messaging.consumer.group.name", QUEUE_GROUP),
                            KeyValue::new("shop.request_id", request_id.clone()),
                        ]),
                ),
            )
        });
        let serve = async move {
            let started = Instant::now();
            let reply = match decode::<Req>(&request.payload) {
                Ok(req) => bus_schema::trace::within(traced.as_ref(), handler(req)).await,
                Err(err) => Err(err),
            };
            let status = match &reply {
                Ok(_) => 200,
                Err(err) => err.code.as_u16(),
            };
            let elapsed = started.elapsed();
            tracing::debug!(status, elapsed_us = elapsed.as_micros(), "answered");
            if let Some(traced) = traced {
                let reason = reply.as_ref().err().map(|err| err.reason.as_str());
                crate::trace::answered(&traced, "rpc.response.status_code", status, reason);
                traced.end();
            }
            let sent = match reply.map(Into::into) {
                Ok(Encoded {
                    body,
                    headers: None,
                }) => nats.publish(reply_to, body).await,
                Ok(Encoded {
                    body,
                    headers: Some(headers),
                }) => nats.publish_with_headers(reply_to, headers, body).await,
                Err(err) => {
                    {
                        let mut counters =
                            endpoint.counters.lock().unwrap_or_else(|p| p.into_inner());
                        counters.errors += 1;
                        counters.last_error = format!("{}:{}", err.code.as_u16(), err.message);
                    }
                    nats.publish_with_headers(reply_to, error_headers(&err), bytes::Bytes::new())
                        .await
                }
            };
            if let Err(err) = sent {
                tracing::warn!(%err, "could not send the reply");
            }
            {
                let mut counters = endpoint.counters.lock().unwrap_or_else(|p| p.into_inner());
                counters.requests += 1;
                counters.processing += elapsed;
            }
            metrics.record("nats", op, status, elapsed);
        };
        tasks.spawn(BEARER.scope(
            bearer,
            crate::request_id::scope(request_id, serve.instrument(span)),
        ));
    }
    let _ = requests.unsubscribe().await;
}

/// The headers of an error reply: the micro services API's two, and the shop's reason,
/// limit and retry delay.
fn error_headers(err: &ErrorReply) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NATS_SERVICE_ERROR, err.message.as_str());
    headers.insert(
        NATS_SERVICE_ERROR_CODE,
        err.code.as_u16().to_string().as_str(),
    );
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
    headers
}
