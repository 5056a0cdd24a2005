//! Retention: deleting finished jobs once kept long enough, a batch per
//! statement, and what the sweep leaves behind for resuming clients.

use jobwire_core::{Retention, TenantId};

use super::PgStore;
use super::row::plan_text;
use crate::{RETENTION_STEPS, StoreError, SweepStep, Swept, TableSize, keyed_ms, retention_ms};

/// One sweep statement around the `select` of the rows it deletes (an index
/// walk from the oldest expired row, `limit $1`): deletes them, records per
/// tenant the newest place of the jobs deleted (see `retention_swept`), and
/// returns the count per status. Rows another write holds are skipped, to be
/// deleted by a later sweep.
macro_rules! sweep {
    ($select:literal) => {
        concat!(
            "with doomed as materialized (",
            $select,
            " for update skip locked), ",
            // An array, not `in (select …)`: the delete then looks each row up
            // by its key, where a join may choose to scan the table instead.
            "gone as (delete from jobs where id = any(array(select id from doomed)) ",
            "returning tenant_id, status, change_seq), ",
            "marked as (insert into retention_swept (tenant_id, through) ",
            "select tenant_id, max(change_seq) from gone group by tenant_id ",
            "on conflict (tenant_id) do update ",
            "set through = greatest(retention_swept.through, excluded.through)) ",
            "select status, count(*) from gone group by status"
        )
    };
}

/// Jobs with a retention of their own, by `jobs_expires_idx`.
const OWN: &str = sweep!(
    "select id from jobs where expires_at <= now() \
     and status in ('succeeded', 'failed', 'cancelled') order by expires_at limit $1"
);

/// Jobs of status `$2` kept for `$3` ms, without a key, by `jobs_retention_idx`.
const BY_STATUS: &str = sweep!(
    "select id from jobs where status = $2 and retain_ms is null and idempotency_key is null \
     and finished_at < now() - $3::bigint * interval '1 millisecond' \
     order by finished_at limit $1"
);

/// The same with a key, also `$4` ms old (the key's lifetime, or more), by
/// `jobs_retention_keyed_idx`.
const BY_STATUS_KEYED: &str = sweep!(
    "select id from jobs where status = $2 and retain_ms is null \
     and idempotency_key is not null \
     and finished_at < now() - $3::bigint * interval '1 millisecond' \
     and created_at < now() - $4::bigint * interval '1 millisecond' \
     order by created_at limit $1"
);

/// The SQL of `step`.
fn sql(step: SweepStep) -> &'static str {
    match step {
        SweepStep::Own => OWN,
        SweepStep::Status(_) => BY_STATUS,
        SweepStep::Keyed(_) => BY_STATUS_KEYED,
    }
}

/// Binds the arguments of `step` to `query` (its statement, or an EXPLAIN of it).
fn bind<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    step: SweepStep,
    retention: &Retention,
    batch: u32,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let query = query.bind(i64::from(batch));
    match step {
        SweepStep::Own => query,
        SweepStep::Status(status) => query
            .bind(status.as_str())
            .bind(retention_ms(retention, status)),
        SweepStep::Keyed(status) => query
            .bind(status.as_str())
            .bind(retention_ms(retention, status))
            .bind(keyed_ms(retention, status)),
    }
    // Planned for the arguments of each run, as the other sweeps are (see
    // `super::claim::in_id_order`): the cut-off decides how much of an index
    // the statement may walk.
    .persistent(false)
}

impl PgStore {
    /// The advisory lock a sweeper holds for each of its transactions, so
    /// that one sweeper works at a time however many workers run one
    /// ("jobwire" in ASCII, then 1). Advisory locks are per database; holding
    /// it (`select pg_advisory_lock(…)` in a session) pauses every sweeper.
    pub const SWEEP_LOCK: i64 = 0x6a6f_6277_6972_6501;

    pub(crate) async fn sweep_expired(
        &self,
        retention: &Retention,
        batch: u32,
    ) -> Result<Swept, StoreError> {
        let mut swept = Swept::default();
        for step in RETENTION_STEPS {
            let mut tx = self
                .pool
                .begin()
                .await
                .map_err(StoreError::query("begin sweep"))?;
            let ours: bool = sqlx::query_scalar("select pg_try_advisory_xact_lock($1)")
                .bind(Self::SWEEP_LOCK)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query("take the sweep lock"))?;
            if !ours {
                tx.rollback()
                    .await
                    .map_err(StoreError::query("end sweep"))?;
                swept.busy = true;
                return Ok(swept);
            }
            let counts: Vec<(String, i64)> =
                bind(sqlx::query_as(sql(step)), step, retention, batch)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(StoreError::query("delete expired jobs"))?;
            tx.commit()
                .await
                .map_err(StoreError::query("commit sweep"))?;
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
            let explain = format!("explain {}", sql(step));
            let lines: Vec<(String,)> = bind(sqlx::query_as(&explain), step, retention, batch)
                .fetch_all(&mut *self.conn().await?)
                .await
                .map_err(StoreError::query("explain the sweep"))?;
            plans.push(plan_text(lines));
        }
        Ok(plans)
    }

    pub(crate) async fn swept_through(&self, tenant: &TenantId) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar("select through from retention_swept where tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *self.conn().await?)
            .await
            .map_err(StoreError::query("read what the sweep deleted"))
    }

    pub(crate) async fn table_size(&self) -> Result<TableSize, StoreError> {
        // `reltuples` is the planner's estimate, kept by vacuum and analyze
        // (-1 before the first): counting would read the whole table.
        let (rows, bytes): (i64, i64) = sqlx::query_as(
            "select greatest(reltuples, 0)::bigint, pg_total_relation_size(oid) \
             from pg_class where oid = 'jobs'::regclass",
        )
        .fetch_one(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("size of the jobs table"))?;
        Ok(TableSize { rows, bytes })
    }
}
