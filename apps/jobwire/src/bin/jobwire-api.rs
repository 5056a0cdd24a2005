//! `jobwire-api`: the HTTP and WebSocket API, holding this instance's one
//! `job_updates` subscriber. Run any number of them against one Postgres and Redis.

use anyhow::Context;
use clap::Parser;
use jobwire_runtime::{ApiArgs, BackendArgs, Backends, LogArgs, RetryArgs, Role};

/// jobwire's HTTP and WebSocket API.
#[derive(Debug, Parser)]
#[command(
    name = "jobwire-api",
    version,
    // Optional for the all-in-one `jobwire`, which shares these flags; not here.
    mut_arg("jwt_secret", |arg| arg.help(
        "HS256 secret that signs and verifies tokens, 32 bytes or more. Required: every API \
         instance must share it"
    ))
)]
struct Cli {
    #[command(flatten)]
    backends: BackendArgs,
    #[command(flatten)]
    api: ApiArgs,
    /// How remote workers' failed attempts are retried (as the workers' own).
    #[command(flatten)]
    retry: RetryArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = jobwire_runtime::init_tracing(&cli.log, "jobwire-api")?;
    // Served on the API's listener at /metrics.
    jobwire_runtime::install_metrics(Role::Api)?;
    let shutdown = jobwire_runtime::shutdown_on_signal();
    let secret = cli.api.jwt.jwt_secret.as_ref().context(
        "set JOBWIRE_JWT_SECRET (or --jwt-secret): every API instance must share one secret",
    )?;
    let keys = cli
        .api
        .jwt
        .keys(secret)
        .context("JOBWIRE_JWT_SECRET (or --jwt-secret) is refused")?;
    let plan = cli.backends.plan_shared("jobwire-api")?;
    let backends = Backends::connect(&plan, &cli.backends).await?;
    let listener = jobwire_runtime::bind(cli.api.addr).await?;
    println!("jobwire-api listening on http://{}", listener.local_addr()?);
    let retry = cli.retry.policy();
    // Remote workers have no maintenance loop of their own: the API keeps
    // their lapsed leases, due retries and lost IDs seen to.
    let housekeeping = tokio::spawn(jobwire_runtime::housekeep(
        backends.clone(),
        retry,
        shutdown.clone(),
    ));
    let served =
        jobwire_runtime::run_api(listener, backends, &cli.api, keys, retry, shutdown.clone()).await;
    shutdown.cancel();
    housekeeping.await?;
    served
}
