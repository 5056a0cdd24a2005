//! The Postgres store: every job lives here, and every change of a job is one
//! conditional UPDATE that bumps its `version`. Each step of a job's life has
//! its write in one module (`insert`, `claim`, `finish`, `cancel`), so that a
//! later change (batching, leases) has one place to go.

mod cancel;
mod claim;
mod error;
mod finish;
mod insert;
mod read;
mod row;

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgPool, PgPoolOptions};

pub use error::StoreError;
pub use finish::Outcome;
pub use read::{ListFilter, Page};

/// Handle to the jobs table. Cheap to clone (it is a pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `url`, creating the database if it does not exist yet, and
    /// applies pending migrations, so a fresh Postgres is ready in one call.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let connect_err = |source| StoreError::Connect {
            url: redact(url),
            source,
        };
        if !sqlx::Postgres::database_exists(url)
            .await
            .map_err(connect_err)?
        {
            tracing::info!(url = %redact(url), "creating database");
            if let Err(e) = sqlx::Postgres::create_database(url).await {
                // Another process starting beside this one may have created it first.
                if !sqlx::Postgres::database_exists(url).await.unwrap_or(false) {
                    return Err(connect_err(e));
                }
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(connect_err)?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations in `migrations/postgres` that are not applied yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    /// Whether Postgres answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::query("ping"))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The URL without its password, fit for logs and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            super::redact("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        assert_eq!(super::redact("redis://h:6379"), "redis://h:6379");
    }
}
