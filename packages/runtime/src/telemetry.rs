//! Logs on stderr, as text for people or as JSON lines for a log pipeline,
//! and (with the `otlp` feature) spans exported over OTLP.
//!
//! A JSON line is one object: `timestamp`, `level`, `target`, `span` (the
//! innermost span's name), the fields of every span it happens in, and its
//! own fields (`message` among them). Spans carry what a line is about: the
//! API's `request` span its `request_id` (and `tenant`, and the job a route
//! answered about), the worker's `attempt` span `job_id`, `tenant`,
//! `attempt` and `job_type`; so a line needs to say none of these itself.

use std::fmt;
use std::io::IsTerminal;

use clap::ValueEnum;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::LogArgs;

/// How log lines are written: `Text`, for people, has each line's span
/// fields before its message; `Json` is one object per line, with its span
/// fields flattened into it. (No doc comment on the variants: `--help` lists
/// the values on one line, and the flag's own help says what they are.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Keeps the telemetry running; dropping it flushes the spans not yet
/// exported (with the `otlp` feature). Hold it until the process ends.
#[must_use = "dropping it stops the export of spans"]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(tracer) = self.tracer.take()
            && let Err(e) = tracer.shutdown()
        {
            eprintln!("cannot flush the spans not yet exported: {e}");
        }
    }
}

/// Logs to stderr in `log`'s format; `RUST_LOG` overrides the default level
/// (`info`). `service` names the process in exported spans.
pub fn init_tracing(log: &LogArgs, service: &'static str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let lines = match log.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // RUST_LOG filters the lines only: spans are exported whatever it says.
    let registry = tracing_subscriber::registry().with(lines.with_filter(filter));
    #[cfg(feature = "otlp")]
    {
        let (layer, tracer) = match &log.otlp_endpoint {
            Some(endpoint) => {
                let (layer, tracer) = crate::otlp::layer(endpoint, service)?;
                (Some(layer), Some(tracer))
            }
            None => (None, None),
        };
        registry.with(layer).init();
        Ok(Telemetry { tracer })
    }
    #[cfg(not(feature = "otlp"))]
    {
        registry.init();
        let _ = service;
        if std::env::var_os("JOBWIRE_OTLP_ENDPOINT").is_some() {
            tracing::warn!(
                "JOBWIRE_OTLP_ENDPOINT is set, but this jobwire was built without the `otlp` \
                 feature: no spans are exported (build with `--features otlp`)"
            );
        }
        Ok(Telemetry {})
    }
}

/// The JSON line format described in the module's documentation.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::String(metadata.level().to_string()));
        line.insert("target".into(), Value::String(metadata.target().to_owned()));
        if let Some(scope) = ctx.event_scope() {
            // Outermost first, so that an inner span's field wins over an outer one's.
            for span in scope.from_root() {
                line.insert("span".into(), Value::String(span.name().to_owned()));
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                // JsonFields wrote them as one JSON object (nothing, for a span without fields).
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Puts an event's fields into a JSON line.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails right there")]

    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn a_json_line_holds_its_spans_fields_inner_ones_winning() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields::new())
                .event_format(FlatJson)
                .with_writer(captured.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("request", request_id = "r-1", tenant = "acme");
            let _outer = outer.enter();
            let inner = tracing::info_span!("attempt", tenant = "beta", attempt = 2);
            let _inner = inner.enter();
            tracing::warn!(error = %"boom", n = 3, "attempt failed");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "attempt failed");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["tenant"], "beta");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["error"], "boom");
        assert_eq!(line["n"], 3);
        assert_eq!(line["span"], "attempt");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(text.lines().count(), 1, "one line per event: {text}");
    }
}
