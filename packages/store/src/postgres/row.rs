use jobwire_core::Job;
use uuid::Uuid;

use crate::StoreError;

/// A `jobs` row of this adapter.
pub(crate) type JobRow = crate::row::JobRow<Uuid>;

pub(crate) use crate::row::columns;

/// What every write sets besides its own columns: a new version, a new place
/// in the change feed, the time.
macro_rules! bump {
    () => {
        "version = version + 1, change_seq = nextval('jobs_change_seq'), updated_at = now()"
    };
}
pub(crate) use bump;

/// A `locked` CTE that locks the rows matching a condition in ID order.
/// Every statement that changes many rows locks them this way first, so two
/// of them (a worker's finish and its lease renewal, say) can never hold
/// locks the other waits for: without it they deadlock now and then, and
/// Postgres aborts one after a second. `skip locked` (second argument) skips
/// rows another write holds, for sweeps that come back on the next tick.
///
/// These statements run unprepared (`.persistent(false)`), so Postgres plans
/// each run for its arguments and the table as it is: a cached generic plan,
/// made while `jobs` was small and not yet analysed, kept scanning the whole
/// table for `id = any($1)` as it grew (280 sequential scans a second at
/// 1,000 jobs/s). One plan per batch or tick costs little.
macro_rules! lock_in_order {
    ($condition:literal) => {
        concat!(
            "with locked as materialized (select id from jobs where ",
            $condition,
            " order by id for update) "
        )
    };
    ($condition:literal, $skip:literal) => {
        concat!(
            "with locked as materialized (select id from jobs where ",
            $condition,
            " order by id for update ",
            $skip,
            ") "
        )
    };
}
pub(crate) use lock_in_order;

/// Runs a query that returns job rows.
pub(crate) async fn fetch_jobs<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments>,
    pool: &sqlx::PgPool,
    op: &'static str,
) -> Result<Vec<Job>, StoreError> {
    query
        .fetch_all(pool)
        .await
        .map_err(StoreError::query(op))?
        .into_iter()
        .map(Job::try_from)
        .collect()
}

/// Runs a query that returns at most one job row.
pub(crate) async fn fetch_optional_job<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments>,
    pool: &sqlx::PgPool,
    op: &'static str,
) -> Result<Option<Job>, StoreError> {
    query
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query(op))?
        .map(Job::try_from)
        .transpose()
}
