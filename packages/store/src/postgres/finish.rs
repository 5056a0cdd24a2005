use jobwire_core::{Job, JobId};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::PgStore;
use super::row::{bump, columns, fetch_optional_job};
use crate::{LeaseToken, Outcome, StoreError};

/// The lease token as Postgres stores it; a token that is not a UUID matches nothing.
fn token(token: &LeaseToken) -> Option<Uuid> {
    Uuid::parse_str(&token.0).ok()
}

impl PgStore {
    pub(crate) async fn finish(
        &self,
        id: JobId,
        lease: &LeaseToken,
        outcome: Outcome,
    ) -> Result<Option<Job>, StoreError> {
        let (status, result, error, run_at) = outcome.columns();
        let query = sqlx::query_as(concat!(
            "update jobs set status = $3, result = $4, error = $5, run_at = $6, ",
            "finished_at = case when $3 in ('succeeded', 'failed') then now() end, ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!(),
            " where id = $1 and status = 'running' and lease_token = $2 returning ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(token(lease))
        .bind(status)
        .bind(result.map(Json))
        .bind(error)
        .bind(run_at);
        fetch_optional_job(query, &self.pool, "finish job").await
    }

    pub(crate) async fn report_progress(
        &self,
        id: JobId,
        lease: &LeaseToken,
        progress: &Value,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set progress = $3, ",
            bump!(),
            " where id = $1 and status = 'running' and lease_token = $2 returning ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(token(lease))
        .bind(Json(progress));
        fetch_optional_job(query, &self.pool, "report progress").await
    }

    pub(crate) async fn release(
        &self,
        id: JobId,
        lease: &LeaseToken,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'queued', ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!(),
            " where id = $1 and status = 'running' and lease_token = $2 returning ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(token(lease));
        fetch_optional_job(query, &self.pool, "release job").await
    }
}
