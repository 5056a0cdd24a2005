use chrono::{DateTime, Utc};
use jobwire_core::Job;
use serde_json::Value;
use sqlx::types::Json;

use crate::StoreError;

/// The columns every query returns, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, tenant_id, job_type, payload, priority, status, attempt, result, error, \
         progress, version, created_at, started_at, finished_at, updated_at, max_attempts, \
         run_at, timeout_ms, idempotency_key, change_seq, lease_token, request_hash"
    };
}
pub(crate) use columns;

/// A `jobs` row as SQLite returns it, before its values are checked.
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: String,
    tenant_id: String,
    job_type: String,
    payload: Json<Value>,
    priority: String,
    status: String,
    attempt: i32,
    result: Option<Json<Value>>,
    error: Option<String>,
    progress: Option<Json<Value>>,
    version: i64,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    max_attempts: i32,
    run_at: Option<DateTime<Utc>>,
    timeout_ms: Option<i64>,
    idempotency_key: Option<String>,
    change_seq: i64,
    pub(crate) lease_token: Option<String>,
    pub(crate) request_hash: Option<String>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        let corrupt =
            |e: jobwire_core::InvalidValue| StoreError::Corrupt(format!("job {}: {e}", row.id));
        Ok(Job {
            id: row.id.parse().map_err(corrupt)?,
            tenant_id: row.tenant_id.parse().map_err(corrupt)?,
            job_type: row.job_type.parse().map_err(corrupt)?,
            payload: row.payload.0,
            priority: row.priority.parse().map_err(corrupt)?,
            status: row.status.parse().map_err(corrupt)?,
            attempt: row.attempt,
            result: row.result.map(|r| r.0),
            error: row.error,
            progress: row.progress.map(|p| p.0),
            version: row.version,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            updated_at: row.updated_at,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            timeout_ms: row.timeout_ms,
            idempotency_key: row.idempotency_key,
            change_seq: row.change_seq,
        })
    }
}

/// What every write sets besides its own columns: a new version, a new place
/// in the change feed (SQLite serialises writes, so max + 1 is unique), and
/// the time, from the numbered parameter given.
macro_rules! bump {
    ($now:literal) => {
        concat!(
            "version = version + 1, ",
            "change_seq = (select coalesce(max(change_seq), 0) + 1 from jobs), ",
            "updated_at = ",
            $now
        )
    };
}
pub(crate) use bump;

/// Runs a query that returns job rows.
pub(crate) async fn fetch_jobs<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Sqlite, JobRow, sqlx::sqlite::SqliteArguments<'q>>,
    pool: &sqlx::SqlitePool,
    op: &'static str,
) -> Result<Vec<Job>, StoreError> {
    query
        .fetch_all(pool)
        .await
        .map_err(StoreError::query(op))?
        .into_iter()
        .map(Job::try_from)
        .collect()
}

/// Runs a query that returns at most one job row.
pub(crate) async fn fetch_optional_job<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Sqlite, JobRow, sqlx::sqlite::SqliteArguments<'q>>,
    pool: &sqlx::SqlitePool,
    op: &'static str,
) -> Result<Option<Job>, StoreError> {
    query
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query(op))?
        .map(Job::try_from)
        .transpose()
}
