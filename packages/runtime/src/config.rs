use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use clap::builder::TypedValueParser;
use jobwire_core::{JobType, MAX_RETAIN_FOR, MIN_RETAIN_FOR, Quota, Quotas, Retention};
use jobwire_server::{JwtKeys, KeyError, Limits, TokenRules, WsConfig};
use jobwire_store::StoreUrl;

use crate::{LogFormat, Secret};
use jobwire_worker::{Failpoint, Registry, RetryPolicy, WorkerConfig};

/// Where the data lives: the store and the broker.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Store: a Postgres URL (production) or `sqlite:<file>`. Unset: `jobwire` runs
    /// embedded on SQLite; `jobwire-api` and `jobwire-worker` use postgres://postgres@127.0.0.1:5432/jobwire.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Broker: a Redis URL. Unset: `jobwire` uses its in-process broker;
    /// `jobwire-api` and `jobwire-worker` use redis://127.0.0.1:6379.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and of the channel (empty: `job_queue:<priority>`, `job_updates`).
    #[arg(long, env = "JOBWIRE_PREFIX", default_value = "")]
    pub prefix: String,

    /// Most Postgres connections this process opens.
    #[arg(long, env = "JOBWIRE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

/// The embedded mode's SQLite file: only the all-in-one `jobwire` (and
/// `jobwire migrate`) offer it, since the separate binaries refuse SQLite.
#[derive(Debug, Clone, Args)]
pub struct EmbeddedArgs {
    /// SQLite file of the embedded mode (`:memory:` keeps nothing).
    #[arg(long, env = "JOBWIRE_DB_FILE", default_value = "./jobwire.db")]
    pub db_file: String,
}

/// The Postgres and Redis a separate API or worker process uses by default.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/jobwire";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Which engines a process will use, decided from [`BackendArgs`] before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// SQLite (a file, or `:memory:`) and the in-process broker: one process only.
    Embedded { sqlite: String },
    /// Postgres and Redis: any number of processes.
    Shared {
        database_url: String,
        redis_url: String,
    },
}

impl BackendArgs {
    /// For the all-in-one `jobwire`: embedded unless both URLs are set; a
    /// mix of one embedded and one shared engine is refused.
    pub fn plan_all_in_one(&self, embedded: &EmbeddedArgs) -> anyhow::Result<Plan> {
        let sqlite = match self.database_url.as_deref().map(StoreUrl::parse) {
            Some(Ok(StoreUrl::Sqlite(path))) => Some(path.to_owned()),
            Some(Ok(StoreUrl::Postgres(_))) | None => None,
            Some(Err(unsupported)) => return Err(unsupported.into()),
        };
        match (&self.database_url, &self.redis_url, sqlite) {
            (None, None, _) => Ok(Plan::Embedded {
                sqlite: embedded.db_file.clone(),
            }),
            (Some(_), None, Some(path)) => Ok(Plan::Embedded { sqlite: path }),
            (Some(_), Some(_), Some(_)) => anyhow::bail!(
                "DATABASE_URL is SQLite but REDIS_URL is set: SQLite is the embedded store and \
                 works with the in-process broker only. Unset REDIS_URL, or use Postgres."
            ),
            (Some(database_url), Some(redis_url), None) => Ok(Plan::Shared {
                database_url: database_url.clone(),
                redis_url: redis_url.clone(),
            }),
            (Some(_), None, None) => anyhow::bail!(
                "DATABASE_URL is set but REDIS_URL is not: set both (Postgres and Redis, the \
                 production engines) or neither (embedded SQLite and in-process broker)."
            ),
            (None, Some(_), _) => anyhow::bail!(
                "REDIS_URL is set but DATABASE_URL is not: set both (Postgres and Redis, the \
                 production engines) or neither (embedded SQLite and in-process broker)."
            ),
        }
    }

    /// For a separate `jobwire-api` or `jobwire-worker`: Postgres and Redis
    /// (local defaults), never an embedded engine, since processes must share state.
    pub fn plan_shared(&self, binary: &str) -> anyhow::Result<Plan> {
        let database_url = self
            .database_url
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if let StoreUrl::Sqlite(_) = StoreUrl::parse(&database_url)? {
            anyhow::bail!(
                "{binary} cannot use SQLite: separate API and worker processes must share one \
                 Postgres and one Redis. Set DATABASE_URL to Postgres, or run `jobwire` for the \
                 embedded single-process mode."
            );
        }
        Ok(Plan::Shared {
            database_url,
            redis_url: self
                .redis_url
                .clone()
                .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
        })
    }
}

/// The tokens: the secret that signs them and the rules they obey. The API
/// verifies with them; `jobwire token` issues with them.
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// HS256 secret that signs and verifies tokens, 32 bytes or more (all API instances share
    /// it). Unset, `jobwire` keeps one in `<db file>.secret` (embedded) or makes a random one.
    #[arg(long, env = "JOBWIRE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// The `aud` claim every token must carry (`jobwire token` puts it in). Unset: tokens
    /// carrying an `aud` are refused (RFC 7519: a recipient it does not name must refuse it).
    #[arg(long, env = "JOBWIRE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The `iss` claim every token must carry (`jobwire token` puts it in). Unset: not checked.
    #[arg(long, env = "JOBWIRE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Longest token lifetime (`exp` − `iat`, e.g. 1h, 7d): a longer token, or one without
    /// `iat`, gets 401, and `jobwire token --ttl` beyond it is refused. Unset: no limit.
    #[arg(long, env = "JOBWIRE_JWT_MAX_TTL", value_parser = humantime::parse_duration)]
    pub jwt_max_ttl: Option<Duration>,
}

impl JwtArgs {
    /// The rules of [`TokenRules`] these settings ask for.
    pub fn rules(&self) -> TokenRules {
        TokenRules {
            audience: self.jwt_audience.clone(),
            issuer: self.jwt_issuer.clone(),
            max_ttl: self.jwt_max_ttl,
        }
    }

    /// Keys that sign and verify with `secret` by these rules; a secret under
    /// [`jobwire_server::MIN_SECRET_BYTES`] is refused.
    pub fn keys(&self, secret: &Secret) -> Result<JwtKeys, KeyError> {
        Ok(JwtKeys::new(secret.as_bytes())?.with_rules(self.rules()))
    }
}

/// The HTTP and WebSocket API.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Address to listen on.
    #[arg(long, env = "JOBWIRE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub jwt: JwtArgs,

    /// Largest payload of one job, in bytes of JSON.
    #[arg(long, env = "JOBWIRE_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    pub max_payload_bytes: usize,

    /// Largest request body, in bytes (a batch carries many payloads).
    #[arg(long, env = "JOBWIRE_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most jobs in one `POST /v1/jobs/batch`.
    #[arg(long, env = "JOBWIRE_MAX_BATCH", default_value_t = 1000)]
    pub max_batch: usize,

    /// Updates queued per WebSocket client before it is dropped as too slow (close 4008).
    #[arg(long, env = "JOBWIRE_WS_QUEUE", default_value_t = 1024)]
    pub ws_queue: usize,

    /// Bytes of updates queued per WebSocket client before it is dropped as too slow (close 4008).
    #[arg(long, env = "JOBWIRE_WS_QUEUE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub ws_queue_bytes: usize,

    /// Test hook: `exit-after-commit` makes the API exit right after committing
    /// created jobs, before enqueueing them; `exit-mid-enqueue`, in the middle
    /// of enqueueing them (for fault-injection tests). Not for production, so
    /// not in `--help`.
    #[arg(long, env = "JOBWIRE_FAILPOINT", hide = true)]
    pub failpoint: Option<String>,

    /// How often WebSocket clients are pinged; silent for two intervals, they are dropped.
    #[arg(long, env = "JOBWIRE_WS_PING_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ws_ping_interval: Duration,

    /// WebSocket sessions open at once on this instance; one more is closed with 1013 (try again later).
    #[arg(long, env = "JOBWIRE_WS_MAX_SESSIONS", default_value_t = 50_000)]
    pub ws_max_sessions: usize,

    /// WebSocket sessions open at once per tenant on this instance; one more is closed with 1013.
    #[arg(
        long,
        env = "JOBWIRE_WS_MAX_SESSIONS_PER_TENANT",
        default_value_t = 10_000
    )]
    pub ws_max_sessions_per_tenant: usize,

    /// HTTP requests answered at once; more get 503 with `Retry-After` (open WebSockets do not count).
    #[arg(long, env = "JOBWIRE_MAX_IN_FLIGHT", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
    pub max_in_flight: usize,

    /// Origins of browser apps on other origins allowed to call the API (CORS) and open
    /// WebSockets, comma-separated, e.g. `http://localhost:3000` (none by default).
    #[arg(long, env = "JOBWIRE_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,

    /// The job types some worker runs, comma-separated: a job of any other type is refused with
    /// 422 instead of waiting for a worker that never comes (unset: every type is taken).
    #[arg(long, env = "JOBWIRE_KNOWN_TYPES", value_delimiter = ',')]
    pub known_types: Vec<JobType>,

    /// How long an HTTP request may take before it is answered 503.
    #[arg(long, env = "JOBWIRE_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Most jobs a tenant may have queued at once; a create past it is answered 429 (unset: no cap).
    #[arg(long, env = "JOBWIRE_TENANT_MAX_QUEUED", value_parser = clap::value_parser!(u64).range(1..))]
    pub tenant_max_queued: Option<u64>,

    /// Most jobs of a tenant running at once, across every worker (unset: no cap).
    #[arg(long, env = "JOBWIRE_TENANT_MAX_RUNNING", value_parser = clap::value_parser!(u32).range(1..))]
    pub tenant_max_running: Option<u32>,

    /// Jobs a tenant may create per second, on average (a token bucket); more are answered 429
    /// (unset: no limit).
    #[arg(long, env = "JOBWIRE_TENANT_RATE", value_parser = parse_rate)]
    pub tenant_rate: Option<f64>,

    /// Jobs a tenant may create at once after a quiet spell (the bucket's size; default: one
    /// second's worth of JOBWIRE_TENANT_RATE).
    #[arg(long, env = "JOBWIRE_TENANT_BURST", value_parser = clap::value_parser!(u32).range(1..))]
    pub tenant_burst: Option<u32>,

    /// A TOML file of per-tenant quotas and weights over the defaults above (`[tenants.<id>]` with
    /// max_queued, max_running, rate, burst, weight); every API process should read the same one.
    #[arg(long, env = "JOBWIRE_QUOTAS")]
    pub quotas: Option<std::path::PathBuf>,
}

/// A create rate from the command line.
fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text.parse().map_err(|e| format!("{e}"))?;
    crate::quotas::check_rate(rate).map_err(|e| e.to_string())
}

impl ApiArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_payload_bytes: self.max_payload_bytes,
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
            max_in_flight: self.max_in_flight,
            request_timeout: self.request_timeout,
            allowed_origins: self.cors_origins.clone(),
            known_types: self.known_types.clone(),
            quotas: Quotas::default(),
        }
    }

    /// The tenants' quotas: the defaults of the flags, with the overrides of
    /// the quota file (which must exist when named).
    pub fn quotas(&self) -> anyhow::Result<Quotas> {
        let defaults = Quota {
            max_queued: self.tenant_max_queued,
            max_running: self.tenant_max_running,
            rate: self.tenant_rate,
            burst: self.tenant_burst,
            weight: 1,
        };
        let overrides = match &self.quotas {
            None => Default::default(),
            Some(file) => {
                let text = std::fs::read_to_string(file).with_context(|| {
                    format!(
                        "cannot read the quota file {} (--quotas / JOBWIRE_QUOTAS)",
                        file.display()
                    )
                })?;
                crate::quotas::parse_overrides(file, &text)?
            }
        };
        Ok(Quotas {
            defaults,
            overrides,
        })
    }

    pub fn ws(&self) -> WsConfig {
        WsConfig {
            queue_capacity: self.ws_queue,
            queue_bytes: self.ws_queue_bytes,
            ping_interval: self.ws_ping_interval,
            max_sessions: self.ws_max_sessions,
            max_sessions_per_tenant: self.ws_max_sessions_per_tenant,
        }
    }
}

/// The separate worker's metrics listener (the API serves `/metrics` on its own).
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Where `jobwire-worker` serves GET /metrics (Prometheus text format), e.g.
    /// 0.0.0.0:9091 for a Prometheus on another host; `off` serves none.
    #[arg(long, env = "JOBWIRE_METRICS_ADDR", default_value = "127.0.0.1:9091")]
    pub metrics_addr: MetricsAddr,
}

/// An address to serve metrics on, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

impl std::str::FromStr for MetricsAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" => Ok(Self(None)),
            addr => addr.parse().map(|addr| Self(Some(addr))).map_err(|_| {
                format!("`{addr}` is not an address such as 127.0.0.1:9091, nor `off`")
            }),
        }
    }
}

/// The worker pool.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Jobs run at the same time.
    #[arg(long, env = "JOBWIRE_WORKER_CONCURRENCY", default_value_t = 16)]
    pub worker_concurrency: usize,

    /// On SIGTERM, how long running jobs may take to finish before they are handed back.
    #[arg(long, env = "JOBWIRE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Lease of a running job: a job whose worker died is queued again after at most this long.
    #[arg(long, env = "JOBWIRE_LEASE_TTL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,

    #[command(flatten)]
    pub retry: RetryArgs,

    /// A job queued this long whose ID the broker lost (restart, flush) is enqueued again.
    #[arg(long, env = "JOBWIRE_REDISPATCH_AFTER", default_value = "3s", value_parser = humantime::parse_duration)]
    pub redispatch_after: Duration,

    /// Test hook: adds the `trace` handler, which logs every attempt's start and end to this
    /// directory (for fault-injection tests). Not for production, so not in `--help`.
    #[arg(long, env = "JOBWIRE_TRACE_DIR", hide = true)]
    pub trace_dir: Option<std::path::PathBuf>,

    /// Test hook: fail once at a point (`lose-pop-reply`, `fail-first-ack`, `exit-after-finish`).
    #[arg(long, env = "JOBWIRE_WORKER_FAILPOINT", hide = true)]
    pub worker_failpoint: Option<Failpoint>,

    /// How long a succeeded job is kept before it is deleted (unless created with `retainFor`).
    #[arg(long, env = "JOBWIRE_RETAIN_SUCCEEDED", default_value = "24h", value_parser = parse_retention)]
    pub retain_succeeded: Duration,

    /// How long a failed job is kept before it is deleted (unless created with `retainFor`).
    #[arg(long, env = "JOBWIRE_RETAIN_FAILED", default_value = "7d", value_parser = parse_retention)]
    pub retain_failed: Duration,

    /// How long a cancelled job is kept before it is deleted (unless created with `retainFor`).
    #[arg(long, env = "JOBWIRE_RETAIN_CANCELLED", default_value = "24h", value_parser = parse_retention)]
    pub retain_cancelled: Duration,

    /// How often a worker looks for expired jobs to delete (one worker at a time does it).
    #[arg(long, env = "JOBWIRE_RETENTION_INTERVAL", default_value = "10s", value_parser = parse_interval)]
    pub retention_interval: Duration,

    /// jobwire.toml: job types handed to HTTP endpoints (webhooks). Unset: ./jobwire.toml if it
    /// exists; a file named here must exist.
    #[arg(long, env = "JOBWIRE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

/// How failed attempts are retried: by workers, and by the API for remote
/// workers' failures, so both read the same settings.
#[derive(Debug, Clone, clap::Args)]
pub struct RetryArgs {
    /// Backoff before the first retry of a failed job (doubles per attempt, full jitter).
    #[arg(long, env = "JOBWIRE_RETRY_BASE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_base: Duration,

    /// Longest backoff between two attempts.
    #[arg(long, env = "JOBWIRE_RETRY_CAP", default_value = "5m", value_parser = humantime::parse_duration)]
    pub retry_cap: Duration,
}

impl RetryArgs {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            base: self.retry_base,
            cap: self.retry_cap,
        }
    }
}

impl WorkerArgs {
    /// The built-in handlers, plus what [`WorkerArgs::extend`] adds.
    pub fn registry(&self) -> anyhow::Result<Registry> {
        self.extend(Registry::with_builtins())
    }

    /// `registry`, plus `trace` when the test hook is on (`JOBWIRE_TRACE_DIR`,
    /// so any worker binary can take part in the fault-injection suite), plus
    /// the webhooks of the configuration file (see [`WorkerArgs::config`]); a
    /// configuration that is wrong anywhere is an error naming the file and
    /// the handler.
    pub fn extend(&self, mut registry: Registry) -> anyhow::Result<Registry> {
        if let Some(dir) = &self.trace_dir {
            registry = registry.with_trace(dir.clone());
        }
        if let Some((file, text)) = crate::handlers::read_config(self.config.as_deref())? {
            crate::handlers::add_webhooks(&mut registry, &file, &text, |name| {
                std::env::var(name).ok()
            })?;
        }
        Ok(registry)
    }

    pub fn config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.worker_concurrency,
            grace: self.shutdown_grace,
            lease: self.lease_ttl,
            retry: self.retry.policy(),
            redispatch_after: self.redispatch_after,
            failpoint: self.worker_failpoint,
            retention: Retention {
                succeeded: self.retain_succeeded,
                failed: self.retain_failed,
                cancelled: self.retain_cancelled,
            },
            sweep_every: self.retention_interval,
        }
    }
}

/// A retention setting: a humantime duration from 1s to 10y, as a job's own `retainFor`.
fn parse_retention(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if !(MIN_RETAIN_FOR..=MAX_RETAIN_FOR).contains(&duration) {
        return Err(format!("a retention is from 1s to 10y, not {text}"));
    }
    Ok(duration)
}

/// A humantime duration over zero.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text).map_err(|e| e.to_string())? {
        Duration::ZERO => Err("the interval must be longer than zero".into()),
        duration => Ok(duration),
    }
}

/// How the process logs and, built with the `otlp` feature, where it sends
/// its spans.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log lines on stderr: `text` for people, or `json`, one object per line with the fields
    /// of the line's spans in it (`request_id`; `job_id`, `tenant`, `attempt`).
    #[arg(long, env = "JOBWIRE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OTLP/HTTP collector to export spans to (the API's requests, the worker's attempts),
    /// e.g. http://127.0.0.1:4318. Unset: none are exported.
    #[cfg(feature = "otlp")]
    #[arg(long, env = "JOBWIRE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// An origin as browsers send it: `http://` or `https://`, a host, maybe a
/// port, and nothing after.
fn parse_origin(origin: &str) -> Result<String, String> {
    let origin = origin.trim();
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("`{origin}` is not an origin: it starts with http:// or https://")
        })?;
    if rest.is_empty() || rest.contains('/') || !origin.is_ascii() {
        return Err(format!(
            "`{origin}` is not an origin: a scheme and a host (and port), e.g. http://localhost:3000, no path"
        ));
    }
    Ok(origin.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails right there")]

    use clap::Parser;

    use super::ApiArgs;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        api: ApiArgs,
    }

    #[test]
    fn debug_output_never_shows_the_jwt_secret() {
        const SECRET: &str = "a-secret-that-must-never-be-logged-0123456789";
        let cli = Cli::try_parse_from(["jobwire-api", "--jwt-secret", SECRET]).unwrap();
        for debug in [format!("{cli:?}"), format!("{cli:#?}")] {
            assert!(!debug.contains(SECRET), "{debug}");
        }
    }

    #[test]
    fn a_metrics_address_is_an_address_or_off() {
        use super::MetricsAddr;
        assert_eq!(
            "0.0.0.0:9091".parse::<MetricsAddr>(),
            Ok(MetricsAddr(Some("0.0.0.0:9091".parse().unwrap())))
        );
        assert_eq!("off".parse::<MetricsAddr>(), Ok(MetricsAddr(None)));
        assert!("9091".parse::<MetricsAddr>().is_err());
    }

    #[test]
    fn origins_are_a_scheme_and_a_host_with_nothing_after() {
        assert_eq!(
            super::parse_origin(" http://localhost:3000 ").as_deref(),
            Ok("http://localhost:3000")
        );
        assert!(super::parse_origin("https://app.example.com").is_ok());
        for bad in [
            "localhost:3000",
            "http://",
            "http://a.example/path",
            "ftp://a.example",
        ] {
            assert!(super::parse_origin(bad).is_err(), "{bad}");
        }
    }
}
