//! The conventions of every HTTP door: the `{"error": "..."}` body, a JSON extractor
//! whose rejections are such bodies, the Bearer-token [`Caller`], request metrics, and
//! the fallback routes.

use std::time::Instant;

use axum::{
    Json,
    extract::{
        FromRef, FromRequest, FromRequestParts, MatchedPath, Request, State,
        rejection::JsonRejection,
    },
    http::{HeaderMap, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use opentelemetry::{KeyValue, trace::SpanBuilder};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use bus_schema::{ErrorCode, ErrorReply, Reason};

use crate::metrics::Metrics;

/// A failure answered over HTTP: its status, `{"error": "..."}` and `Retry-After` when it
/// has one. Every error that becomes an [`ErrorReply`] (a service's own error enum, a
/// [`bus_schema::CallError`]) converts into it with `?`, so a handler returns
/// `Result<_, HttpError>`.
#[derive(Debug)]
pub struct HttpError(pub ErrorReply);

impl<E: Into<ErrorReply>> From<E> for HttpError {
    fn from(err: E) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let Self(reply) = self;
        let status =
            StatusCode::from_u16(reply.code.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body =
            serde_json::json!({ "error": reply.message, "reason": reply.reason.as_str() });
        if let Some(limit) = reply.limit {
            body["limit"] = limit.into();
        }
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = reply.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON body that answers a bad request with a 4xx `{"error"}` body that says what is
/// wrong: 415 for another content type, 413 when too large, 400 when not valid.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_content = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !json_content {
            return Err(not_json().into());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ErrorReply::bad_request(rejection.body_text()).because(Reason::MalformedBody)
                }
            })?;
        bus_schema::error::require_object(&bytes)?;
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection).into()),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ErrorReply {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => not_json(),
        rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        // Syntax and data errors, and a body that could not be read: the client's fault.
        rejection => ErrorReply::bad_request(rejection.body_text()).because(Reason::MalformedBody),
    }
}

fn not_json() -> ErrorReply {
    ErrorReply::new(
        ErrorCode::UnsupportedMediaType,
        "send the body as JSON with the header Content-Type: application/json",
    )
}

fn too_large() -> ErrorReply {
    let mut err = ErrorReply::new(
        ErrorCode::PayloadTooLarge,
        format!(
            "the request body is larger than {} bytes",
            bus_schema::MAX_BODY_BYTES
        ),
    );
    err.limit = u64::try_from(bus_schema::MAX_BODY_BYTES).ok();
    err
}

/// The value of the `Idempotency-Key` header, if any; 400 when it is not ASCII (the
/// service checks the rest of the rule).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ErrorReply> {
    headers
        .get(bus_schema::orders::IDEMPOTENCY_KEY_HEADER)
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                ErrorReply::bad_request("the Idempotency-Key header must be ASCII")
                    .because(Reason::IdempotencyKeyInvalid)
            })
        })
        .transpose()
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The caller of a request, proven by a Bearer token checked here, with the keys auth
/// publishes ([`crate::tokens::Verifier`]): no bus call.
///
/// Rejects with 401 without a token or with a bad or revoked one, and with 503 while
/// the keys are not loaded yet.
#[derive(Clone, PartialEq, Eq)]
pub struct Caller {
    /// The normalised username from the token.
    pub username: String,
    /// The token itself, for calls made on the caller's behalf.
    pub token: String,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl<S> FromRequestParts<S> for Caller
where
    crate::tokens::Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)
            .ok_or(crate::tokens::TokenError::Required)
            .map_err(crate::tokens::TokenError::reply)?;
        let verified = crate::tokens::Verifier::from_ref(state)
            .verify(token)
            .await
            .map_err(crate::tokens::TokenError::reply)?;
        Ok(Self {
            username: verified.username,
            token: token.to_owned(),
        })
    }
}

/// Answers 503 when a request takes longer than [`REQUEST_TIMEOUT`].
pub async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError(ErrorReply::new(
            ErrorCode::Unavailable,
            "the request took too long and was stopped; try again",
        ))
        .into_response(),
    }
}

/// Routes whose requests make no span: probes and scrapes, asked every few seconds,
/// would fill the traces with nothing.
const UNTRACED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

thread_local! {
    /// The `"<method> <route>"` of the request being recorded, written into one buffer
    /// per thread instead of a new string per request.
    static OPERATION: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Middleware of every HTTP door: takes the request's `X-Request-Id` (or makes one),
/// serves the request inside a span and a request-id scope (so its log lines and bus
/// calls carry the id), returns the id in the reply, and records the request in
/// `metrics` under its route.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = request.method().clone();
    let id = crate::request_id::from_header(
        request
            .headers()
            .get(bus_schema::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let span = tracing::info_span!(
        "http",
        service = %metrics.service(),
        %method,
        route = %route,
        request_id = %id
    );
    let traced = metrics
        .tracer()
        .filter(|_| !UNTRACED.contains(&route))
        .map(|tracer| {
            let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
            crate::trace::serve(
                tracer,
                header(bus_schema::trace::TRACEPARENT),
                header(bus_schema::trace::TRACESTATE),
                SpanBuilder::from_name(format!("{method} {route}")).with_attributes([
                    KeyValue::new("http.request.method", method.to_string()),
                    KeyValue::new("http.route", route.to_owned()),
                    KeyValue::new("url.path", request.uri().path().to_owned()),
                    KeyValue::new("shop.request_id", id.clone()),
                ]),
            )
        });
    let work = bus_schema::trace::within(traced.as_ref(), next.run(request));
    let mut response = crate::request_id::scope(id.clone(), work.instrument(span.clone())).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics.slowest().offer(elapsed, status, || {
        (
            format!("{method} {route}"),
            id.clone(),
            traced.as_ref().map(bus_schema::trace::Span::trace_id),
        )
    });
    if let Some(traced) = traced {
        crate::trace::answered(&traced, "http.response.status_code", status, None);
        traced.end();
    }
    span.in_scope(|| tracing::debug!(status, elapsed_us = elapsed.as_micros(), "answered"));
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(bus_schema::REQUEST_ID_HEADER, value);
    }
    OPERATION.with_borrow_mut(|op| {
        use std::fmt::Write as _;
        op.clear();
        let _ = write!(op, "{method} {route}");
        metrics.record("http", op, status, elapsed);
    });
    response
}

/// `GET /metrics` body for a service with no gauges of its own.
pub fn metrics_response(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A service's `routes` (with `/healthz` from [`crate::openapi::finish`]) and what every HTTP door has: JSON answers for
/// unknown paths and methods, the body limit, and request metrics.
pub fn with_common_routes<S>(routes: axum::Router<S>, metrics: Metrics) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    harden(
        routes
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed),
        metrics,
    )
}

/// How long one request may take, body upload included, before it is answered 503: a
/// client that sends its body slowly is cut off.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The limits every HTTP door wears: the body limit, the request time limit, request
/// metrics, and `Cache-Control: no-store` on every answer that does not say otherwise
/// (tokens, histories and personal pages must not stay in a cache; the gateway's
/// stylesheet and script say they may).
pub fn harden<S>(routes: axum::Router<S>, metrics: Metrics) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            ),
        )
        .layer(axum::extract::DefaultBodyLimit::max(
            bus_schema::MAX_BODY_BYTES,
        ))
        .layer(axum::middleware::from_fn(time_limit))
        .layer(axum::middleware::from_fn_with_state(metrics, track))
}

/// The client's IP address as the accept loop recorded it (`unknown` without one).
pub fn client_address(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string())
}

/// A login's turn among the logins in flight from its client's address: behind that
/// address's own only (the password hashers are shared by everyone), 429 when it waited
/// too long.
pub async fn login_turn(
    logins: &std::sync::Arc<crate::slots::Queues>,
    extensions: &axum::http::Extensions,
) -> Result<crate::slots::Turn, ErrorReply> {
    logins
        .turn(&client_address(extensions))
        .await
        .ok_or_else(|| {
            ErrorReply::too_many(
                "too many logins in progress from your address; try again",
                1,
            )
        })
}

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The answer for a path that no route matches.
pub async fn not_found() -> HttpError {
    HttpError(ErrorReply::not_found(
        "no such endpoint; see the README for the list",
    ))
}

/// The answer for a known path with the wrong method.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({
            "error": "this endpoint does not accept that method",
            "reason": Reason::MethodNotAllowed.as_str(),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().expect("header value"));
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("BEARER abc")), Some("abc"));
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_no_token() {
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&headers("Bearer   ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
