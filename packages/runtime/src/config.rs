use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use jobwire_server::{Limits, WsConfig};
use jobwire_worker::WorkerConfig;

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// Postgres URL (the database is created if missing).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/jobwire"
    )]
    pub database_url: String,

    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Prefix of every Redis key and of the channel (empty: `job_queue:<priority>`, `job_updates`).
    #[arg(long, env = "JOBWIRE_PREFIX", default_value = "")]
    pub prefix: String,

    /// Most Postgres connections this process opens.
    #[arg(long, env = "JOBWIRE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
}

/// The HTTP and WebSocket API.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Address to listen on.
    #[arg(long, env = "JOBWIRE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// HS256 secret that signs and verifies tokens (all API instances share it).
    #[arg(long, env = "JOBWIRE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

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

    /// How often WebSocket clients are pinged; silent for two intervals, they are dropped.
    #[arg(long, env = "JOBWIRE_WS_PING_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ws_ping_interval: Duration,
}

impl ApiArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_payload_bytes: self.max_payload_bytes,
            max_body_bytes: self.max_body_bytes,
            max_batch: self.max_batch,
        }
    }

    pub fn ws(&self) -> WsConfig {
        WsConfig {
            queue_capacity: self.ws_queue,
            ping_interval: self.ws_ping_interval,
        }
    }
}

/// The worker pool.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Jobs run at the same time.
    #[arg(long, env = "JOBWIRE_WORKER_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,

    /// On SIGTERM, how long running jobs may take to finish.
    #[arg(long, env = "JOBWIRE_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

impl WorkerArgs {
    pub fn config(&self) -> WorkerConfig {
        WorkerConfig {
            concurrency: self.concurrency,
            grace: self.shutdown_grace,
        }
    }
}
