//! `jobwire`: the all-in-one (API and a worker pool in one process), plus
//! small subcommands for operators and for people at a terminal.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jobwire_runtime::{
    ApiArgs, BackendArgs, Backends, EmbeddedArgs, LogArgs, Plan, Role, Secret, WorkerArgs,
};
use jobwire_store::Store;

/// A real-time job service: REST in, workers out, every status change pushed over WebSocket.
#[derive(Debug, Parser)]
#[command(name = "jobwire", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    backends: BackendArgs,
    #[command(flatten)]
    embedded: EmbeddedArgs,
    #[command(flatten)]
    api: ApiArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a signed token for a tenant, a worker (--worker) or an operator (--operator), with
    /// the API's audience and issuer, if set.
    Token(cli::token::Args),
    /// Create a job and print its ID; with --wait, follow it until it ends.
    Submit(cli::submit::Args),
    /// Follow a job until it ends: a progress bar on a terminal, a line per update.
    Watch(cli::watch::Args),
    /// Print every update of the tenant's jobs as it happens, until interrupted.
    Tail(cli::tail::Args),
    /// List the tenant's jobs, newest first.
    Jobs(cli::jobs::Args),
    /// Print the API's OpenAPI document (as served at /openapi.json): `jobwire openapi > docs/openapi.json`.
    Openapi,
    /// Apply the database migrations and exit.
    Migrate {
        /// The database to migrate: a Postgres URL or `sqlite:<file>`. Unset: the
        /// embedded SQLite file (--db-file).
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        #[command(flatten)]
        embedded: EmbeddedArgs,
        #[command(flatten)]
        log: LogArgs,
    },
}

/// Lifetime of the development token printed at startup (or JOBWIRE_JWT_MAX_TTL, if shorter).
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Cli::parse();
    match args.command {
        Some(Command::Token(args)) => Ok(told(cli::token::run(args).map(|()| ExitCode::SUCCESS))),
        Some(Command::Submit(args)) => Ok(told(cli::submit::run(args).await)),
        Some(Command::Watch(args)) => Ok(told(cli::watch::run(args).await)),
        Some(Command::Tail(args)) => Ok(told(cli::tail::run(args).await)),
        Some(Command::Jobs(args)) => Ok(told(cli::jobs::run(args).await)),
        Some(Command::Openapi) => {
            print!("{}", jobwire_server::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Migrate {
            database_url,
            embedded,
            log,
        }) => {
            let _telemetry = jobwire_runtime::init_tracing(&log, "jobwire")?;
            let url = database_url.unwrap_or_else(|| format!("sqlite:{}", embedded.db_file));
            let store = Store::connect(&url, 1).await?;
            println!("migrations applied to {}", store.describe());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let _telemetry = jobwire_runtime::init_tracing(&args.log, "jobwire")?;
            serve(args.backends, &args.embedded, args.api, args.worker)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
    }
}

/// A terminal command's error on one line of stderr (its causes after
/// colons, never a backtrace) and exit code 1.
fn told(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

async fn serve(
    backends: BackendArgs,
    embedded: &EmbeddedArgs,
    api: ApiArgs,
    worker: WorkerArgs,
) -> anyhow::Result<()> {
    // The API's and the workers' series, served on the API's listener at /metrics.
    jobwire_runtime::install_metrics(Role::Both)?;
    // Before connecting: a configuration error is told at once, whatever the engines' state.
    let registry = worker.registry()?;
    let shutdown = jobwire_runtime::shutdown_on_signal();
    let plan = backends.plan_all_in_one(embedded)?;
    let keys = match (&api.jwt.jwt_secret, &plan) {
        (Some(secret), _) => api
            .jwt
            .keys(secret)
            .context("JOBWIRE_JWT_SECRET (or --jwt-secret) is refused")?,
        (None, Plan::Embedded { sqlite }) if sqlite != ":memory:" => {
            let path = PathBuf::from(format!("{sqlite}.secret"));
            let secret = jobwire_runtime::load_or_create_secret(&path)?;
            api.jwt
                .keys(&secret)
                .with_context(|| format!("the JWT secret kept in {} is refused", path.display()))?
        }
        (None, _) => {
            tracing::warn!(
                "JOBWIRE_JWT_SECRET is unset: using a random secret; tokens stop working on restart"
            );
            let secret = Secret::from(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ));
            api.jwt
                .keys(&secret)
                .context("a random secret of 64 hex digits is long enough")?
        }
    };
    let connected = Backends::connect(&plan, &backends).await?;
    if matches!(plan, Plan::Embedded { .. }) {
        // This process owns every worker: whatever was running died with the last one.
        connected.recover().await?;
    }
    let listener = jobwire_runtime::bind(api.addr).await?;
    let addr = listener.local_addr()?;
    println!("jobwire listening on http://{addr}");
    println!("  store:  {}", connected.store.describe());
    println!("  broker: {}", connected.broker.describe());
    // A token to try the embedded mode right away; never against Postgres and
    // Redis, a production setup, where tokens come from `jobwire token`.
    if matches!(plan, Plan::Embedded { .. }) {
        let dev_tenant = "dev".parse().context("the dev tenant name is valid")?;
        let ttl = keys
            .rules()
            .max_ttl
            .map_or(DEV_TOKEN_TTL, |max| max.min(DEV_TOKEN_TTL));
        let token = keys
            .issue(&dev_tenant, ttl)
            .context("the dev token lives no longer than JOBWIRE_JWT_MAX_TTL")?;
        println!(
            "  dev token (tenant \"dev\", {}): {token}",
            humantime::format_duration(ttl)
        );
        // A browser cannot open 0.0.0.0: the link names the loopback address instead.
        let host = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        println!("  dashboard: http://{host}/?token={token}");
    }
    jobwire_runtime::run_all(listener, connected, &api, keys, &worker, registry, shutdown).await
}
