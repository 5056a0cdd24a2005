use std::time::Duration;

use jobwire_core::{Job, JobId, QueueEntry};

use super::row::{append_attempt_error, bump, columns, expires_now, fetch_jobs, plan_text};
use super::{SqliteStore, now, text};
use crate::{LEASE_LOST, StoreError, queued_entry};

fn entries(rows: Vec<(String, String, String, String)>) -> Result<Vec<QueueEntry>, StoreError> {
    rows.into_iter()
        .map(|(id, priority, tenant, job_type)| {
            let id = id
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("job {id}: {e}")))?;
            queued_entry(id, &priority, &tenant, &job_type)
        })
        .collect()
}

/// The lost-ID sweep's batch: queued jobs last changed before `?1`, after ID
/// `?2`, at most `?3`, in ID order.
const QUEUED_OLDER_THAN: &str = "select id, priority, tenant_id, job_type from jobs \
     where status = 'queued' and updated_at < ?1 and id > ?2 order by id limit ?3";

impl SqliteStore {
    pub(crate) async fn reap_expired(&self) -> Result<Vec<Job>, StoreError> {
        let at = now();
        let query = sqlx::query_as(concat!(
            "update jobs set ",
            "status = case when attempt < max_attempts then 'queued' else 'failed' end, ",
            "error = ?1, ",
            "finished_at = case when attempt < max_attempts then null else ?2 end, ",
            "expires_at = case when attempt < max_attempts then null else ",
            expires_now!("?3"),
            " end, ",
            "attempt_errors = ",
            append_attempt_error!("?1", "?2"),
            ", ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!("?2"),
            " where status = 'running' and lease_expires_at < ?2 returning ",
            columns!()
        ))
        .bind(LEASE_LOST)
        .bind(text(at))
        .bind(at.timestamp_millis());
        fetch_jobs(query, &self.pool, "reap expired leases").await
    }

    pub(crate) async fn promote_due(&self) -> Result<Vec<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'queued', run_at = null, ",
            bump!("?1"),
            " where status = 'scheduled' and run_at <= ?1 returning ",
            columns!()
        ))
        .bind(text(now()));
        fetch_jobs(query, &self.pool, "promote due jobs").await
    }

    pub(crate) async fn queued_older_than(
        &self,
        age: Duration,
        after: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(QUEUED_OLDER_THAN)
            .bind(text(now() - age))
            // Every ID sorts after the empty string: from the start.
            .bind(after.map(|id| id.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("list queued jobs"))?;
        entries(rows)
    }

    /// The plan of the lost-ID sweep's batch (SQLite keeps no dead index
    /// entries: only the order of the walk matters here).
    pub(crate) async fn explain_maintenance(
        &self,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let lines: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("explain query plan {QUEUED_OLDER_THAN}"))
                .bind(text(now()))
                .bind("")
                .bind(5000_i64)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("explain the maintenance"))?;
        Ok(vec![("sweep", plan_text(lines))])
    }

    pub(crate) async fn queued_among(
        &self,
        ids: &[JobId],
        age: Duration,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let ids: Vec<String> = ids.iter().map(JobId::to_string).collect();
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "select id, priority, tenant_id, job_type from jobs where id in (select value from json_each(?1)) \
             and status = 'queued' and updated_at < ?2 order by id",
        )
        .bind(sqlx::types::Json(ids))
        .bind(text(now() - age))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("check queued jobs"))?;
        entries(rows)
    }

    pub(crate) async fn requeue_running(&self) -> Result<Vec<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'queued', ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!("?1"),
            " where status = 'running' returning ",
            columns!()
        ))
        .bind(text(now()));
        fetch_jobs(query, &self.pool, "requeue running jobs").await
    }

    pub(crate) async fn queued(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("select id, priority, tenant_id, job_type from jobs where status = 'queued' order by id")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("list queued jobs"))?;
        entries(rows)
    }

    pub(crate) async fn count_due(&self, limit: u32) -> Result<u64, StoreError> {
        let due: i64 = sqlx::query_scalar(
            "select count(*) from (select 1 from jobs where status = 'scheduled' \
             and run_at <= ?1 limit ?2)",
        )
        .bind(text(now()))
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("count due jobs"))?;
        Ok(due.max(0) as u64)
    }
}
