use jobwire_core::{Job, JobId, TenantId};

use super::row::{bump, columns, expires_now, fetch_optional_job};
use super::{SqliteStore, now, text};
use crate::{StoreError, not_changed};

impl SqliteStore {
    pub(crate) async fn cancel(&self, tenant: &TenantId, id: JobId) -> Result<Job, StoreError> {
        let at = now();
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'cancelled', finished_at = ?3, ",
            "expires_at = ",
            expires_now!("?4"),
            ", ",
            "lease_token = null, lease_owner = null, lease_expires_at = null, ",
            bump!("?3"),
            " where tenant_id = ?1 and id = ?2 and status in ('scheduled', 'queued', 'running') returning ",
            columns!()
        ))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(text(at))
        .bind(at.timestamp_millis());
        match fetch_optional_job(query, &self.pool, "cancel job").await? {
            Some(job) => Ok(job),
            None => Err(not_changed(id, self.status(tenant, id).await?, "cancelled")),
        }
    }

    pub(crate) async fn retry(&self, tenant: &TenantId, id: JobId) -> Result<Job, StoreError> {
        // `attempt_errors` stays: the history outlives the fresh attempt count.
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'queued', attempt = 0, error = null, result = null, ",
            "progress = null, run_at = null, started_at = null, finished_at = null, expires_at = null, ",
            bump!("?3"),
            " where tenant_id = ?1 and id = ?2 and status in ('failed', 'cancelled') returning ",
            columns!()
        ))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .bind(text(now()));
        match fetch_optional_job(query, &self.pool, "retry job").await? {
            Some(job) => Ok(job),
            None => Err(not_changed(id, self.status(tenant, id).await?, "retried")),
        }
    }

    async fn status(&self, tenant: &TenantId, id: JobId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("select status from jobs where tenant_id = ?1 and id = ?2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("job status"))
    }
}
