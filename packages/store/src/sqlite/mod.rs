//! The embedded store: SQLite in one file (or in memory), for the
//! single-process mode. Same rows, same versions, same answers as Postgres.

mod cancel;
mod claim;
mod finish;
mod insert;
mod read;
mod recover;
mod retain;
mod row;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;

/// Connections to a database file. SQLite serialises writes anyway; one
/// connection also spares every statement SQLite's busy and snapshot races.
const FILE_CONNECTIONS: u32 = 1;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: String,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, or an in-memory one
    /// for `:memory:`, and applies pending migrations.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let memory = path == ":memory:";
        let options = if memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(open_err)?
        } else {
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // With WAL, NORMAL loses nothing when the process dies; only an OS crash may.
                .synchronous(SqliteSynchronous::Normal)
        }
        .busy_timeout(Duration::from_secs(5));
        // An in-memory database lives in its one connection: keep exactly one, forever.
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { FILE_CONNECTIONS })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&pool)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(Self {
            pool,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(StoreError::query("ping"))
    }
}

/// Now, at the microsecond precision Postgres keeps, so both stores show the same times.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A time as stored: one fixed-width format, so that comparing the text
/// compares the times.
pub(crate) fn text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}
