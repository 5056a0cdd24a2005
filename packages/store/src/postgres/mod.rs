//! The production store: PostgreSQL, shared by any number of processes.

mod cancel;
mod claim;
mod finish;
mod insert;
mod read;
mod recover;
mod retain;
mod row;

use std::time::{Duration, Instant};

use sqlx::migrate::MigrateDatabase;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions};

use jobwire_core::redact_url;

use crate::StoreError;

#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    url: String,
}

impl PgStore {
    /// Connects to `url`, creating the database if it does not exist yet, and
    /// applies pending migrations, so a fresh Postgres is ready in one call.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let connect_err = |source| StoreError::Connect {
            url: redact_url(url),
            source,
        };
        if !sqlx::Postgres::database_exists(url)
            .await
            .map_err(connect_err)?
        {
            tracing::info!(url = %redact_url(url), "creating database");
            if let Err(e) = sqlx::Postgres::create_database(url).await {
                // Another process starting beside this one may have created it first.
                if !sqlx::Postgres::database_exists(url).await.unwrap_or(false) {
                    return Err(connect_err(e));
                }
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // Under the default 3 s lease: a worker that cannot get a
            // connection fails its renewal or write while its leases hold.
            .acquire_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .map_err(connect_err)?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Self {
            pool,
            url: redact_url(url),
        })
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection from the pool, for one operation. The wait for it is
    /// recorded in `jobwire_db_pool_wait_seconds` (a wait that timed out
    /// too): every query of this adapter goes through here, so the histogram
    /// shows how long work queues for the pool.
    pub(crate) async fn conn(&self) -> Result<PoolConnection<sqlx::Postgres>, StoreError> {
        let started = Instant::now();
        let conn = self.pool.acquire().await;
        metrics::histogram!(jobwire_metrics::DB_POOL_WAIT).record(started.elapsed().as_secs_f64());
        conn.map_err(StoreError::query("acquire connection"))
    }

    /// The pool now: connections open, idle, and the most it opens.
    pub(crate) fn pool_stats(&self) -> crate::PoolStats {
        let open = self.pool.size();
        let idle = self.pool.num_idle() as u32;
        crate::PoolStats {
            busy: open.saturating_sub(idle),
            idle,
            max: self.pool.options().get_max_connections(),
        }
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1")
            .execute(&mut *self.conn().await?)
            .await
            .map(drop)
            .map_err(StoreError::query("ping"))
    }
}
