use std::time::Duration;

use jobwire_core::JobId;
use uuid::Uuid;

use super::PgStore;
use super::row::{JobRow, bump, columns};
use crate::{Claim, LeaseToken, StoreError};

/// The lease token as Postgres stores it; a token that is not a UUID matches nothing.
pub(super) fn token(token: &LeaseToken) -> Option<Uuid> {
    Uuid::parse_str(&token.0).ok()
}

/// Sorts a batch by job ID and splits it into its columns.
///
/// An update driven by `unnest` locks its rows in the order its plan yields
/// them, which for the plans Postgres picks here (the array drives a nested
/// loop over the primary key, or probes a hash of the matching rows) is the
/// array's order. So two writes of overlapping rows (two claims of an ID
/// popped twice, say) lock in the same order and do not deadlock; should a
/// plan ever differ, Postgres detects the deadlock and fails one write, whose
/// jobs are then re-dispatched or run again once their leases lapse. Locking
/// the rows first (`select … for update`) would fix the order whatever the
/// plan, but it writes every row twice and cost a quarter of the throughput
/// of claims and finishes. A worker's own finishes and lease renewals, which
/// overlap, never run at once (see the worker's `lease_writes`).
///
/// These many-row statements run unprepared (`.persistent(false)`), so
/// Postgres plans each run for its arguments and the table as it is: a cached
/// generic plan, made while `jobs` was small and not yet analysed, kept
/// scanning the whole table for `id = any($1)` as it grew (280 sequential
/// scans a second at 1,000 jobs/s). One plan per batch costs little.
pub(super) fn in_id_order<T>(rows: impl Iterator<Item = (Uuid, T)>) -> (Vec<Uuid>, Vec<T>) {
    let mut rows: Vec<(Uuid, T)> = rows.collect();
    rows.sort_unstable_by_key(|(id, _)| *id);
    rows.into_iter().unzip()
}

/// Renews the leases of those of jobs `$3` that worker `$1` runs, by `$2` ms.
/// Found by ID: `status || ''` keeps the planner from walking the partial
/// index of running jobs instead, which a drain fills with dead entries
/// (170 ms per heartbeat behind a million jobs, by a bitmap scan).
pub(super) const HEARTBEAT: &str = concat!(
    "update jobs set lease_expires_at = now() + $2::bigint * interval '1 millisecond' ",
    "from unnest($3::uuid[]) as renewed(job) ",
    "where id = renewed.job and lease_owner = $1 and status || '' = 'running' ",
    "returning id, lease_token"
);

impl PgStore {
    /// One statement for the whole batch, so one commit (one WAL flush)
    /// claims every job in it. See [`in_id_order`] for why the rows are
    /// given sorted.
    pub(crate) async fn claim_many(
        &self,
        jobs: &[(JobId, LeaseToken)],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        let (ids, tokens) =
            in_id_order(jobs.iter().map(|(id, lease)| (id.as_uuid(), token(lease))));
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "update jobs set status = 'running', attempt = attempt + 1, started_at = now(), ",
            "lease_token = claim.token, lease_owner = $3, ",
            "lease_expires_at = now() + $4::bigint * interval '1 millisecond', ",
            bump!(),
            " from unnest($1::uuid[], $2::uuid[]) as claim(job, token) ",
            "where id = claim.job and status = 'queued' ",
            "and claim.token is not null returning ",
            columns!()
        ))
        .persistent(false)
        .bind(ids)
        .bind(tokens)
        .bind(worker)
        .bind(lease.as_millis() as i64)
        .fetch_all(&mut *self.conn().await?)
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
        let (ids, _) = in_id_order(jobs.iter().map(|id| (id.as_uuid(), ())));
        let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(HEARTBEAT)
            .persistent(false)
            .bind(worker)
            .bind(lease.as_millis() as i64)
            .bind(ids)
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(StoreError::query("renew leases"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, token)| Some((JobId::from(id), LeaseToken(token?.to_string()))))
            .collect())
    }
}
