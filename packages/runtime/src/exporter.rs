//! The Prometheus exporter, installed by the binaries only: the libraries
//! record through the `metrics` facade, and a process with no recorder (a
//! test running many apps in one process) records nothing and serves no
//! `/metrics`.
//!
//! The API serves `/metrics` on its own listener; a separate worker serves
//! it on a small listener of its own (`JOBWIRE_METRICS_ADDR`). A few gauges
//! are read when scraped, so that they cost nothing between scrapes: the
//! queue depth per priority (one `LLEN` each), the scheduled jobs past due
//! (one bounded count), the Postgres pool's connections and, on the API, the
//! unfinished jobs per tenant bucket (one grouped count).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use jobwire_core::Priority;
use jobwire_metrics::Role;
use jobwire_server::Scrape;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Backends;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets when nobody
/// scrapes, so that they do not pile up in memory.
const UPKEEP: Duration = Duration::from_secs(5);
/// Most scheduled jobs past due counted per scrape.
const MAX_DUE_COUNTED: u32 = 100_000;
/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Installs the process-wide Prometheus recorder and describes the series a
/// process in `role` exports. Call once, early in `main` (within the Tokio
/// runtime), before anything records: a handle taken before it records nothing.
pub fn install_metrics(role: Role) -> anyhow::Result<()> {
    let handle = PrometheusBuilder::new()
        .set_buckets(jobwire_metrics::BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    jobwire_metrics::describe(role);
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    HANDLE
        .set(handle)
        .map_err(|_| anyhow::anyhow!("the metrics recorder was installed twice"))
}

/// Which gauges a process reads at scrape time beyond those every process
/// reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sampled {
    /// A separate worker: the shared gauges only.
    Shared,
    /// An API (or the all-in-one): also the jobs per tenant bucket, a count
    /// over every unfinished job, read by the API alone so that a deployment
    /// of many workers does not run it once per worker and scrape.
    WithTenantBuckets,
}

/// Samples the gauges read at scrape time and renders every series; `None`
/// when this process installed no recorder.
pub(crate) fn scrape(backends: &Backends, sampled: Sampled) -> Option<Scrape> {
    let handle = HANDLE.get()?.clone();
    let backends = backends.clone();
    Some(Scrape::new(move || {
        let (handle, backends) = (handle.clone(), backends.clone());
        async move {
            sample(&backends, sampled).await;
            handle.render()
        }
    }))
}

/// Reads the gauges that are only worth reading when scraped. One that
/// cannot be read keeps its last value; the failure is counted in
/// `jobwire_store_errors_total` or `jobwire_broker_errors_total`.
async fn sample(backends: &Backends, sampled: Sampled) {
    let broker = &backends.broker;
    let buckets = async {
        match sampled {
            Sampled::WithTenantBuckets => Some(backends.store.bucket_counts().await),
            Sampled::Shared => None,
        }
    };
    let (depths, due, buckets) = tokio::join!(
        broker.queue_depths(),
        backends.store.count_due(MAX_DUE_COUNTED),
        buckets,
    );
    if let Some(Ok(buckets)) = buckets {
        let counts: Vec<[i64; 3]> = buckets
            .iter()
            .map(|b| [b.scheduled, b.queued, b.running])
            .collect();
        jobwire_metrics::record_tenant_buckets(&counts);
    }
    if let Ok(depths) = depths {
        for priority in Priority::ALL {
            let depth: usize = depths
                .iter()
                .filter(|d| d.priority == priority)
                .map(|d| d.jobs)
                .sum();
            metrics::gauge!(jobwire_metrics::QUEUE_DEPTH, "priority" => priority.as_str())
                .set(depth as f64);
        }
    }
    if let Ok(due) = due {
        metrics::gauge!(jobwire_metrics::SCHEDULED_DUE).set(due as f64);
    }
    if let Some(pool) = backends.store.pool_stats() {
        metrics::gauge!(jobwire_metrics::DB_POOL_CONNECTIONS, "state" => "busy")
            .set(f64::from(pool.busy));
        metrics::gauge!(jobwire_metrics::DB_POOL_CONNECTIONS, "state" => "idle")
            .set(f64::from(pool.idle));
        metrics::gauge!(jobwire_metrics::DB_POOL_MAX).set(f64::from(pool.max));
    }
}

/// Binds the worker's metrics listener, saying which address when it cannot.
pub async fn bind_metrics(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot serve metrics on {addr} (in use? set JOBWIRE_METRICS_ADDR to another \
             address, or to `off`)"
        )
    })
}

/// Serves `GET /metrics` (and nothing else) on `listener` until `shutdown`:
/// the worker's own small listener, since a worker has no API.
pub async fn serve_metrics(
    listener: TcpListener,
    backends: Backends,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let scrape =
        scrape(&backends, Sampled::Shared).context("install the metrics recorder first")?;
    let routes = Router::new()
        .route(
            "/metrics",
            get(move || {
                let scrape = scrape.clone();
                async move { ([(header::CONTENT_TYPE, TEXT_FORMAT)], scrape.render().await) }
            }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            jobwire_server::ApiError::NoRoute(format!(
                "{uri}: this listener serves GET /metrics only"
            ))
            .into_response()
        });
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("the metrics listener failed")
}
