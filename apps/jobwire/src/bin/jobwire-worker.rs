//! `jobwire-worker`: pops and runs jobs with the built-in handlers and the
//! webhooks of `jobwire.toml`. Run any number of them against one Postgres
//! and Redis. Its metrics are on a small listener of its own
//! (`JOBWIRE_METRICS_ADDR`), since it has no API.

use clap::Parser;
use jobwire_runtime::{BackendArgs, Backends, LogArgs, MetricsArgs, Role, WorkerArgs};

/// jobwire's worker: pops job IDs, runs their handlers, publishes every change.
#[derive(Debug, Parser)]
#[command(name = "jobwire-worker", version)]
struct Cli {
    #[command(flatten)]
    backends: BackendArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = jobwire_runtime::init_tracing(&cli.log, "jobwire-worker")?;
    jobwire_runtime::install_metrics(Role::Worker)?;
    // Before connecting: a configuration error is told at once, whatever the engines' state.
    let registry = cli.worker.registry()?;
    let shutdown = jobwire_runtime::shutdown_on_signal();
    let plan = cli.backends.plan_shared("jobwire-worker")?;
    let backends = Backends::connect(&plan, &cli.backends).await?;
    let metrics = match cli.metrics.metrics_addr.0 {
        Some(addr) => {
            let listener = jobwire_runtime::bind_metrics(addr).await?;
            println!(
                "jobwire-worker metrics on http://{}/metrics",
                listener.local_addr()?
            );
            let serving =
                jobwire_runtime::serve_metrics(listener, backends.clone(), shutdown.clone());
            Some(tokio::spawn(serving))
        }
        None => None,
    };
    jobwire_runtime::run_worker(backends, &cli.worker, registry, shutdown.clone()).await;
    // The listener stops with the worker (on a signal); a failure of its own is told.
    shutdown.cancel();
    if let Some(metrics) = metrics {
        metrics.await??;
    }
    Ok(())
}
