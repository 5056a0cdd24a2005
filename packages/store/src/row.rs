//! The `jobs` row as both adapters read it: the same columns, with the ID
//! (and lease token) in each database's own type.

use std::fmt::Display;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jobwire_core::{AttemptError, InvalidValue, Job, JobId, JobUpdate};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;

/// The columns every query returns, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, tenant_id, job_type, payload, priority, status, attempt, result, error, \
         progress, version, created_at, started_at, finished_at, updated_at, max_attempts, \
         run_at, timeout_ms, idempotency_key, change_seq, lease_token, request_hash, \
         attempt_errors, retain_ms"
    };
}
pub(crate) use columns;

/// The columns of a job's update (what clients are sent), as a literal for
/// `concat!`: no payload, and no result over 64 KiB
/// ([`jobwire_core::MAX_INLINE_RESULT_BYTES`], which a literal cannot name;
/// `result_bytes` is kept at write time from the store's own JSON text, so a
/// result within a few bytes of the bound may be inline live and omitted in
/// a replay), so reading many changes costs little memory.
macro_rules! update_columns {
    () => {
        "id, tenant_id, job_type, status, attempt, error, progress, run_at, version, \
         updated_at, change_seq, case when result_bytes <= 65536 then result end as result, \
         coalesce(result_bytes > 65536, false) as result_omitted"
    };
}
pub(crate) use update_columns;

/// How an adapter stores IDs: a UUID in Postgres, text in SQLite.
pub(crate) trait RowId: Display {
    fn job_id(&self) -> Result<JobId, InvalidValue>;
}

impl RowId for Uuid {
    fn job_id(&self) -> Result<JobId, InvalidValue> {
        Ok(JobId::from(*self))
    }
}

impl RowId for String {
    fn job_id(&self) -> Result<JobId, InvalidValue> {
        self.parse()
    }
}

/// A `jobs` row as the database returns it, before its values are checked.
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow<I> {
    id: I,
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
    pub(crate) lease_token: Option<I>,
    pub(crate) request_hash: Option<String>,
    attempt_errors: Json<Vec<AttemptError>>,
    retain_ms: Option<i64>,
}

impl<I: RowId> TryFrom<JobRow<I>> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow<I>) -> Result<Self, StoreError> {
        let corrupt = |e: InvalidValue| StoreError::Corrupt(format!("job {}: {e}", row.id));
        let retain_for = row
            .retain_ms
            .map(|ms| {
                u64::try_from(ms)
                    .map(Duration::from_millis)
                    .map_err(|_| corrupt(InvalidValue(format!("a negative retention of {ms} ms"))))
            })
            .transpose()?;
        Ok(Job {
            id: row.id.job_id().map_err(corrupt)?,
            tenant_id: row.tenant_id.parse().map_err(corrupt)?,
            job_type: row.job_type.parse().map_err(corrupt)?,
            payload: row.payload.0,
            priority: row.priority.parse().map_err(corrupt)?,
            status: row.status.parse().map_err(corrupt)?,
            attempt: row.attempt,
            result: row.result.map(|r| r.0),
            error: row.error,
            attempt_errors: row.attempt_errors.0,
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
            retain_for,
            change_seq: row.change_seq,
        })
    }
}

/// The [`update_columns`] of a row, before its values are checked.
#[derive(sqlx::FromRow)]
pub(crate) struct UpdateRow<I> {
    id: I,
    tenant_id: String,
    job_type: String,
    status: String,
    attempt: i32,
    error: Option<String>,
    progress: Option<Json<Value>>,
    result: Option<Json<Value>>,
    result_omitted: bool,
    run_at: Option<DateTime<Utc>>,
    version: i64,
    updated_at: DateTime<Utc>,
    change_seq: i64,
}

impl<I: RowId> TryFrom<UpdateRow<I>> for crate::Change {
    type Error = StoreError;

    fn try_from(row: UpdateRow<I>) -> Result<Self, StoreError> {
        let corrupt = |e: InvalidValue| StoreError::Corrupt(format!("job {}: {e}", row.id));
        Ok(crate::Change {
            place: row.change_seq,
            update: JobUpdate {
                tenant_id: row.tenant_id.parse().map_err(corrupt)?,
                job_id: row.id.job_id().map_err(corrupt)?,
                job_type: row.job_type.parse().map_err(corrupt)?,
                status: row.status.parse().map_err(corrupt)?,
                version: row.version,
                attempt: row.attempt,
                error: row.error,
                progress: row.progress.map(|p| p.0),
                result: row.result.map(|r| r.0),
                result_omitted: row.result_omitted,
                run_at: row.run_at,
                at: row.updated_at,
                cursor: row.change_seq.to_string(),
            },
        })
    }
}

impl<I: RowId> TryFrom<JobRow<I>> for crate::Claim {
    type Error = StoreError;

    fn try_from(row: JobRow<I>) -> Result<Self, StoreError> {
        let token = row
            .lease_token
            .as_ref()
            .map(ToString::to_string)
            .ok_or_else(|| StoreError::Corrupt("a claimed job without a lease token".into()))?;
        Ok(crate::Claim {
            job: row.try_into()?,
            token: crate::LeaseToken(token),
        })
    }
}
