use jobwire_core::{Job, JobId};
use serde_json::Value;
use sqlx::types::Json;

use super::row::{JobRow, bump, columns, fetch_optional_job};
use super::{SqliteStore, now, text};
use crate::{Finish, LeaseToken, StoreError};

impl SqliteStore {
    /// One transaction for the whole batch, a statement per job (see `claim_many`).
    pub(crate) async fn finish_many(&self, batch: Vec<Finish>) -> Result<Vec<Job>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(StoreError::query("begin finish"))?;
        let mut finished = Vec::with_capacity(batch.len());
        for Finish { id, lease, outcome } in batch {
            let (status, result, error, run_at) = outcome.columns();
            let row: Option<JobRow> = sqlx::query_as(concat!(
                "update jobs set status = ?3, result = ?4, error = ?5, run_at = ?6, ",
                "finished_at = case when ?3 in ('succeeded', 'failed') then ?7 end, ",
                "lease_token = null, lease_owner = null, lease_expires_at = null, ",
                bump!("?7"),
                " where id = ?1 and status = 'running' and lease_token = ?2 returning ",
                columns!()
            ))
            .bind(id.to_string())
            .bind(&lease.0)
            .bind(status)
            .bind(result.map(Json))
            .bind(error)
            .bind(run_at.map(text))
            .bind(text(now()))
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query("finish job"))?;
            if let Some(row) = row {
                finished.push(Job::try_from(row)?);
            }
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit finish"))?;
        Ok(finished)
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
