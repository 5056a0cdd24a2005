//! `GET /metrics`: this process's series in the Prometheus text format, on
//! the API's own listener and without a token, like `/healthz`. The server
//! only records through the `metrics` facade; the binary that installed a
//! recorder hands the state a [`Scrape`] that renders it (and samples what
//! is read at scrape time, such as queue depths). Without one (a library
//! use, a test) the route answers 404.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// Renders the installed recorder's series, after sampling the gauges read
/// at scrape time.
#[derive(Clone)]
pub struct Scrape(Arc<dyn Fn() -> ScrapeFuture + Send + Sync>);

type ScrapeFuture = Pin<Box<dyn Future<Output = String> + Send>>;

impl Scrape {
    pub fn new<F, Fut>(render: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = String> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(render())))
    }

    /// Samples what is read at scrape time, then renders every series.
    pub async fn render(&self) -> String {
        (self.0)().await
    }
}

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let Some(scrape) = state.scrape() else {
        return ApiError::NoRoute(
            "/metrics: this process exports no metrics (only the jobwire binaries do)".into(),
        )
        .into_response();
    };
    jobwire_metrics::record_connections(state.session_limit().open_per_tenant());
    let text = scrape.render().await;
    ([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response()
}
