//! Retention on SQLite: the same steps as Postgres. The embedded process is
//! the only one using its file, so there is no other sweeper to keep out.

use jobwire_core::{Retention, TenantId};
use sqlx::types::Json;

use super::row::plan_text;
use super::{SqliteStore, now, text};
use crate::{RETENTION_STEPS, StoreError, SweepStep, Swept, TableSize, keyed_ms, retention_ms};

/// One sweep statement around the `select` of the rows it deletes (an index
/// walk from the oldest expired row, `limit ?1`), returning them.
macro_rules! sweep {
    ($select:expr) => {
        concat!(
            "delete from jobs where id in (",
            $select,
            ") returning tenant_id, status, change_seq"
        )
    };
}

/// The condition every sweep adds: the job at the newest place of the change
/// feed stays. Every write takes the place after the newest one (SQLite has
/// no sequence), and a place handed out again would look old to the clients
/// that saw it the first time.
macro_rules! not_newest {
    () => {
        "change_seq < (select max(change_seq) from jobs)"
    };
}

/// Jobs with a retention of their own (`?2`: now, in Unix milliseconds), by
/// `jobs_expires_idx`.
const OWN: &str = sweep!(concat!(
    "select id from jobs where expires_at <= ?2 ",
    "and status in ('succeeded', 'failed', 'cancelled') and ",
    not_newest!(),
    " order by expires_at limit ?1"
));

/// Jobs of status `?2` finished before `?3`, without a key, by `jobs_retention_idx`.
const BY_STATUS: &str = sweep!(concat!(
    "select id from jobs where status = ?2 and retain_ms is null and idempotency_key is null ",
    "and finished_at is not null and finished_at < ?3 and ",
    not_newest!(),
    " order by finished_at limit ?1"
));

/// The same with a key, also created before `?4`, by `jobs_retention_keyed_idx`.
const BY_STATUS_KEYED: &str = sweep!(concat!(
    "select id from jobs where status = ?2 and retain_ms is null ",
    "and idempotency_key is not null and finished_at is not null and finished_at < ?3 ",
    "and created_at < ?4 and ",
    not_newest!(),
    " order by created_at limit ?1"
));

fn sql(step: SweepStep) -> &'static str {
    match step {
        SweepStep::Own => OWN,
        SweepStep::Status(_) => BY_STATUS,
        SweepStep::Keyed(_) => BY_STATUS_KEYED,
    }
}

/// Binds the arguments of `step` to `query` (its statement, or an EXPLAIN of it).
fn bind<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments<'q>>,
    step: SweepStep,
    retention: &Retention,
    batch: u32,
) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments<'q>> {
    let at = now();
    let before = |ms: i64| text(at - chrono::Duration::milliseconds(ms));
    let query = query.bind(i64::from(batch));
    match step {
        SweepStep::Own => query.bind(at.timestamp_millis()),
        SweepStep::Status(status) => query
            .bind(status.as_str())
            .bind(before(retention_ms(retention, status))),
        SweepStep::Keyed(status) => query
            .bind(status.as_str())
            .bind(before(retention_ms(retention, status)))
            .bind(before(keyed_ms(retention, status))),
    }
}

/// Most rows one statement deletes here, whatever the batch asked for:
/// SQLite runs one write at a time (one connection), so a create waits for
/// the whole of a sweep statement, which this keeps to tens of milliseconds.
const MAX_BATCH: u32 = 200;

impl SqliteStore {
    pub(crate) async fn sweep_expired(
        &self,
        retention: &Retention,
        batch: u32,
    ) -> Result<Swept, StoreError> {
        let batch = batch.min(MAX_BATCH);
        let mut swept = Swept::default();
        for step in RETENTION_STEPS {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(StoreError::query("begin sweep"))?;
            let gone: Vec<(String, String, i64)> =
                bind(sqlx::query_as(sql(step)), step, retention, batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::query("delete expired jobs"))?;
            let mut through = std::collections::HashMap::<&str, i64>::new();
            let mut counts = std::collections::HashMap::<&str, i64>::new();
            for (tenant, status, place) in &gone {
                let newest = through.entry(tenant).or_insert(*place);
                *newest = (*newest).max(*place);
                *counts.entry(status).or_default() += 1;
            }
            if !through.is_empty() {
                sqlx::query(
                    "insert into retention_swept (tenant_id, through) \
                     select value ->> '$[0]', value ->> '$[1]' from json_each(?1) where true \
                     on conflict (tenant_id) do update \
                     set through = max(through, excluded.through)",
                )
                .bind(Json(through.into_iter().collect::<Vec<_>>()))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("record what the sweep deleted"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("commit sweep"))?;
            let counts = counts
                .into_iter()
                .map(|(status, n)| (status.to_owned(), n))
                .collect();
            swept.add(counts, batch)?;
        }
        Ok(swept)
    }

    pub(crate) async fn explain_sweep(
        &self,
        retention: &Retention,
        batch: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut plans = Vec::with_capacity(RETENTION_STEPS.len());
        for step in RETENTION_STEPS {
            let explain = format!("explain query plan {}", sql(step));
            let lines: Vec<(i64, i64, i64, String)> =
                bind(sqlx::query_as(&explain), step, retention, batch)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::query("explain the sweep"))?;
            plans.push(plan_text(lines));
        }
        Ok(plans)
    }

    pub(crate) async fn swept_through(&self, tenant: &TenantId) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("select through from retention_swept where tenant_id = ?1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query("read what the sweep deleted"))
    }

    pub(crate) async fn table_size(&self) -> Result<TableSize, StoreError> {
        // The whole file: SQLite only tells the size of one table when built
        // with the `dbstat` table, and the jobs are nearly all of it anyway.
        let (rows, bytes): (i64, i64) = sqlx::query_as(
            "select (select count(*) from jobs), \
             (select page_count * page_size from pragma_page_count(), pragma_page_size())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::query("size of the jobs table"))?;
        Ok(TableSize { rows, bytes })
    }
}
