use jobwire_core::{Job, JobId};

use super::PgStore;
use super::row::{columns, fetch_optional_job};
use crate::StoreError;

impl PgStore {
    /// Moves a `queued` job to `running` and counts the attempt. `None` when the
    /// job is not queued (already claimed, cancelled, finished, or unknown): an
    /// ID popped twice therefore runs once.
    pub(crate) async fn claim(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'running', attempt = attempt + 1, started_at = now(), ",
            "updated_at = now(), version = version + 1 ",
            "where id = $1 and status = 'queued' returning ",
            columns!()
        ))
        .bind(id.as_uuid());
        fetch_optional_job(query, &self.pool, "claim job").await
    }
}
