use clap::{CommandFactory, FromArgMatches, Parser};
use jobwire_worker::Registry;

use crate::{BackendArgs, Backends, LogArgs, MetricsArgs, Role, WorkerArgs};

/// Every setting of a worker process; `name` replaces the command's name at run time.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "A jobwire worker: pops job IDs, runs their handlers, publishes every change."
)]
struct WorkerCli {
    #[command(flatten)]
    backends: BackendArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// The whole of a worker process, as `jobwire-worker` runs it, with the
/// handlers of `registry`: the way to ship handlers of your own in Rust.
///
/// It reads the flags and environment variables of `jobwire-worker` (so
/// `<name> --help` lists every setting: `DATABASE_URL`, `REDIS_URL`,
/// `JOBWIRE_PREFIX`, `JOBWIRE_WORKER_CONCURRENCY`, ...), logs to stderr,
/// connects to Postgres and Redis (never SQLite: a separate worker shares
/// its store with an API), serves `/metrics` on `JOBWIRE_METRICS_ADDR`, and
/// runs jobs until SIGTERM or Ctrl-C, then lets running jobs finish within
/// `JOBWIRE_SHUTDOWN_GRACE`. `name` is the program's name in `--help`,
/// in its logs and spans, and in the line it prints.
///
/// It returns once the worker has stopped; an error means it could not start
/// (bad settings, Postgres or Redis unreachable, the metrics address taken)
/// or its metrics listener failed. Call it once per process: it installs the
/// global log subscriber and metrics recorder.
///
/// Only the handlers of `registry` run: a custom worker starts from
/// [`Registry::new`], not from the built-ins.
///
/// ```no_run
/// use jobwire_worker::{JobContext, Registry};
/// use serde_json::{Value, json};
///
/// #[tokio::main]
/// async fn main() -> anyhow::Result<()> {
///     let mut registry = Registry::new();
///     registry.register("greet", |_ctx: JobContext, payload: Value| async move {
///         Ok(json!({"greeting": format!("hello, {}", payload["name"])}))
///     });
///     jobwire_runtime::worker_main("greet-worker", registry).await
/// }
/// ```
pub async fn worker_main(name: &'static str, registry: Registry) -> anyhow::Result<()> {
    let mut command = WorkerCli::command().name(name).bin_name(name);
    let matches = command.get_matches_mut();
    let cli = WorkerCli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    let _telemetry = crate::init_tracing(&cli.log, name)?;
    crate::install_metrics(Role::Worker)?;
    // Before connecting: a configuration error is told at once, whatever the engines' state.
    let registry = cli.worker.extend(registry)?;
    let shutdown = crate::shutdown_on_signal();
    let plan = cli.backends.plan_shared(name)?;
    let backends = Backends::connect(&plan, &cli.backends).await?;
    let metrics = match cli.metrics.metrics_addr.0 {
        Some(addr) => {
            let listener = crate::bind_metrics(addr).await?;
            println!(
                "{name} metrics on http://{}/metrics",
                listener.local_addr()?
            );
            let serving = crate::serve_metrics(listener, backends.clone(), shutdown.clone());
            Some(tokio::spawn(serving))
        }
        None => None,
    };
    crate::run_worker(backends, &cli.worker, registry, shutdown.clone()).await;
    // The listener stops with the worker (on a signal); a failure of its own is told.
    shutdown.cancel();
    if let Some(metrics) = metrics {
        metrics.await??;
    }
    Ok(())
}
