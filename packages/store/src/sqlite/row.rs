use jobwire_core::Job;

use crate::StoreError;

/// A `jobs` row of this adapter.
pub(crate) type JobRow = crate::row::JobRow<String>;

pub(crate) use crate::row::{columns, update_columns};

/// The update columns of a row of this adapter.
pub(crate) type UpdateRow = crate::row::UpdateRow<String>;

/// Runs a query that returns update rows.
pub(crate) async fn fetch_changes<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Sqlite, UpdateRow, sqlx::sqlite::SqliteArguments<'q>>,
    pool: &sqlx::SqlitePool,
    op: &'static str,
) -> Result<Vec<crate::Change>, StoreError> {
    query
        .fetch_all(pool)
        .await
        .map_err(StoreError::query(op))?
        .into_iter()
        .map(crate::Change::try_from)
        .collect()
}

/// What every write sets besides its own columns: a new version, a new place
/// in the change feed (SQLite serialises writes, so max + 1 is unique), and
/// the time, from the numbered parameter given.
macro_rules! bump {
    ($now:literal) => {
        concat!(
            "version = version + 1, ",
            "change_seq = (select coalesce(max(change_seq), 0) + 1 from jobs), ",
            "updated_at = ",
            $now
        )
    };
}
pub(crate) use bump;

/// `attempt_errors` with the attempt that ends now appended, failed with
/// the text expression `$error` at the time `$now` (a numbered parameter);
/// for the `set` of an UPDATE, where `attempt` and `started_at` are still the
/// attempt's own. `$[#]` is the end of the array.
macro_rules! append_attempt_error {
    ($error:literal, $now:literal) => {
        concat!(
            "json_insert(attempt_errors, '$[#]', json_object(",
            "'attempt', jobs.attempt, 'startedAt', jobs.started_at, 'endedAt', ",
            $now,
            ", 'error', ",
            $error,
            "))"
        )
    };
}
pub(crate) use append_attempt_error;

/// `expires_at` for a job that ends now (see the Postgres adapter's macro of
/// the same name), as Unix milliseconds, `$now_ms` being a numbered
/// parameter. `created_at` is RFC 3339 text, which `julianday` reads; the
/// extra millisecond makes up for the truncation.
macro_rules! expires_now {
    ($now_ms:literal) => {
        concat!(
            "case when jobs.retain_ms is not null then max(",
            $now_ms,
            " + jobs.retain_ms, ",
            "case when jobs.idempotency_key is not null ",
            "then cast((julianday(jobs.created_at) - 2440587.5) * 86400000 as integer) + 86400001 ",
            "else 0 end) end"
        )
    };
}
pub(crate) use expires_now;

/// The text of a plan, as `EXPLAIN QUERY PLAN` returned it a step per row.
pub(crate) fn plan_text(lines: Vec<(i64, i64, i64, String)>) -> String {
    let steps: Vec<String> = lines.into_iter().map(|(_, _, _, detail)| detail).collect();
    steps.join("\n")
}

/// Runs a query that returns job rows.
pub(crate) async fn fetch_jobs<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Sqlite, JobRow, sqlx::sqlite::SqliteArguments<'q>>,
    pool: &sqlx::SqlitePool,
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
    query: sqlx::query::QueryAs<'q, sqlx::Sqlite, JobRow, sqlx::sqlite::SqliteArguments<'q>>,
    pool: &sqlx::SqlitePool,
    op: &'static str,
) -> Result<Option<Job>, StoreError> {
    query
        .fetch_optional(pool)
        .await
        .map_err(StoreError::query(op))?
        .map(Job::try_from)
        .transpose()
}
