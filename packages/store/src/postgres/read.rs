use jobwire_core::{Job, JobId, JobType, Status, TenantId};

use super::PgStore;
use super::row::{
    JobRow, columns, fetch_changes, fetch_jobs, fetch_optional_job, plan_text, update_columns,
};
use crate::{ActiveCount, BucketCounts, Change, ListFilter, Page, StoreError, TenantPage};

impl PgStore {
    /// A tenant's job; `None` for an unknown ID and for another tenant's job alike.
    pub(crate) async fn get(
        &self,
        tenant: &TenantId,
        id: JobId,
    ) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from jobs where tenant_id = $1 and id = $2"
        ))
        .bind(tenant.as_str())
        .bind(id.as_uuid());
        fetch_optional_job(query, self, "get job").await
    }

    pub(crate) async fn find(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let query = sqlx::query_as(concat!("select ", columns!(), " from jobs where id = $1"))
            .bind(id.as_uuid());
        fetch_optional_job(query, self, "find job").await
    }

    pub(crate) async fn list(
        &self,
        tenant: &TenantId,
        filter: &ListFilter,
    ) -> Result<Page, StoreError> {
        let limit = i64::from(filter.limit);
        let rows: Vec<JobRow> = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from jobs where tenant_id = $1 ",
            "and ($2::text is null or status = $2) ",
            "and ($3::text is null or job_type = $3) ",
            "and ($4::uuid is null or id < $4) ",
            "order by id desc limit $5"
        ))
        .bind(tenant.as_str())
        .bind(filter.status.map(Status::as_str))
        .bind(filter.job_type.as_ref().map(JobType::as_str))
        .bind(filter.before.map(|id| id.as_uuid()))
        .bind(limit + 1)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("list jobs"))?;
        let mut jobs: Vec<Job> = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<_, _>>()?;
        let next_cursor = if jobs.len() as i64 > limit {
            jobs.truncate(filter.limit as usize);
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Ok(Page { jobs, next_cursor })
    }

    pub(crate) async fn get_many(
        &self,
        tenant: &TenantId,
        ids: &[JobId],
    ) -> Result<Vec<Job>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(JobId::as_uuid).collect();
        let query = sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from jobs where tenant_id = $1 and id = any($2) order by id"
        ))
        .bind(tenant.as_str())
        .bind(ids);
        fetch_jobs(query, self, "get jobs").await
    }

    pub(crate) async fn changes_since(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        let query = sqlx::query_as(concat!(
            "select ",
            update_columns!(),
            " from jobs where tenant_id = $1 and change_seq > $2 order by change_seq limit $3"
        ))
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit));
        fetch_changes(query, self, "changes since").await
    }

    pub(crate) async fn count_changes_since(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u32,
    ) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "select count(*) from (select 1 from jobs where tenant_id = $1 and change_seq > $2 limit $3) as behind",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_one(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("count changes since"))?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    pub(crate) async fn nth_latest_change(
        &self,
        tenant: &TenantId,
        n: u32,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(
            "select change_seq from jobs where tenant_id = $1 order by change_seq desc \
             limit 1 offset $2",
        )
        .bind(tenant.as_str())
        .bind(i64::from(n))
        .fetch_optional(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("nth latest change"))
    }

    pub(crate) async fn latest_change(&self) -> Result<Option<i64>, StoreError> {
        let (kept, swept): (Option<i64>, Option<i64>) = sqlx::query_as(
            "select (select max(change_seq) from jobs), (select max(through) from retention_swept)",
        )
        .fetch_one(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("latest change"))?;
        Ok(kept.max(swept))
    }

    pub(crate) async fn changes_at(&self, seqs: &[i64]) -> Result<Vec<Change>, StoreError> {
        let query = sqlx::query_as(concat!(
            "select ",
            update_columns!(),
            " from jobs where change_seq = any($1) order by change_seq"
        ))
        .bind(seqs);
        fetch_changes(query, self, "changes at").await
    }

    pub(crate) async fn changes_of(
        &self,
        tenant: &TenantId,
        ids: &[JobId],
    ) -> Result<Vec<Change>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(JobId::as_uuid).collect();
        let query = sqlx::query_as(concat!(
            "select ",
            update_columns!(),
            " from jobs where tenant_id = $1 and id = any($2) order by id"
        ))
        .bind(tenant.as_str())
        .bind(ids);
        fetch_changes(query, self, "changes of jobs").await
    }

    pub(crate) async fn active_counts(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<ActiveCount>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "select status, priority, job_type, count(*) from jobs where tenant_id = $1 \
             and status in ('scheduled', 'queued', 'running') group by status, priority, job_type",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(StoreError::query("count active jobs"))?;
        rows.into_iter().map(ActiveCount::from_row).collect()
    }

    pub(crate) async fn tenant_counts(&self, limit: u32) -> Result<TenantPage, StoreError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(TENANT_COUNTS)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(StoreError::query("count jobs per tenant"))?;
        TenantPage::from_rows(rows)
    }

    pub(crate) async fn bucket_counts(&self) -> Result<Vec<BucketCounts>, StoreError> {
        let rows: Vec<(Option<i64>, Option<String>, String, i64)> = sqlx::query_as(BUCKET_COUNTS)
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(StoreError::query("count jobs per tenant bucket"))?;
        crate::fold_buckets(rows)
    }

    pub(crate) async fn explain_counts(&self) -> Result<Vec<String>, StoreError> {
        let mut plans = Vec::with_capacity(2);
        for (query, limit) in [(TENANT_COUNTS, true), (BUCKET_COUNTS, false)] {
            let explain = format!("explain {query}");
            let mut explain = sqlx::query_as(&explain);
            if limit {
                explain = explain.bind(100_i64);
            }
            let lines: Vec<(String,)> = explain
                .fetch_all(&mut *self.conn().await?)
                .await
                .map_err(StoreError::query("explain the counts"))?;
            plans.push(plan_text(lines));
        }
        Ok(plans)
    }
}

/// The unfinished jobs, one status at a time: each branch reads its status's
/// partial index (Postgres), where `status in (…)` over the three scans the
/// whole table, finished jobs and all (about 30 times slower with 100
/// finished jobs for each unfinished one).
macro_rules! unfinished {
    () => {
        "(select tenant_id, tenant_bucket, status from jobs where status = 'scheduled' \
         union all select tenant_id, tenant_bucket, status from jobs where status = 'queued' \
         union all select tenant_id, tenant_bucket, status from jobs where status = 'running') \
         as unfinished"
    };
}

/// Per tenant: its scheduled, queued and running jobs, and (on every row)
/// how many tenants there are, most queued first, at most the limit bound.
const TENANT_COUNTS: &str = concat!(
    "select tenant_id, \
     sum(case when status = 'scheduled' then 1 else 0 end) as scheduled, \
     sum(case when status = 'queued' then 1 else 0 end) as queued, \
     sum(case when status = 'running' then 1 else 0 end) as running, \
     count(*) over () from ",
    unfinished!(),
    " group by tenant_id order by queued desc, running desc, scheduled desc, tenant_id limit $1"
);

/// Per stored bucket and status, the jobs; jobs stored without a bucket
/// (before it was stored) grouped by tenant instead.
const BUCKET_COUNTS: &str = concat!(
    "select tenant_bucket::bigint, case when tenant_bucket is null then tenant_id end, status, count(*) from ",
    unfinished!(),
    " group by 1, 2, 3"
);
