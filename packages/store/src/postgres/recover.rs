use std::time::Duration;

use jobwire_core::{Job, JobId, QueueEntry};
use uuid::Uuid;

use super::PgStore;
use super::claim::HEARTBEAT;
use super::row::{
    append_attempt_error, bump, columns, expires_now, fetch_jobs, fetch_jobs_walking, index_walk,
    lock_in_order, plan_text,
};
use crate::{LEASE_LOST, StoreError};

/// Jobs whose lease ran out: queued again, or failed on their last attempt.
/// `$1`: the error.
pub(super) const REAP_EXPIRED: &str = concat!(
    lock_in_order!("status = 'running' and lease_expires_at < now()"),
    "update jobs set ",
    "status = case when attempt < max_attempts then 'queued' else 'failed' end, ",
    "error = $1, ",
    "finished_at = case when attempt < max_attempts then null else now() end, ",
    "expires_at = case when attempt < max_attempts then null else ",
    expires_now!(),
    " end, ",
    "attempt_errors = ",
    append_attempt_error!("$1::text"),
    ", ",
    "lease_token = null, lease_owner = null, lease_expires_at = null, ",
    bump!(),
    " where id in (select id from locked) returning ",
    columns!()
);

/// The lost-ID sweep's batch: queued jobs older than `$1` ms, after ID `$2`
/// (null: from the start), at most `$3`, in ID order.
pub(super) const QUEUED_OLDER_THAN: &str = "select id, priority, tenant_id, job_type from jobs \
     where status = 'queued' and updated_at < now() - $1::bigint * interval '1 millisecond' \
     and ($2::uuid is null or id > $2) order by id limit $3";

impl PgStore {
    pub(crate) async fn reap_expired(&self) -> Result<Vec<Job>, StoreError> {
        let query = sqlx::query_as(REAP_EXPIRED)
            .persistent(false)
            .bind(LEASE_LOST);
        fetch_jobs_walking(query, self, "reap expired leases").await
    }

    pub(crate) async fn promote_due(&self) -> Result<Vec<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            lock_in_order!("status = 'scheduled' and run_at <= now()"),
            "update jobs set status = 'queued', run_at = null, ",
            bump!(),
            " where id in (select id from locked) returning ",
            columns!()
        ))
        .persistent(false);
        fetch_jobs_walking(query, self, "promote due jobs").await
    }

    pub(crate) async fn queued_older_than(
        &self,
        age: Duration,
        after: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let mut tx = index_walk(self).await?;
        let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(QUEUED_OLDER_THAN)
            .bind(age.as_millis() as i64)
            .bind(after.map(|id| id.as_uuid()))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query("list queued jobs"))?;
        tx.commit()
            .await
            .map_err(StoreError::query("list queued jobs"))?;
        rows.into_iter()
            .map(|(id, p, tenant, job_type)| crate::queued_entry(id.into(), &p, &tenant, &job_type))
            .collect()
    }

    /// The plans of the lost-ID sweep's batch and the lease reaper (as they
    /// run, see [`index_walk`]) and of the heartbeat.
    pub(crate) async fn explain_maintenance(
        &self,
    ) -> Result<Vec<(&'static str, String)>, StoreError> {
        let (sweep, reap, heartbeat) = (
            format!("explain {QUEUED_OLDER_THAN}"),
            format!("explain {REAP_EXPIRED}"),
            format!("explain {HEARTBEAT}"),
        );
        let explains: [sqlx::query::QueryAs<'_, sqlx::Postgres, (String,), _>; 3] = [
            sqlx::query_as(&sweep)
                .bind(3000_i64)
                .bind(None::<Uuid>)
                .bind(5000_i64),
            sqlx::query_as(&reap).bind(LEASE_LOST),
            sqlx::query_as(&heartbeat)
                .bind("worker")
                .bind(3000_i64)
                .bind(vec![Uuid::nil(); 50]),
        ];
        let mut plans = Vec::with_capacity(explains.len());
        let runs = [("sweep", true), ("reap", true), ("heartbeat", false)];
        for ((name, walking), explain) in runs.into_iter().zip(explains) {
            let mut tx = if walking {
                index_walk(self).await?
            } else {
                self.pool()
                    .begin()
                    .await
                    .map_err(StoreError::query("explain the maintenance"))?
            };
            let lines = explain
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::query("explain the maintenance"))?;
            tx.rollback()
                .await
                .map_err(StoreError::query("explain the maintenance"))?;
            plans.push((name, plan_text(lines)));
        }
        Ok(plans)
    }

    pub(crate) async fn queued_among(
        &self,
        ids: &[JobId],
        age: Duration,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(JobId::as_uuid).collect();
        let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
            "select id, priority, tenant_id, job_type from jobs where id = any($1) and status = 'queued' \
             and updated_at < now() - $2::bigint * interval '1 millisecond' order by id",
        )
        .bind(ids)
        .bind(age.as_millis() as i64)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("check queued jobs"))?;
        rows.into_iter()
            .map(|(id, p, tenant, job_type)| crate::queued_entry(id.into(), &p, &tenant, &job_type))
            .collect()
    }

    pub(crate) async fn requeue_running(&self) -> Result<Vec<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'queued', ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!(),
            " where status = 'running' returning ",
            columns!()
        ));
        fetch_jobs(query, self, "requeue running jobs").await
    }

    pub(crate) async fn queued(&self) -> Result<Vec<QueueEntry>, StoreError> {
        let rows: Vec<(Uuid, String, String, String)> =
            sqlx::query_as("select id, priority, tenant_id, job_type from jobs where status = 'queued' order by id")
                .fetch_all(&mut *self.conn().await?)
                .await
                .map_err(StoreError::query("list queued jobs"))?;
        rows.into_iter()
            .map(|(id, p, tenant, job_type)| crate::queued_entry(id.into(), &p, &tenant, &job_type))
            .collect()
    }

    pub(crate) async fn count_due(&self, limit: u32) -> Result<u64, StoreError> {
        let due: i64 = sqlx::query_scalar(
            "select count(*) from (select 1 from jobs where status = 'scheduled' \
             and run_at <= now() limit $1) as due",
        )
        .bind(i64::from(limit))
        .fetch_one(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("count due jobs"))?;
        Ok(due.max(0) as u64)
    }
}
