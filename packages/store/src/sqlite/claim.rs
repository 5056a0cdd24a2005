use std::time::Duration;

use jobwire_core::JobId;

use super::row::{JobRow, bump, columns};
use super::{SqliteStore, now, text};
use crate::{Claim, LeaseToken, StoreError};

impl SqliteStore {
    pub(crate) async fn claim(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let at = now();
        let row: Option<JobRow> = sqlx::query_as(concat!(
            "update jobs set status = 'running', attempt = attempt + 1, started_at = ?2, ",
            "lease_token = ?3, lease_owner = ?4, lease_expires_at = ?5, ",
            bump!("?2"),
            " where id = ?1 and status = 'queued' returning ",
            columns!()
        ))
        .bind(id.to_string())
        .bind(text(at))
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(worker)
        .bind(text(at + lease))
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
        let ids: Vec<String> = jobs.iter().map(JobId::to_string).collect();
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "update jobs set lease_expires_at = ?2 where lease_owner = ?1 and status = 'running' \
             and id in (select value from json_each(?3)) returning id, lease_token",
        )
        .bind(worker)
        .bind(text(now() + lease))
        .bind(sqlx::types::Json(ids))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("renew leases"))?;
        rows.into_iter()
            .filter_map(|(id, token)| Some((id, token?)))
            .map(|(id, token)| {
                let id = id
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("job {id}: {e}")))?;
                Ok((id, LeaseToken(token)))
            })
            .collect()
    }
}
