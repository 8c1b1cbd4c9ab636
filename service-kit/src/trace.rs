//! Exporting traces with OpenTelemetry: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, then OTLP over HTTP (protobuf) to that
//! address, sampled as `OTEL_TRACES_SAMPLER` says, batched as the `OTEL_BSP_*`
//! variables say (the SDK reads them all). Each service has its own tracer provider, so
//! that its spans carry its own `service.name` even when the launcher runs all four in
//! one process. The spans themselves, and the trace context on the bus, are
//! [`bus_schema::trace`]'s.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
};

use bus_schema::trace::{ServiceTracer, Span};
use opentelemetry::{
    KeyValue,
    global::BoxedTracer,
    trace::{SpanBuilder, SpanKind, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};

/// Whether the environment asks for traces: an OTLP endpoint is given, and neither
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise.
pub fn wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| {
        std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !is("OTEL_SDK_DISABLED", "true")
        && !is("OTEL_TRACES_EXPORTER", "none")
}

/// Every service's provider made in this process, to flush at exit.
fn providers() -> &'static Mutex<HashMap<&'static str, SdkTracerProvider>> {
    static PROVIDERS: OnceLock<Mutex<HashMap<&'static str, SdkTracerProvider>>> = OnceLock::new();
    PROVIDERS.get_or_init(Mutex::default)
}

/// The tracer of `service` when traces are [`wanted`], made on first use; `None` when
/// they are not, or when the exporter cannot be built (said once in the log).
pub fn tracer(service: &'static str) -> Option<ServiceTracer> {
    if !wanted() {
        return None;
    }
    let mut providers = providers().lock().unwrap_or_else(|p| p.into_inner());
    let provider = match providers.get(service) {
        Some(provider) => provider.clone(),
        None => {
            let exporter = match opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .build()
            {
                Ok(exporter) => exporter,
                Err(err) => {
                    tracing::error!(%err, "cannot export traces; going on without them");
                    return None;
                }
            };
            let resource = Resource::builder()
                .with_service_name(service)
                .with_attributes([
                    KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                    KeyValue::new("service.instance.id", crate::random::hex(8)),
                ])
                .build();
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            providers.insert(service, provider.clone());
            tracing::info!(service, "exporting traces (OTLP over HTTP)");
            provider
        }
    };
    Some(ServiceTracer::new(BoxedTracer::new(Box::new(
        provider.tracer("shop"),
    ))))
}

/// Sends what is left of every provider's spans and stops them, all at once (a collector
/// that does not answer costs one export timeout, `OTEL_EXPORTER_OTLP_TIMEOUT`, not one
/// per service). Blocks: call it after the async runtime is done.
pub fn shutdown() {
    let providers: Vec<_> = providers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    std::thread::scope(|scope| {
        for (service, provider) in providers {
            scope.spawn(move || {
                if let Err(err) = provider.shutdown() {
                    tracing::warn!(service, %err, "could not send the last spans");
                }
            });
        }
    });
}

/// The span of one request a door serves, continuing the caller's trace when its
/// `traceparent` names one.
pub fn serve(
    tracer: &ServiceTracer,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    builder: SpanBuilder,
) -> Span {
    let parent = bus_schema::trace::remote_parent(traceparent, tracestate);
    bus_schema::trace::start_in(tracer, &parent, builder.with_kind(SpanKind::Server))
}

/// Marks `span` with the status its request was answered with (`attribute`, such as
/// `http.response.status_code`), and `reason` as its `error.type` when it failed: the
/// span is failed for a 5xx only, since a 4xx is the caller's error, not the server's
/// (OpenTelemetry's HTTP conventions).
pub fn answered(span: &Span, attribute: &'static str, status: u16, reason: Option<&'static str>) {
    span.set(KeyValue::new(attribute, i64::from(status)));
    let error_type = reason.map_or_else(|| status.to_string().into(), opentelemetry::Value::from);
    if status >= 500 {
        span.fail(error_type, format!("answered {status}"));
    } else if status >= 400 {
        span.set(KeyValue::new("error.type", error_type));
    }
}

/// The span of one SQLite statement or transaction (OpenTelemetry's database
/// conventions): `operation` (`SELECT`, `INSERT`) on `table`.
pub fn sqlite(operation: &'static str, table: &'static str) -> SpanBuilder {
    SpanBuilder::from_name(format!("{operation} {table}"))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("db.system.name", "sqlite"),
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("db.collection.name", table),
        ])
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt as _;

    use super::*;

    fn tracer() -> ServiceTracer {
        // Records and samples every span, exports none.
        let provider = SdkTracerProvider::builder().build();
        ServiceTracer::new(BoxedTracer::new(Box::new(provider.tracer("test"))))
    }

    #[tokio::test]
    async fn a_span_crosses_the_bus_in_its_headers_and_its_work_becomes_its_children() {
        let tracer = tracer();
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let served = serve(
            &tracer,
            Some(caller),
            Some("shop=1"),
            SpanBuilder::from_name("GET /x"),
        );
        assert_eq!(served.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");

        // Inside the served request, a bus call is a child, and its headers name it.
        let (call, headers) = bus_schema::trace::within(Some(&served), async {
            let call = bus_schema::trace::start(|| SpanBuilder::from_name("request x"))
                .expect("a traced request makes spans");
            let mut headers = async_nats::HeaderMap::new();
            call.inject(&mut headers);
            (call, headers)
        })
        .await;
        let sent = call.context().span().span_context().clone();
        assert_eq!(call.trace_id(), served.trace_id());
        let traceparent = headers
            .get(bus_schema::trace::TRACEPARENT)
            .expect("traceparent sent");
        assert_eq!(
            traceparent.as_str(),
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", sent.span_id())
        );
        assert_eq!(
            headers
                .get(bus_schema::trace::TRACESTATE)
                .map(|v| v.as_str().to_owned()),
            Some("shop=1".to_owned())
        );

        // The service on the other side continues it.
        let received = bus_schema::trace::remote_parent_of(Some(&headers));
        let remote = received.span().span_context().clone();
        assert_eq!(remote.trace_id(), sent.trace_id());
        assert_eq!(remote.span_id(), sent.span_id());
        assert!(remote.is_remote() && remote.is_sampled());

        // Outside any traced work, nothing is made.
        assert!(bus_schema::trace::start(|| SpanBuilder::from_name("none")).is_none());
    }
}
