use jobwire_core::{Job, JobId, Priority};

use super::row::{JobRow, columns};
use super::{SqliteStore, now};
use crate::StoreError;

impl SqliteStore {
    pub(crate) async fn requeue_running(&self) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "update jobs set status = 'queued', updated_at = ?1, version = version + 1 ",
            "where status = 'running' returning ",
            columns!()
        ))
        .bind(now())
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("requeue running jobs"))?;
        rows.into_iter().map(Job::try_from).collect()
    }

    pub(crate) async fn queued(&self) -> Result<Vec<(JobId, Priority)>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("select id, priority from jobs where status = 'queued' order by id")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("list queued jobs"))?;
        rows.into_iter()
            .map(|(id, priority)| {
                let corrupt =
                    |e: jobwire_core::InvalidValue| StoreError::Corrupt(format!("job {id}: {e}"));
                Ok((
                    id.parse().map_err(corrupt)?,
                    priority.parse().map_err(corrupt)?,
                ))
            })
            .collect()
    }
}
