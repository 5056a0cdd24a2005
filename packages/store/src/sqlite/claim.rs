use std::time::Duration;

use jobwire_core::JobId;

use sqlx::types::Json;

use super::row::{JobRow, columns};
use super::{SqliteStore, now, text};
use crate::{Claim, LeaseToken, StoreError};

impl SqliteStore {
    /// One statement for the whole batch. Each claimed row takes the next
    /// place in the change feed: the uncorrelated `max(change_seq)` is
    /// evaluated once per statement, before any row changes, and the rows
    /// claimed are numbered 1, 2, … (so a job not claimed leaves no hole).
    /// `cross join` keeps the batch as the outer loop, so each job is found by
    /// its key: left to itself, the planner may scan every queued job instead,
    /// which made claims slower the longer the backlog.
    pub(crate) async fn claim_many(
        &self,
        jobs: &[(JobId, LeaseToken)],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let at = now();
        let batch: Vec<(String, &str)> = jobs
            .iter()
            .map(|(id, token)| (id.to_string(), token.0.as_str()))
            .collect();
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "update jobs set status = 'running', attempt = attempt + 1, started_at = ?2, ",
            "lease_token = claim.token, lease_owner = ?3, lease_expires_at = ?4, ",
            "version = version + 1, ",
            "change_seq = (select coalesce(max(change_seq), 0) from jobs) + claim.n, ",
            "updated_at = ?2 ",
            "from (select j.id as job, e.value ->> '$[1]' as token, ",
            "row_number() over (order by e.key) as n ",
            "from json_each(?1) as e cross join jobs as j on j.id = e.value ->> '$[0]' ",
            "where j.status = 'queued') as claim ",
            "where jobs.id = claim.job returning ",
            columns!()
        ))
        .bind(Json(batch))
        .bind(text(at))
        .bind(worker)
        .bind(text(at + lease))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("claim jobs"))?;
        rows.into_iter().map(Claim::try_from).collect()
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
