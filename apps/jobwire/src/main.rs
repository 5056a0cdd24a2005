//! `jobwire`: the all-in-one (API and a worker pool in one process), plus
//! small subcommands for operators.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jobwire_runtime::{ApiArgs, BackendArgs, Backends, EmbeddedArgs, Plan, Secret, WorkerArgs};
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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a signed token for a tenant.
    Token {
        /// The tenant the token grants access to.
        #[arg(long)]
        tenant: String,
        /// How long the token is valid (e.g. 30m, 1h, 7d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The API's HS256 secret (32 bytes or more).
        #[arg(long, env = "JOBWIRE_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Secret,
    },
    /// Apply the database migrations and exit.
    Migrate {
        /// The database to migrate: a Postgres URL or `sqlite:<file>`. Unset: the
        /// embedded SQLite file (--db-file).
        #[arg(long, env = "DATABASE_URL")]
        database_url: Option<String>,
        #[command(flatten)]
        embedded: EmbeddedArgs,
    },
}

/// Lifetime of the development token printed at startup.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token {
            tenant,
            ttl,
            jwt_secret,
        }) => {
            let tenant = tenant.parse().context("bad --tenant")?;
            let keys = jwt_secret
                .keys()
                .context("JOBWIRE_JWT_SECRET (or --jwt-secret) is refused")?;
            println!("{}", keys.issue(&tenant, ttl));
            Ok(())
        }
        Some(Command::Migrate {
            database_url,
            embedded,
        }) => {
            jobwire_runtime::init_tracing();
            let url = database_url.unwrap_or_else(|| format!("sqlite:{}", embedded.db_file));
            let store = Store::connect(&url, 1).await?;
            println!("migrations applied to {}", store.describe());
            Ok(())
        }
        None => serve(cli.backends, &cli.embedded, cli.api, cli.worker).await,
    }
}

async fn serve(
    backends: BackendArgs,
    embedded: &EmbeddedArgs,
    api: ApiArgs,
    worker: WorkerArgs,
) -> anyhow::Result<()> {
    jobwire_runtime::init_tracing();
    let shutdown = jobwire_runtime::shutdown_on_signal();
    let plan = backends.plan_all_in_one(embedded)?;
    let keys = match (&api.jwt_secret, &plan) {
        (Some(secret), _) => secret
            .keys()
            .context("JOBWIRE_JWT_SECRET (or --jwt-secret) is refused")?,
        (None, Plan::Embedded { sqlite }) if sqlite != ":memory:" => {
            let path = PathBuf::from(format!("{sqlite}.secret"));
            jobwire_runtime::load_or_create_secret(&path)?
                .keys()
                .with_context(|| format!("the JWT secret kept in {} is refused", path.display()))?
        }
        (None, _) => {
            tracing::warn!(
                "JOBWIRE_JWT_SECRET is unset: using a random secret; tokens stop working on restart"
            );
            Secret::from(format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ))
            .keys()
            .context("a random secret of 64 hex digits is long enough")?
        }
    };
    let connected = Backends::connect(&plan, &backends).await?;
    if matches!(plan, Plan::Embedded { .. }) {
        // This process owns every worker: whatever was running died with the last one.
        connected.recover().await?;
    }
    let listener = jobwire_runtime::bind(api.addr).await?;
    println!("jobwire listening on http://{}", listener.local_addr()?);
    println!("  store:  {}", connected.store.describe());
    println!("  broker: {}", connected.broker.describe());
    // A token to try the embedded mode right away; never against Postgres and
    // Redis, a production setup, where tokens come from `jobwire token`.
    if matches!(plan, Plan::Embedded { .. }) {
        let dev_tenant = "dev".parse().context("the dev tenant name is valid")?;
        println!(
            "  dev token (tenant \"dev\", 24h): {}",
            keys.issue(&dev_tenant, DEV_TOKEN_TTL)
        );
    }
    jobwire_runtime::run_all(
        listener,
        connected,
        &api,
        keys,
        &worker,
        worker.registry(),
        shutdown,
    )
    .await
}
