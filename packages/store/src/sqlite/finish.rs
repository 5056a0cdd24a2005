use std::time::Duration;

use jobwire_core::{Job, JobId};
use serde_json::{Value, json};
use sqlx::types::Json;

use super::row::{
    append_attempt_error, bump, columns, expires_now, fetch_jobs, fetch_optional_job,
};
use super::{SqliteStore, now, text};
use crate::{Finish, LeaseToken, StoreError};

impl SqliteStore {
    /// One statement for the whole batch, numbering the rows it changes in
    /// the change feed as `claim_many` does.
    pub(crate) async fn finish_many(&self, batch: Vec<Finish>) -> Result<Vec<Job>, StoreError> {
        let at = now();
        let batch: Vec<Value> = batch
            .into_iter()
            .map(|Finish { id, lease, outcome }| {
                let (status, result, error, run_at) = outcome.columns();
                json!({
                    "id": id.to_string(),
                    "token": lease.0,
                    "status": status,
                    // As JSON text, so that a string result stays JSON.
                    "result": result.map(|result| result.to_string()),
                    "error": error,
                    "runAt": run_at.map(text),
                })
            })
            .collect();
        let query = sqlx::query_as(concat!(
            "update jobs set status = done.new_status, result = done.new_result, ",
            "error = done.new_error, run_at = done.new_run_at, ",
            "finished_at = case when done.new_status in ('succeeded', 'failed') then ?2 end, ",
            "expires_at = case when done.new_status in ('succeeded', 'failed') then ",
            expires_now!("?3"),
            " end, ",
            // A failed attempt joins the history; a success leaves it as it is.
            "attempt_errors = case when done.new_error is null then attempt_errors else ",
            append_attempt_error!("done.new_error", "?2"),
            " end, ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            "version = version + 1, ",
            "change_seq = (select coalesce(max(change_seq), 0) from jobs) + done.n, ",
            "updated_at = ?2 ",
            "from (select j.id as job, e.value ->> '$.status' as new_status, ",
            "e.value ->> '$.result' as new_result, e.value ->> '$.error' as new_error, ",
            "e.value ->> '$.runAt' as new_run_at, row_number() over (order by e.key) as n ",
            "from json_each(?1) as e cross join jobs as j on j.id = e.value ->> '$.id' ",
            "where j.status = 'running' and j.lease_token = e.value ->> '$.token') as done ",
            "where jobs.id = done.job returning ",
            columns!()
        ))
        .bind(Json(batch))
        .bind(text(at))
        .bind(at.timestamp_millis());
        fetch_jobs(query, &self.pool, "finish jobs").await
    }

    pub(crate) async fn report_progress(
        &self,
        id: JobId,
        lease: &LeaseToken,
        progress: &Value,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set progress = ?3, ",
            bump!("?4"),
            " where id = ?1 and status = 'running' and lease_token = ?2 returning ",
            columns!()
        ))
        .bind(id.to_string())
        .bind(&lease.0)
        .bind(Json(progress))
        .bind(text(now()));
        fetch_optional_job(query, &self.pool, "report progress").await
    }

    pub(crate) async fn renew(
        &self,
        id: JobId,
        lease: &LeaseToken,
        ttl: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set lease_expires_at = ?3 ",
            "where id = ?1 and status = 'running' and lease_token = ?2 returning ",
            columns!()
        ))
        .bind(id.to_string())
        .bind(&lease.0)
        .bind(text(now() + ttl));
        fetch_optional_job(query, &self.pool, "renew a lease").await
    }

    pub(crate) async fn release(
        &self,
        id: JobId,
        lease: &LeaseToken,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'queued', ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!("?3"),
            " where id = ?1 and status = 'running' and lease_token = ?2 returning ",
            columns!()
        ))
        .bind(id.to_string())
        .bind(&lease.0)
        .bind(text(now()));
        fetch_optional_job(query, &self.pool, "release job").await
    }
}
