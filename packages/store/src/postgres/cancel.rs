use jobwire_core::{Job, JobId, TenantId};

use super::PgStore;
use super::row::{columns, fetch_optional_job};
use crate::{StoreError, not_cancellable};

impl PgStore {
    /// Cancels a tenant's `queued` job, so that it never runs: a worker that
    /// pops its ID later finds nothing to claim.
    pub(crate) async fn cancel(&self, tenant: &TenantId, id: JobId) -> Result<Job, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'cancelled', finished_at = now(), updated_at = now(), ",
            "version = version + 1 ",
            "where tenant_id = $1 and id = $2 and status = 'queued' returning ",
            columns!()
        ))
        .bind(tenant.as_str())
        .bind(id.as_uuid());
        if let Some(job) = fetch_optional_job(query, &self.pool, "cancel job").await? {
            return Ok(job);
        }
        let status: Option<String> =
            sqlx::query_scalar("select status from jobs where tenant_id = $1 and id = $2")
                .bind(tenant.as_str())
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::query("cancel job"))?;
        Err(not_cancellable(id, status))
    }
}
