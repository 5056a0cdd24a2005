//! `jobwire-worker`: pops and runs jobs with the built-in handlers. Run any
//! number of them against one Postgres and Redis.

use clap::Parser;
use jobwire_runtime::{BackendArgs, Backends, LogArgs, WorkerArgs};

/// jobwire's worker: pops job IDs, runs their handlers, publishes every change.
#[derive(Debug, Parser)]
#[command(name = "jobwire-worker", version)]
struct Cli {
    #[command(flatten)]
    backends: BackendArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = jobwire_runtime::init_tracing(&cli.log, "jobwire-worker")?;
    let shutdown = jobwire_runtime::shutdown_on_signal();
    let plan = cli.backends.plan_shared("jobwire-worker")?;
    let backends = Backends::connect(&plan, &cli.backends).await?;
    let registry = cli.worker.registry();
    jobwire_runtime::run_worker(backends, &cli.worker, registry, shutdown).await;
    Ok(())
}
