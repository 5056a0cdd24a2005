use jobwire_core::{Job, NewJob};
use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::row::{JobRow, columns};
use super::{SqliteStore, now};
use crate::{StoreError, in_given_order};

impl SqliteStore {
    /// Inserts the jobs as `queued` in one statement: all or none.
    pub(crate) async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<Job>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let at = now();
        let mut query = QueryBuilder::new(
            "insert into jobs (id, tenant_id, job_type, payload, priority, status, created_at, updated_at) ",
        );
        query.push_values(jobs, |mut row, job| {
            row.push_bind(job.id.to_string())
                .push_bind(job.tenant.as_str())
                .push_bind(job.job_type.as_str())
                .push_bind(Json(&job.payload))
                .push_bind(job.priority.as_str())
                .push_bind("queued")
                .push_bind(at)
                .push_bind(at);
        });
        query.push(concat!(" returning ", columns!()));
        let rows: Vec<JobRow> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query("insert jobs"))?;
        let inserted = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<_, _>>()?;
        Ok(in_given_order(inserted, jobs))
    }
}
