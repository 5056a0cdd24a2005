use std::time::Duration;

use chrono::{DateTime, Utc};
use jobwire_core::{Job, JobId};
use serde_json::Value;
use sqlx::types::Json;

use super::PgStore;
use super::claim::token;
use super::row::{
    append_attempt_error, bump, columns, expires_now, fetch_jobs, fetch_optional_job,
};
use crate::{Finish, LeaseToken, StoreError};

impl PgStore {
    /// Ends every attempt of the batch in one statement (one commit); an
    /// attempt whose lease no longer holds is left as it is. The rows go in
    /// ID order, for the reason [`super::claim::in_id_order`] gives.
    pub(crate) async fn finish_many(&self, mut batch: Vec<Finish>) -> Result<Vec<Job>, StoreError> {
        batch.sort_unstable_by_key(|finish| finish.id.as_uuid());
        let mut ids = Vec::with_capacity(batch.len());
        let mut tokens = Vec::with_capacity(batch.len());
        let mut statuses = Vec::with_capacity(batch.len());
        let mut results: Vec<Option<Json<Value>>> = Vec::with_capacity(batch.len());
        let mut errors: Vec<Option<String>> = Vec::with_capacity(batch.len());
        let mut run_ats: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(batch.len());
        for Finish { id, lease, outcome } in batch {
            let (status, result, error, run_at) = outcome.columns();
            ids.push(id.as_uuid());
            tokens.push(token(&lease));
            statuses.push(status);
            results.push(result.map(Json));
            errors.push(error);
            run_ats.push(run_at);
        }
        let query = sqlx::query_as(concat!(
            "update jobs set status = done.new_status, result = done.new_result, ",
            "error = done.new_error, run_at = done.new_run_at, ",
            "finished_at = case when done.new_status in ('succeeded', 'failed') then now() end, ",
            "expires_at = case when done.new_status in ('succeeded', 'failed') then ",
            expires_now!(),
            " end, ",
            // A failed attempt joins the history; a success leaves it as it is.
            "attempt_errors = case when done.new_error is null then attempt_errors else ",
            append_attempt_error!("done.new_error"),
            " end, ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!(),
            " from unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[], ",
            "$6::timestamptz[]) as done(job, token, new_status, new_result, new_error, new_run_at) ",
            "where jobs.id = done.job ",
            "and jobs.status = 'running' and jobs.lease_token = done.token ",
            "returning ",
            columns!()
        ))
        .persistent(false)
        .bind(ids)
        .bind(tokens)
        .bind(statuses)
        .bind(results)
        .bind(errors)
        .bind(run_ats);
        fetch_jobs(query, self, "finish jobs").await
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
        fetch_optional_job(query, self, "report progress").await
    }

    pub(crate) async fn renew(
        &self,
        id: JobId,
        lease: &LeaseToken,
        ttl: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set lease_expires_at = now() + $3::bigint * interval '1 millisecond' ",
            "where id = $1 and status = 'running' and lease_token = $2 returning ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(token(lease))
        .bind(ttl.as_millis() as i64);
        fetch_optional_job(query, self, "renew a lease").await
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
        fetch_optional_job(query, self, "release job").await
    }
}
