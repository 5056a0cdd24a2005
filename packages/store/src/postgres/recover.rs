use jobwire_core::{Job, JobId, Priority};
use uuid::Uuid;

use super::PgStore;
use super::row::{JobRow, columns};
use crate::StoreError;

impl PgStore {
    /// Puts every `running` job back to `queued` (for a process that knows no
    /// worker of its own can still be running them).
    pub(crate) async fn requeue_running(&self) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "update jobs set status = 'queued', updated_at = now(), version = version + 1 ",
            "where status = 'running' returning ",
            columns!()
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("requeue running jobs"))?;
        rows.into_iter().map(Job::try_from).collect()
    }

    /// Every `queued` job, oldest first, to hand to the queue again.
    pub(crate) async fn queued(&self) -> Result<Vec<(JobId, Priority)>, StoreError> {
        let rows: Vec<(Uuid, String)> =
            sqlx::query_as("select id, priority from jobs where status = 'queued' order by id")
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query("list queued jobs"))?;
        rows.into_iter()
            .map(|(id, priority)| {
                let priority = priority
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("job {id}: {e}")))?;
                Ok((JobId::from(id), priority))
            })
            .collect()
    }
}
