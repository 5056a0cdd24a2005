use jobwire_core::{Job, NewJob};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::PgStore;
use super::row::{JobRow, columns};
use crate::{StoreError, in_given_order};

impl PgStore {
    /// Inserts the jobs as `queued` in one statement (one transaction): all of
    /// them or none. Returns them in the order given.
    pub(crate) async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<Job>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.id.as_uuid()).collect();
        let tenants: Vec<&str> = jobs.iter().map(|j| j.tenant.as_str()).collect();
        let types: Vec<&str> = jobs.iter().map(|j| j.job_type.as_str()).collect();
        let payloads: Vec<Json<&Value>> = jobs.iter().map(|j| Json(&j.payload)).collect();
        let priorities: Vec<&str> = jobs.iter().map(|j| j.priority.as_str()).collect();
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "insert into jobs (id, tenant_id, job_type, payload, priority, status) ",
            "select id, tenant_id, job_type, payload, priority, 'queued' ",
            "from unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::text[]) ",
            "as t(id, tenant_id, job_type, payload, priority) ",
            "returning ",
            columns!()
        ))
        .bind(&ids)
        .bind(&tenants)
        .bind(&types)
        .bind(&payloads)
        .bind(&priorities)
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
