use jobwire_core::{Job, NewJob, Status};
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::row::{JobRow, columns};
use super::{SqliteStore, now, text};
use crate::{Inserted, StoreError, retain_ms, settle_idempotent};

impl SqliteStore {
    /// Inserts the jobs in one transaction: all or none. See [`crate::Store::insert`].
    pub(crate) async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<Inserted>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let at = now();
        let mut query = QueryBuilder::new(concat!(
            "insert into jobs (id, tenant_id, job_type, payload, priority, status, max_attempts, ",
            "run_at, timeout_ms, idempotency_key, request_hash, retain_ms, tenant_bucket, created_at, ",
            "updated_at, change_seq) "
        ));
        query.push_values(jobs.iter().enumerate(), |mut row, (i, job)| {
            let later = job.run_at.filter(|run_at| *run_at > at);
            let status = if later.is_some() {
                Status::Scheduled
            } else {
                Status::Queued
            };
            row.push_bind(job.id.to_string())
                .push_bind(job.tenant.as_str())
                .push_bind(job.job_type.as_str())
                .push_bind(Json(&job.payload))
                .push_bind(job.priority.as_str())
                .push_bind(status.as_str())
                .push_bind(job.max_attempts)
                .push_bind(later.map(text))
                .push_bind(job.timeout_ms)
                .push_bind(job.idempotency.as_ref().map(|i| i.key.clone()))
                .push_bind(job.idempotency.as_ref().map(|i| i.request_hash.clone()))
                .push_bind(retain_ms(job.retain_for))
                .push_bind(i64::from(job.tenant.bucket()))
                .push_bind(text(at))
                .push_bind(text(at))
                .push("(select coalesce(max(change_seq), 0) from jobs) + ")
                .push_bind_unseparated(i as i64 + 1);
        });
        query.push(concat!(
            " on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing",
            " returning ",
            columns!()
        ));

        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("begin insert"))?;
        let rows: Vec<JobRow> = query
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query("insert jobs"))?;
        let created = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<Vec<_>, _>>()?;

        let keys: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.idempotency.as_ref().map(|i| i.key.as_str()))
            .collect();
        let earlier = if created.len() < jobs.len() && !keys.is_empty() {
            let rows: Vec<JobRow> = sqlx::query_as(concat!(
                "select ",
                columns!(),
                " from jobs where tenant_id = ?1 and idempotency_key in (select value from json_each(?2))"
            ))
            .bind(jobs[0].tenant.as_str())
            .bind(Json(&keys))
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::query("find idempotency keys"))?;
            rows
        } else {
            Vec::new()
        };
        let inserted = settle_idempotent(jobs, created, earlier)?;
        tx.commit()
            .await
            .map_err(StoreError::query("commit insert"))?;
        Ok(inserted)
    }
}
