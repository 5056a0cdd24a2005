use jobwire_core::{Job, JobId};
use serde_json::Value;
use sqlx::types::Json;

use super::row::{columns, fetch_optional_job};
use super::{SqliteStore, now};
use crate::{Outcome, StoreError};

impl SqliteStore {
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
            "update jobs set status = ?2, result = ?3, error = ?4, finished_at = ?5, ",
            "updated_at = ?5, version = version + 1 ",
            "where id = ?1 and status = 'running' returning ",
            columns!()
        ))
        .bind(id.to_string())
        .bind(status)
        .bind(result)
        .bind(error)
        .bind(now());
        fetch_optional_job(query, &self.pool, "finish job").await
    }

    pub(crate) async fn report_progress(
        &self,
        id: JobId,
        progress: &Value,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "update jobs set progress = ?2, updated_at = ?3, version = version + 1 ",
            "where id = ?1 and status = 'running' returning ",
            columns!()
        ))
        .bind(id.to_string())
        .bind(Json(progress))
        .bind(now());
        fetch_optional_job(query, &self.pool, "report progress").await
    }
}
