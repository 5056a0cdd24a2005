//! `jobwire token`: a signed token for a tenant (or, with `--worker`, for a
//! remote worker; with `--operator`, for the operators' view), with the secret the server uses (`JOBWIRE_JWT_SECRET`, or the one the embedded mode keeps beside its
//! database).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use jobwire_runtime::{EmbeddedArgs, JwtArgs, Secret};
use jobwire_store::StoreUrl;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").args(["worker", "operator"])))]
#[command(mut_arg("jwt_secret", |arg| arg.help(
    "The API's HS256 secret, 32 bytes or more. Unset: the one the embedded mode keeps in \
     <db file>.secret (see --db-file and --database-url)"
)))]
pub struct Args {
    /// The tenant the token grants access to. With --worker: a tenant whose jobs the worker may
    /// take (repeat it for more; none: every tenant).
    #[arg(long, required_unless_present_any = ["worker", "operator"])]
    tenant: Vec<String>,
    /// A worker token (`role: worker`) for the /v1/worker/ routes, instead of a tenant's.
    #[arg(long, conflicts_with = "operator")]
    worker: bool,
    /// An operator token (`role: operator`) for the operators' routes (`GET /v1/tenants`: every
    /// tenant's queued, running and scheduled jobs), instead of a tenant's. It reads no tenant's
    /// jobs.
    #[arg(long, conflicts_with = "tenant")]
    operator: bool,
    /// With --worker: a job type the worker may take (repeat it for more; none: every type).
    #[arg(long = "type", value_name = "TYPE", requires = "worker")]
    types: Vec<String>,
    /// With --worker: the worker's name, shown in logs and counted among live workers. With
    /// --operator: the operator's name (`sub`). Default: worker, or operator.
    #[arg(long, requires = "role")]
    name: Option<String>,
    /// How long the token is valid (e.g. 30m, 1h, 7d); at most JOBWIRE_JWT_MAX_TTL.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    #[command(flatten)]
    jwt: JwtArgs,
    /// The all-in-one's database: with `sqlite:<file>`, the secret is read from
    /// `<file>.secret`; a Postgres URL has no secret file (set JOBWIRE_JWT_SECRET).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(flatten)]
    embedded: EmbeddedArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let tenants = args
        .tenant
        .iter()
        .map(|t| t.parse().with_context(|| format!("bad --tenant {t:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let secret = match &args.jwt.jwt_secret {
        Some(secret) => secret.clone(),
        None => embedded_secret(args.database_url.as_deref(), &args.embedded)?,
    };
    let keys = args
        .jwt
        .keys(&secret)
        .context(if args.jwt.jwt_secret.is_some() {
            "JOBWIRE_JWT_SECRET (or --jwt-secret) is refused"
        } else {
            "the embedded secret file's JWT secret is refused"
        })?;
    let token = if args.worker {
        let types = args
            .types
            .iter()
            .map(|t| t.parse().with_context(|| format!("bad --type {t:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        keys.issue_worker(
            args.name.as_deref().unwrap_or("worker"),
            &tenants,
            &types,
            args.ttl,
        )
    } else if args.operator {
        keys.issue_operator(args.name.as_deref().unwrap_or("operator"), args.ttl)
    } else {
        let [tenant] = tenants.as_slice() else {
            anyhow::bail!("a tenant's token is for one tenant: give --tenant once");
        };
        keys.issue(tenant, args.ttl)
    }
    .context("--ttl is over JOBWIRE_JWT_MAX_TTL (or --jwt-max-ttl)")?;
    println!("{token}");
    Ok(())
}

/// The secret the all-in-one keeps beside its SQLite file, found the way the
/// all-in-one finds its database; never created here (a new one would sign
/// tokens the server refuses).
fn embedded_secret(database_url: Option<&str>, embedded: &EmbeddedArgs) -> anyhow::Result<Secret> {
    let sqlite = match database_url.map(StoreUrl::parse) {
        None => embedded.db_file.clone(),
        Some(Ok(StoreUrl::Sqlite(path))) => path.to_owned(),
        Some(Ok(StoreUrl::Postgres(_))) => anyhow::bail!(
            "no JWT secret: DATABASE_URL is Postgres, which keeps none; set JOBWIRE_JWT_SECRET \
             (or --jwt-secret) to the API's secret"
        ),
        Some(Err(unsupported)) => return Err(unsupported.into()),
    };
    anyhow::ensure!(
        sqlite != ":memory:",
        "no JWT secret: an in-memory database keeps none; set JOBWIRE_JWT_SECRET (or \
         --jwt-secret) to the API's secret"
    );
    let path = PathBuf::from(format!("{sqlite}.secret"));
    jobwire_runtime::read_secret(&path)?.with_context(|| {
        format!(
            "no JWT secret: JOBWIRE_JWT_SECRET (or --jwt-secret) is unset and {} does not \
             exist; set JOBWIRE_JWT_SECRET to the API's secret, or JOBWIRE_DB_FILE (or \
             --db-file) to the database of the embedded jobwire whose secret to use",
            path.display()
        )
    })
}
