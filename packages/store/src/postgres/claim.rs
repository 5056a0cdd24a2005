use std::time::Duration;

use jobwire_core::JobId;
use uuid::Uuid;

use super::PgStore;
use super::row::{JobRow, bump, columns, lock_in_order};
use crate::{Claim, LeaseToken, StoreError};

/// The lease token as Postgres stores it; a token that is not a UUID matches nothing.
pub(super) fn token(token: &LeaseToken) -> Option<Uuid> {
    Uuid::parse_str(&token.0).ok()
}

impl PgStore {
    /// One statement for the whole batch, so one commit (one WAL flush)
    /// claims every job in it.
    pub(crate) async fn claim_many(
        &self,
        jobs: &[(JobId, LeaseToken)],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let ids: Vec<Uuid> = jobs.iter().map(|(id, _)| id.as_uuid()).collect();
        let tokens: Vec<Option<Uuid>> = jobs.iter().map(|(_, lease)| token(lease)).collect();
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            lock_in_order!("id = any($1::uuid[]) and status = 'queued'"),
            "update jobs set status = 'running', attempt = attempt + 1, started_at = now(), ",
            "lease_token = claim.token, lease_owner = $3, ",
            "lease_expires_at = now() + $4::bigint * interval '1 millisecond', ",
            bump!(),
            " from unnest($1::uuid[], $2::uuid[]) as claim(job, token) ",
            "where id = claim.job and id in (select id from locked) and status = 'queued' ",
            "and claim.token is not null returning ",
            columns!()
        ))
        .persistent(false)
        .bind(ids)
        .bind(tokens)
        .bind(worker)
        .bind(lease.as_millis() as i64)
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
        let ids: Vec<Uuid> = jobs.iter().map(JobId::as_uuid).collect();
        let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(concat!(
            lock_in_order!("lease_owner = $1 and status = 'running' and id = any($3)"),
            "update jobs set lease_expires_at = now() + $2::bigint * interval '1 millisecond' ",
            "where id in (select id from locked) returning id, lease_token"
        ))
        .persistent(false)
        .bind(worker)
        .bind(lease.as_millis() as i64)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query("renew leases"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, token)| Some((JobId::from(id), LeaseToken(token?.to_string()))))
            .collect())
    }
}
