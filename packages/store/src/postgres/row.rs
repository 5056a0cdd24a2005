use jobwire_core::Job;
use uuid::Uuid;

use super::PgStore;
use crate::StoreError;

/// A `jobs` row of this adapter.
pub(crate) type JobRow = crate::row::JobRow<Uuid>;

pub(crate) use crate::row::{columns, update_columns};

/// The update columns of a row of this adapter.
pub(crate) type UpdateRow = crate::row::UpdateRow<Uuid>;

/// Runs a query that returns update rows.
pub(crate) async fn fetch_changes<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, UpdateRow, sqlx::postgres::PgArguments>,
    store: &PgStore,
    op: &'static str,
) -> Result<Vec<crate::Change>, StoreError> {
    query
        .fetch_all(&mut *store.conn().await?)
        .await
        .map_err(StoreError::query(op))?
        .into_iter()
        .map(crate::Change::try_from)
        .collect()
}

/// What every write sets besides its own columns: a new version, a new place
/// in the change feed, the time.
macro_rules! bump {
    () => {
        "version = version + 1, change_seq = nextval('jobs_change_seq'), updated_at = now()"
    };
}
pub(crate) use bump;

/// `attempt_errors` with the attempt that ends now appended, failed with
/// the text expression `$error`; for the `set` of an UPDATE, where `attempt`
/// and `started_at` are still the attempt's own.
macro_rules! append_attempt_error {
    ($error:literal) => {
        concat!(
            "attempt_errors || jsonb_build_array(jsonb_build_object(",
            "'attempt', jobs.attempt, 'startedAt', jobs.started_at, 'endedAt', now(), ",
            "'error', ",
            $error,
            "))"
        )
    };
}
pub(crate) use append_attempt_error;

/// `expires_at` for a job that ends now (succeeded, failed or cancelled):
/// when the sweeper may delete it if it has a retention of its own, but not
/// before its idempotency key's 24 hours ([`jobwire_core::IDEMPOTENCY_KEY_LIFETIME`],
/// which a literal cannot name) are over; null for a job kept for its final
/// status's retention, which the sweeper reads from its own settings.
macro_rules! expires_now {
    () => {
        concat!(
            "case when jobs.retain_ms is not null then greatest(",
            "now() + jobs.retain_ms * interval '1 millisecond', ",
            "case when jobs.idempotency_key is not null ",
            "then jobs.created_at + interval '24 hours' end) end"
        )
    };
}
pub(crate) use expires_now;

/// A `locked` CTE that locks the rows matching a condition in ID order,
/// skipping rows another write holds: for sweeps (reaping lapsed leases,
/// promoting due jobs) that run on every worker and come back on the next
/// tick, so that they never wait for, or deadlock with, anyone. Like the
/// batch updates, they run unprepared (see [`super::claim::in_id_order`]).
macro_rules! lock_in_order {
    ($condition:literal) => {
        concat!(
            "with locked as materialized (select id from jobs where ",
            $condition,
            " order by id for update skip locked) "
        )
    };
}
pub(crate) use lock_in_order;

/// Runs a query that returns job rows.
pub(crate) async fn fetch_jobs<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments>,
    store: &PgStore,
    op: &'static str,
) -> Result<Vec<Job>, StoreError> {
    query
        .fetch_all(&mut *store.conn().await?)
        .await
        .map_err(StoreError::query(op))?
        .into_iter()
        .map(Job::try_from)
        .collect()
}

/// Runs a query that returns job rows by walking a partial index of `jobs`
/// (see [`index_walk`]).
pub(crate) async fn fetch_jobs_walking<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments>,
    store: &PgStore,
    op: &'static str,
) -> Result<Vec<Job>, StoreError> {
    let mut tx = index_walk(store).await?;
    let rows = query
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::query(op))?;
    tx.commit().await.map_err(StoreError::query(op))?;
    rows.into_iter().map(Job::try_from).collect()
}

/// A transaction for a sweep that reads one of the partial indexes of
/// `jobs` (`status = 'running'`, `'queued'`, `'scheduled'`), with bitmap scans off. While a
/// backlog drains, every job leaves those indexes within seconds and the
/// planner's row estimates lag far behind; it then picks a bitmap scan,
/// which visits the heap page of every dead index entry on every run (a
/// million-job drain made the lease reaper take 100 ms every 250 ms and the
/// lost-ID sweep 400 ms: Postgres time the claims waited for). A plain index scan
/// marks dead entries as it passes them, so the next run skips them.
pub(crate) async fn index_walk(
    store: &PgStore,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = store
        .pool()
        .begin()
        .await
        .map_err(StoreError::query("begin index walk"))?;
    sqlx::query("set local enable_bitmapscan = off")
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query("turn bitmap scans off"))?;
    Ok(tx)
}

/// The text of a plan, as `EXPLAIN` returned it a line per row.
pub(crate) fn plan_text(lines: Vec<(String,)>) -> String {
    let lines: Vec<String> = lines.into_iter().map(|(line,)| line).collect();
    lines.join("\n")
}

/// Runs a query that returns at most one job row.
pub(crate) async fn fetch_optional_job<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, JobRow, sqlx::postgres::PgArguments>,
    store: &PgStore,
    op: &'static str,
) -> Result<Option<Job>, StoreError> {
    query
        .fetch_optional(&mut *store.conn().await?)
        .await
        .map_err(StoreError::query(op))?
        .map(Job::try_from)
        .transpose()
}
