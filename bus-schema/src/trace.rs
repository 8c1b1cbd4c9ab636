//! Traces across the bus: the W3C trace context (`traceparent`, `tracestate`) that every
//! request and event carries in its NATS headers, and the spans made around the work.
//!
//! A span is made only inside the OpenTelemetry context of a traced request, which holds
//! the tracer of the service doing the work ([`ServiceTracer`]); the service kit puts it
//! there when tracing is on. With tracing off (the default) no context holds a tracer,
//! [`start`] returns `None` without building anything, and no header is added.

use std::{borrow::Cow, future::Future, sync::Arc};

use async_nats::HeaderMap;
use futures_util::future::Either;
use opentelemetry::{
    Context, KeyValue,
    global::BoxedTracer,
    trace::{
        FutureExt as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _,
        TraceFlags, TraceId, TraceState, Tracer as _,
    },
};

/// The W3C header naming the trace and the caller's span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header with vendors' trace state, passed on as received.
pub const TRACESTATE: &str = "tracestate";
/// The longest `tracestate` passed on (the W3C specification's 512 characters).
const MAX_TRACESTATE_BYTES: usize = 512;

/// The tracer of one service (its spans are exported under its name), kept in the
/// context of every request the service works on.
#[derive(Clone)]
pub struct ServiceTracer(Arc<BoxedTracer>);

impl ServiceTracer {
    pub fn new(tracer: BoxedTracer) -> Self {
        Self(Arc::new(tracer))
    }
}

impl std::fmt::Debug for ServiceTracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceTracer")
    }
}

/// A span being recorded, and the context in which it is the current span.
#[derive(Debug, Clone)]
pub struct Span {
    cx: Context,
}

impl Span {
    /// The context to run the span's work in, or to link to.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Adds an attribute.
    pub fn set(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    /// Marks the span failed: `error.type` is the stable reason, `message` the status
    /// description.
    pub fn fail(
        &self,
        error_type: impl Into<opentelemetry::Value>,
        message: impl Into<Cow<'static, str>>,
    ) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", error_type));
        span.set_status(Status::error(message));
    }

    /// Ends the span now.
    pub fn end(self) {
        self.cx.span().end();
    }

    /// The trace's id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// Writes this span's context into `headers`, so that the work the message causes
    /// is part of the same trace.
    pub fn inject(&self, headers: &mut HeaderMap) {
        for (name, value) in self.headers() {
            headers.insert(name, value.as_str());
        }
    }

    /// The headers [`Self::inject`] writes: `traceparent`, and `tracestate` when the
    /// trace has a state.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let span = self.cx.span();
        let context = span.span_context();
        if !context.is_valid() {
            return Vec::new();
        }
        let mut headers = vec![(TRACEPARENT, traceparent(context))];
        let state = context.trace_state().header();
        if !state.is_empty() {
            headers.push((TRACESTATE, state));
        }
        headers
    }
}

/// The `traceparent` value of a span context: version 00, trace id, span id, flags.
pub fn traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// Starts the span `build` describes as a child of the current context, if the current
/// work is traced; `build` runs only then.
pub fn start(build: impl FnOnce() -> SpanBuilder) -> Option<Span> {
    Context::map_current(|cx| {
        let tracer = cx.get::<ServiceTracer>()?;
        Some(start_in(tracer, cx, build()))
    })
}

/// Starts `builder`'s span under `parent` (a remote context, or an empty one for a new
/// trace), recorded by `tracer`, which the span's context keeps for its children.
pub fn start_in(tracer: &ServiceTracer, parent: &Context, builder: SpanBuilder) -> Span {
    let span = tracer.0.build_with_context(builder, parent);
    Span {
        cx: parent.with_value(tracer.clone()).with_span(span),
    }
}

/// Runs `work` with `span` as the current span (its own spans and bus calls become the
/// span's children); without a span, runs it as it is.
pub fn within<F: Future>(span: Option<&Span>, work: F) -> impl Future<Output = F::Output> {
    match span {
        Some(span) => Either::Left(work.with_context(span.cx.clone())),
        None => Either::Right(work),
    }
}

/// Starts the span of a message published to `destination` (the fixed part of its
/// subject) when the current work is traced; its [`Span::headers`] go with the message.
pub fn publishing(destination: &'static str) -> Option<Span> {
    start(|| {
        SpanBuilder::from_name(format!("publish {destination}"))
            .with_kind(SpanKind::Producer)
            .with_attributes(messaging("publish", "send", destination))
    })
}

/// Ends the span of a publish, failed when the publish was not confirmed.
pub fn published<T, E: std::fmt::Display>(span: Option<Span>, result: &Result<T, E>) {
    if let Some(span) = span {
        if let Err(err) = result {
            span.fail("not_published", err.to_string());
        }
        span.end();
    }
}

/// Runs `work` in the span `build` describes when the current work is traced (its
/// own spans and calls become the span's children), failed as `error_type` if it
/// returns an error.
pub async fn traced<T, E: std::fmt::Display>(
    build: impl FnOnce() -> SpanBuilder,
    error_type: &'static str,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let Some(span) = start(build) else {
        return work.await;
    };
    let done = work.with_context(span.cx.clone()).await;
    if let Err(err) = &done {
        span.fail(error_type, err.to_string());
    }
    span.end();
    done
}

/// The remote parent that `traceparent` and `tracestate` name, as received in a
/// request's or a message's headers; an empty context (a new trace) when there is none
/// or it is malformed, as the W3C specification asks.
pub fn remote_parent(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    match traceparent.and_then(|value| parse_traceparent(value, tracestate)) {
        Some(remote) => Context::new().with_remote_span_context(remote),
        None => Context::new(),
    }
}

/// The remote parent in a NATS message's headers ([`remote_parent`]).
pub fn remote_parent_of(headers: Option<&HeaderMap>) -> Context {
    let get = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    remote_parent(get(TRACEPARENT), get(TRACESTATE))
}

/// Reads a `traceparent` value: `version-traceid-spanid-flags`, lowercase hex, ids not
/// all zero, version `ff` invalid; a future version may add fields after the flags.
fn parse_traceparent(value: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, span_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !hex(trace_id, 32) || !hex(span_id, 16) || !hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let span_id = SpanId::from_hex(span_id).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8();
    // A state longer than the specification asks vendors to pass on is dropped rather
    // than carried on every further request.
    let state = tracestate
        .filter(|s| s.len() <= MAX_TRACESTATE_BYTES)
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        state,
    ))
}

/// The attributes of a span about one NATS message (OpenTelemetry's messaging
/// conventions): the system, the operation and where the message goes.
pub fn messaging(
    operation: &'static str,
    kind: &'static str,
    destination: impl Into<opentelemetry::Value>,
) -> [KeyValue; 4] {
    [
        KeyValue::new("messaging.system", "nats"),
        KeyValue::new("messaging.operation.name", operation),
        KeyValue::new("messaging.operation.type", kind),
        KeyValue::new("messaging.destination.name", destination),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_read_as_the_w3c_specification_says() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = parse_traceparent(good, Some("congo=t61rcWkgMzE")).expect("valid");
        assert_eq!(
            parsed.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parsed.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parsed.is_sampled() && parsed.is_remote());
        assert_eq!(parsed.trace_state().get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(traceparent(&parsed), good);
        let long = format!("a={}", "b".repeat(600));
        let parsed = parse_traceparent(good, Some(&long)).expect("valid");
        assert_eq!(
            parsed.trace_state().header(),
            "",
            "a 600-byte state was kept"
        );
        // A later version may add fields; version 00 may not.
        assert!(parse_traceparent(&format!("cc{}-what-ever", &good[2..]), None).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(
                parse_traceparent(bad, None).is_none(),
                "{bad:?} was accepted"
            );
            assert!(
                !remote_parent(Some(bad), None).has_active_span(),
                "{bad:?} made a parent"
            );
        }
    }

    #[test]
    fn nothing_is_traced_outside_a_traced_context() {
        let mut built = false;
        let span = start(|| {
            built = true;
            SpanBuilder::from_name("never")
        });
        assert!(span.is_none());
        assert!(!built, "the span's description was built with tracing off");
    }
}
