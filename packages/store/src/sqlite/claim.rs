use jobwire_core::{Job, JobId};

use super::row::{columns, fetch_optional_job};
use super::{SqliteStore, now};
use crate::StoreError;

impl SqliteStore {
    pub(crate) async fn claim(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set status = 'running', attempt = attempt + 1, started_at = ?2, ",
            "updated_at = ?2, version = version + 1 ",
            "where id = ?1 and status = 'queued' returning ",
            columns!()
        ))
        .bind(id.to_string())
        .bind(now());
        fetch_optional_job(query, &self.pool, "claim job").await
    }
}
