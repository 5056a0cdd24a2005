use std::net::SocketAddr;

use anyhow::Context;
use jobwire_broker::{Broker, Outbox};
use jobwire_server::{AppState, JwtKeys};
use jobwire_store::{PgStore, SqliteStore, Store};
use jobwire_worker::{Registry, RetryPolicy, Worker, WorkerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{ApiArgs, BackendArgs, Plan, WorkerArgs};

/// A connected store and broker.
#[derive(Debug, Clone)]
pub struct Backends {
    pub store: Store,
    pub broker: Broker,
}

impl Backends {
    /// Connects the engines of `plan` (creating and migrating the database if needed).
    pub async fn connect(plan: &Plan, args: &BackendArgs) -> anyhow::Result<Self> {
        match plan {
            Plan::Embedded { sqlite } => Ok(Self {
                store: Store::Sqlite(SqliteStore::open(sqlite).await?),
                broker: Broker::memory(),
            }),
            Plan::Shared {
                database_url,
                redis_url,
            } => Ok(Self {
                store: Store::Postgres(
                    PgStore::connect(database_url, args.db_max_connections).await?,
                ),
                broker: Broker::redis(redis_url, &args.prefix).await?,
            }),
        }
    }

    /// For a process that owns every worker (embedded mode), at startup: jobs
    /// left `running` by a crash are queued again, and every queued job is
    /// handed to the (empty, in-process) queue. Returns how many were queued.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let requeued = self.store.requeue_running().await?;
        let queued = self.store.queued().await?;
        let mut outbox = Outbox::announcing(&requeued);
        // Every queued job is queued once: the requeued ones are among them.
        outbox.queue = queued.clone();
        self.broker.send(outbox).await?;
        if !queued.is_empty() {
            tracing::info!(
                queued = queued.len(),
                interrupted = requeued.len(),
                "re-queued unfinished jobs"
            );
        }
        Ok(queued.len())
    }
}

/// Binds the API's address, saying which one when it cannot.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (in use? set JOBWIRE_ADDR)"))
}

/// Serves the API on `listener` until `shutdown`.
pub async fn run_api(
    listener: TcpListener,
    backends: Backends,
    api: &ApiArgs,
    keys: JwtKeys,
    retry: RetryPolicy,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let failpoint = api
        .failpoint
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let scrape = crate::exporter::scrape(&backends, crate::exporter::Sampled::WithTenantBuckets);
    let mut limits = api.limits();
    limits.quotas = api.quotas()?;
    let state = AppState::new(
        backends.store,
        backends.broker,
        keys,
        limits,
        api.ws(),
        shutdown.clone(),
        failpoint,
    )
    .with_retry(retry);
    if let Some(scrape) = scrape {
        state.set_scrape(scrape);
    }
    jobwire_server::serve(listener, state, shutdown)
        .await
        .context("the HTTP server failed")
}

/// Runs a worker with `registry` until `shutdown`, then lets running jobs finish.
pub async fn run_worker(
    backends: Backends,
    worker: &WorkerArgs,
    registry: Registry,
    shutdown: CancellationToken,
) {
    Worker::new(backends.store, backends.broker, registry, worker.config())
        .run(shutdown)
        .await;
}

/// Sees to lapsed leases, due retries and lost IDs until `shutdown`,
/// running no jobs (see [`Worker::housekeep`]).
pub async fn housekeep(backends: Backends, retry: RetryPolicy, shutdown: CancellationToken) {
    let config = WorkerConfig {
        retry,
        ..WorkerConfig::default()
    };
    Worker::new(backends.store, backends.broker, Registry::new(), config)
        .housekeep(shutdown)
        .await;
}

/// The API and a worker pool in one process, under one shutdown token.
pub async fn run_all(
    listener: TcpListener,
    backends: Backends,
    api: &ApiArgs,
    keys: JwtKeys,
    worker: &WorkerArgs,
    registry: Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let worker_task = run_worker(backends.clone(), worker, registry, shutdown.clone());
    let api_task = async {
        let retry = worker.retry.policy();
        let result = run_api(listener, backends, api, keys, retry, shutdown.clone()).await;
        // An API that failed takes the workers down with it.
        shutdown.cancel();
        result
    };
    let (api_result, ()) = tokio::join!(api_task, worker_task);
    api_result
}

/// A token that fires on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        fire.cancel();
    });
    token
}
