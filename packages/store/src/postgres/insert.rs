use jobwire_core::{Job, NewJob};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::PgStore;
use super::row::{JobRow, columns};
use crate::{Inserted, StoreError, retain_ms, settle_idempotent};

impl PgStore {
    /// Inserts the jobs (`queued`, or `scheduled` when due later) in one
    /// transaction: all of them or none. A job whose idempotency key the
    /// tenant used before is not inserted; the first job with that key is
    /// returned instead, or the whole call fails if its request differed.
    pub(crate) async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<Inserted>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.id.as_uuid()).collect();
        let tenants: Vec<&str> = jobs.iter().map(|j| j.tenant.as_str()).collect();
        let types: Vec<&str> = jobs.iter().map(|j| j.job_type.as_str()).collect();
        let payloads: Vec<Json<&Value>> = jobs.iter().map(|j| Json(&j.payload)).collect();
        let priorities: Vec<&str> = jobs.iter().map(|j| j.priority.as_str()).collect();
        let max_attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
        let run_ats: Vec<Option<chrono::DateTime<chrono::Utc>>> =
            jobs.iter().map(|j| j.run_at).collect();
        let timeouts: Vec<Option<i64>> = jobs.iter().map(|j| j.timeout_ms).collect();
        let keys: Vec<Option<&str>> = jobs
            .iter()
            .map(|j| j.idempotency.as_ref().map(|i| i.key.as_str()))
            .collect();
        let hashes: Vec<Option<&str>> = jobs
            .iter()
            .map(|j| j.idempotency.as_ref().map(|i| i.request_hash.as_str()))
            .collect();

        let retain_ms: Vec<Option<i64>> = jobs.iter().map(|j| retain_ms(j.retain_for)).collect();
        let buckets: Vec<i16> = jobs.iter().map(|j| i16::from(j.tenant.bucket())).collect();

        let mut conn = self.conn().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(StoreError::query("begin insert"))?;
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "insert into jobs (id, tenant_id, job_type, payload, priority, status, max_attempts, ",
            "run_at, timeout_ms, idempotency_key, request_hash, retain_ms, tenant_bucket) ",
            "select id, tenant_id, job_type, payload, priority, ",
            "case when run_at > now() then 'scheduled' else 'queued' end, ",
            "max_attempts, case when run_at > now() then run_at end, timeout_ms, key, hash, retain_ms, ",
            "tenant_bucket ",
            "from unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::int[], ",
            "$7::timestamptz[], $8::bigint[], $9::text[], $10::text[], $11::bigint[], $12::smallint[]) ",
            "as t(id, tenant_id, job_type, payload, priority, max_attempts, run_at, timeout_ms, key, hash, ",
            "retain_ms, tenant_bucket) ",
            "on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing ",
            "returning ",
            columns!()
        ))
        .bind(&ids)
        .bind(&tenants)
        .bind(&types)
        .bind(&payloads)
        .bind(&priorities)
        .bind(&max_attempts)
        .bind(&run_ats)
        .bind(&timeouts)
        .bind(&keys)
        .bind(&hashes)
        .bind(&retain_ms)
        .bind(&buckets)
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query("insert jobs"))?;
        let created = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<Vec<_>, _>>()?;

        let used: Vec<&str> = keys.iter().flatten().copied().collect();
        let earlier = if created.len() < jobs.len() && !used.is_empty() {
            let rows: Vec<JobRow> = sqlx::query_as(concat!(
                "select ",
                columns!(),
                " from jobs where tenant_id = $1 and idempotency_key = any($2)"
            ))
            .bind(jobs[0].tenant.as_str())
            .bind(&used)
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
