use std::time::Duration;

use jobwire_core::JobId;
use uuid::Uuid;

use super::PgStore;
use super::row::{JobRow, bump, columns};
use crate::{Claim, LeaseToken, StoreError};

impl PgStore {
    pub(crate) async fn claim(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "update jobs set status = 'running', attempt = attempt + 1, started_at = now(), ",
            "lease_token = $2, lease_owner = $3, ",
            "lease_expires_at = now() + $4::bigint * interval '1 millisecond', ",
            bump!(),
            " where id = $1 and status = 'queued' returning ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(Uuid::new_v4())
        .bind(worker)
        .bind(lease.as_millis() as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::query("claim job"))?;
        row.map(Claim::try_from).transpose()
    }

    pub(crate) async fn heartbeat(
        &self,
        worker: &str,
        jobs: &[JobId],
        lease: Duration,
    ) -> Result<Vec<(JobId, LeaseToken)>, StoreError> {
        let ids: Vec<Uuid> = jobs.iter().map(JobId::as_uuid).collect();
        let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
            "update jobs set lease_expires_at = now() + $2::bigint * interval '1 millisecond' \
             where lease_owner = $1 and status = 'running' and id = any($3) \
             returning id, lease_token",
        )
        .bind(worker)
        .bind(lease.as_millis() as i64)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("renew leases"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, token)| Some((JobId::from(id), LeaseToken(token?.to_string()))))
            .collect())
    }
}
