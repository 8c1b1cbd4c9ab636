//! The request/reply primitive under every typed call: bounded in time, with failures
//! mapped to [`CallError`].

use std::time::Duration;

use async_nats::{
    Client, HeaderMap,
    client::RequestErrorKind,
    service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE},
};
use opentelemetry::trace::{SpanBuilder, SpanKind};
use serde::{Serialize, de::DeserializeOwned};

use crate::{CallError, ErrorCode, ErrorReply, REQUEST_ID_HEADER};

/// How long a caller waits for a reply before the service counts as unavailable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// When a request that may be sent twice is sent again (see [`CallOptions::resend_after`]):
/// far above any normal reply (milliseconds), well below [`DEFAULT_TIMEOUT`].
pub const RESEND_AFTER: Duration = Duration::from_secs(1);
/// How many more copies such a request may be sent: the first after [`RESEND_AFTER`],
/// the others half as far apart. A queue group picks its member at random, so each copy
/// has its own chance of missing an instance that is stalled (or behind a stalled node)
/// and still counted as a member: a stalled node's subscribers stay members until the
/// other nodes drop its routes, 2 to 3 s after it stalled, and the copies after that
/// reach an instance that is there.
const RESENDS: usize = 4;
/// After a resend found no responder, how much longer the first request may still be
/// answered (by an instance that was draining, say).
const GRACE_AFTER_NO_RESPONDERS: Duration = Duration::from_millis(300);

/// Something that wants to know how each call went.
pub trait CallObserver: Send + Sync + std::fmt::Debug {
    /// `subject` was called; it ended with `status` (200, or the error's code) after
    /// `elapsed`.
    fn observe(&self, subject: &'static str, status: u16, elapsed: Duration);
}

/// Options of one call; [`Default`] is right for nearly every caller.
#[derive(Clone)]
pub struct CallOptions {
    /// Upper bound on the whole round trip.
    pub timeout: Duration,
    /// Sent as the `X-Request-Id` header so that the service logs it; by default the id
    /// of the request being served ([`crate::request_id::current`]).
    pub request_id: Option<String>,
    /// Told of every call's subject, status and time (the service kit's metrics count
    /// them as `door="bus"`), if anyone listens.
    pub observer: Option<std::sync::Arc<dyn CallObserver>>,
    /// Only for a request that may safely arrive twice (a read, a buy with an
    /// idempotency key): when no reply came within this long, the same request is sent
    /// once more, and again every half of it (four copies at most), and the first
    /// reply wins. A responder that died holding the request (killed, its machine gone) then
    /// costs this long instead of the whole timeout: the next copy reaches another or a
    /// restarted instance, or finds none and fails at once.
    pub resend_after: Option<Duration>,
    /// The token of the user the request acts for, sent as `Authorization: Bearer
    /// <token>` ([`crate::auth::AUTHORIZATION_HEADER`]).
    pub bearer: Option<String>,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            request_id: None,
            observer: None,
            resend_after: None,
            bearer: None,
        }
    }
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("timeout", &self.timeout)
            .field("request_id", &self.request_id)
            .field("resend_after", &self.resend_after)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl CallOptions {
    /// These options, acting for the user whose token this is.
    pub fn bearer(&self, token: &str) -> Self {
        Self {
            bearer: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// These options for a request that may safely be sent twice: resent after
    /// [`RESEND_AFTER`] without a reply.
    pub fn idempotent(&self) -> Self {
        Self {
            resend_after: Some(RESEND_AFTER),
            ..self.clone()
        }
    }
}

/// One JSON request to `subject`, decoded into `Rep`.
///
/// The micro error headers become [`CallError::Service`]; no responder, a timeout or a
/// lost connection become [`CallError::Unavailable`], so no caller waits longer than
/// `opts.timeout`.
pub async fn request<Req, Rep>(
    nats: &Client,
    service: &'static str,
    subject: &'static str,
    body: &Req,
    opts: &CallOptions,
) -> Result<Rep, CallError>
where
    Req: Serialize + ?Sized,
    Rep: DeserializeOwned,
{
    let payload = request_bytes(nats, service, subject, body, opts).await?;
    serde_json::from_slice(&payload).map_err(|err| CallError::BadReply {
        service,
        reason: err.to_string(),
    })
}

/// Like [`request`], but the successful reply is handed over as the service sent it
/// (JSON bytes), for a caller that only passes it on.
pub async fn request_bytes<Req>(
    nats: &Client,
    service: &'static str,
    subject: &'static str,
    body: &Req,
    opts: &CallOptions,
) -> Result<bytes::Bytes, CallError>
where
    Req: Serialize + ?Sized,
{
    request_with_headers(nats, service, subject, body, opts)
        .await
        .map(|(payload, _)| payload)
}

/// Like [`request_bytes`], with the headers of the successful reply.
pub async fn request_with_headers<Req>(
    nats: &Client,
    service: &'static str,
    subject: &'static str,
    body: &Req,
    opts: &CallOptions,
) -> Result<(bytes::Bytes, Option<HeaderMap>), CallError>
where
    Req: Serialize + ?Sized,
{
    let started = std::time::Instant::now();
    let result = round_trip(nats, service, subject, body, opts).await;
    if let Some(observer) = &opts.observer {
        let status = result
            .as_ref()
            .map_or_else(|err| err.code().as_u16(), |_| 200);
        observer.observe(subject, status, started.elapsed());
    }
    result
}

async fn round_trip<Req>(
    nats: &Client,
    service: &'static str,
    subject: &'static str,
    body: &Req,
    opts: &CallOptions,
) -> Result<(bytes::Bytes, Option<HeaderMap>), CallError>
where
    Req: Serialize + ?Sized,
{
    let payload = serde_json::to_vec(body).map_err(|err| CallError::BadReply {
        service,
        reason: format!("request could not be encoded: {err}"),
    })?;
    let payload = bytes::Bytes::from(payload);
    let request_id = opts.request_id.clone().or_else(crate::request_id::current);
    let span = crate::trace::start(|| {
        SpanBuilder::from_name(format!("request {subject}"))
            .with_kind(SpanKind::Client)
            .with_attributes(crate::trace::messaging("request", "send", subject))
    });
    let result = exchange(
        nats,
        service,
        subject,
        payload,
        request_id,
        span.as_ref(),
        opts,
    )
    .await;
    if let Some(span) = span {
        if let Err(err) = &result {
            let error_type = match err {
                CallError::Service(reply) => reply.reason.as_str(),
                CallError::Unavailable { .. } => "unavailable",
                CallError::BadReply { .. } => "bad_reply",
            };
            span.fail(error_type, err.to_string());
        }
        span.end();
    }
    result
}

/// Sends the request (and its copies, for one that may arrive twice) and waits for the
/// first reply, inside `span` when the call is traced.
async fn exchange(
    nats: &Client,
    service: &'static str,
    subject: &'static str,
    payload: bytes::Bytes,
    request_id: Option<String>,
    span: Option<&crate::trace::Span>,
    opts: &CallOptions,
) -> Result<(bytes::Bytes, Option<HeaderMap>), CallError> {
    let send = || {
        // One timer, below, for the whole call rather than one more inside the client.
        let mut request = async_nats::Request::new()
            .payload(payload.clone())
            .timeout(None);
        if request_id.is_some() || opts.bearer.is_some() || span.is_some() {
            let mut headers = HeaderMap::new();
            if let Some(span) = span {
                span.inject(&mut headers);
            }
            if let Some(id) = &request_id {
                headers.insert(REQUEST_ID_HEADER, id.as_str());
            }
            if let Some(token) = &opts.bearer {
                headers.insert(
                    crate::auth::AUTHORIZATION_HEADER,
                    format!("Bearer {token}").as_str(),
                );
            }
            request = request.headers(headers);
        }
        nats.send_request(subject, request)
    };
    let unavailable = |reason: String| CallError::Unavailable { service, reason };
    let first_reply = async {
        let first = send();
        let Some(after) = opts.resend_after else {
            return first.await;
        };
        let mut copies = futures_util::stream::FuturesUnordered::new();
        copies.push(first);
        let mut resends = tokio::time::interval_at(tokio::time::Instant::now() + after, after / 2);
        let (mut left, mut no_responders) = (RESENDS, None);
        loop {
            tokio::select! {
                Some(reply) = futures_util::StreamExt::next(&mut copies) => match reply {
                    // Nobody there now: an earlier copy may still be answered (by an
                    // instance that was draining, say), for a moment.
                    Err(err)
                        if err.kind() == RequestErrorKind::NoResponders && !copies.is_empty() =>
                    {
                        left = 0;
                        let until = tokio::time::Instant::now() + GRACE_AFTER_NO_RESPONDERS;
                        no_responders.get_or_insert((err, until));
                    }
                    reply => return reply,
                },
                _ = resends.tick(), if left > 0 => {
                    tracing::debug!(subject, "no reply yet; sending the request again");
                    copies.push(send());
                    left -= 1;
                }
                () = async {
                    match &no_responders {
                        Some((_, until)) => tokio::time::sleep_until(*until).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some((err, _)) = no_responders.take() {
                        return Err(err);
                    }
                }
            }
        }
    };
    // Covers the reply and also a connection that is stuck reconnecting and never sends
    // the request.
    let reply = tokio::time::timeout(opts.timeout, first_reply)
        .await
        .map_err(|_| unavailable("no reply in time".into()))?
        .map_err(|err| {
            unavailable(match err.kind() {
                RequestErrorKind::NoResponders => "no instance is running".into(),
                RequestErrorKind::TimedOut => "no reply in time".into(),
                _ => format!("bus error: {err}"),
            })
        })?;

    if let Some(err) = service_error(reply.headers.as_ref()) {
        return Err(CallError::Service(err));
    }
    Ok((reply.payload, reply.headers))
}

/// The error a reply carries in its micro headers, if any.
fn service_error(headers: Option<&HeaderMap>) -> Option<ErrorReply> {
    let headers = headers?;
    let code = headers.get(NATS_SERVICE_ERROR_CODE)?;
    let code = code.as_str().trim().parse::<u16>().unwrap_or(500);
    let message = headers
        .get(NATS_SERVICE_ERROR)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "the service failed without a message".to_owned());
    let code = ErrorCode::from_u16(code);
    let mut reply = ErrorReply::new(code, message);
    // A service of an older version sends no reason: the plain one of its code.
    reply.reason = headers
        .get(crate::error::REASON_HEADER)
        .and_then(|v| crate::Reason::parse(v.as_str().trim()))
        .unwrap_or(crate::Reason::of_code(code));
    reply.limit = headers
        .get(crate::error::LIMIT_HEADER)
        .and_then(|v| v.as_str().trim().parse().ok());
    reply.retry_after = headers
        .get(crate::error::RETRY_AFTER_HEADER)
        .and_then(|v| v.as_str().trim().parse().ok());
    Some(reply)
}
