//! `jobwire`: the all-in-one (API and a worker pool in one process), plus
//! small subcommands for operators.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jobwire_runtime::{
    ApiArgs, BackendArgs, Backends, EmbeddedArgs, JwtArgs, Plan, Secret, WorkerArgs,
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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a signed token for a tenant (with the API's audience and issuer, if set).
    #[command(mut_arg("jwt_secret", |arg| arg.help(
        "The API's HS256 secret, 32 bytes or more. Required"
    )))]
    Token {
        /// The tenant the token grants access to.
        #[arg(long)]
        tenant: String,
        /// How long the token is valid (e.g. 30m, 1h, 7d); at most JOBWIRE_JWT_MAX_TTL.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        #[command(flatten)]
        jwt: JwtArgs,
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

/// Lifetime of the development token printed at startup (or JOBWIRE_JWT_MAX_TTL, if shorter).
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token { tenant, ttl, jwt }) => {
            let tenant = tenant.parse().context("bad --tenant")?;
            let secret = jwt
                .jwt_secret
                .as_ref()
                .context("set JOBWIRE_JWT_SECRET (or --jwt-secret) to the API's secret")?;
            let keys = jwt
                .keys(secret)
                .context("JOBWIRE_JWT_SECRET (or --jwt-secret) is refused")?;
            let token = keys
                .issue(&tenant, ttl)
                .context("--ttl is over JOBWIRE_JWT_MAX_TTL (or --jwt-max-ttl)")?;
            println!("{token}");
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
    println!("jobwire listening on http://{}", listener.local_addr()?);
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
