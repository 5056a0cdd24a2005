use jobwire_core::{Job, JobId};
use serde_json::Value;
use sqlx::types::Json;

use super::PgStore;
use super::row::{columns, fetch_optional_job};
use crate::{Outcome, StoreError};

impl PgStore {
    /// Ends a `running` job. `None` when the job is no longer running (so a
    /// stale worker cannot overwrite a newer state).
    pub(crate) async fn finish(
        &self,
        id: JobId,
        outcome: Outcome,
    ) -> Result<Option<Job>, StoreError> {
        let (status, result, error) = match outcome {
            Outcome::Succeeded(result) => ("succeeded", Some(Json(result)), None),
            Outcome::Failed(error) => ("failed", None, Some(error)),
        };
        let query = sqlx::query_as(concat!(
            "update jobs set status = $2, result = $3, error = $4, finished_at = now(), ",
            "updated_at = now(), version = version + 1 ",
            "where id = $1 and status = 'running' returning ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(status)
        .bind(result)
        .bind(error);
        fetch_optional_job(query, &self.pool, "finish job").await
    }

    /// Records the progress a running job's handler reported. `None` when the
    /// job is no longer running.
    pub(crate) async fn report_progress(
        &self,
        id: JobId,
        progress: &Value,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set progress = $2, updated_at = now(), version = version + 1 ",
            "where id = $1 and status = 'running' returning ",
            columns!()
        ))
        .bind(id.as_uuid())
        .bind(Json(progress));
        fetch_optional_job(query, &self.pool, "report progress").await
    }
}
