//! Span export over OTLP/HTTP (protobuf), for the `otlp` feature: the API's
//! `request` spans and the worker's `attempt` spans become OpenTelemetry
//! spans, sent in batches from a thread of the exporter's own, so that a
//! slow collector slows no request or job.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The layer that turns spans into OpenTelemetry spans for the collector at
/// `endpoint` (its base URL: `/v1/traces` is added), and the provider that
/// flushes them when shut down. `service` is the `service.name` resource.
pub(crate) fn layer<S>(
    endpoint: &str,
    service: &'static str,
) -> anyhow::Result<(impl Layer<S>, SdkTracerProvider)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(&url)
        .build()
        .with_context(|| format!("JOBWIRE_OTLP_ENDPOINT: cannot export spans to {url}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer("jobwire");
    // jobwire's own spans and the events in them (as span events), at info
    // and up, whatever RUST_LOG says of the log lines; not the libraries'
    // (sqlx would add every query to every span). A target matches by
    // prefix: `jobwire_server`, `jobwire_worker` and `jobwire::access` too.
    let exported = Targets::new().with_target("jobwire", Level::INFO);
    Ok((
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(exported),
        provider,
    ))
}
