//! The job store: the one truth about every job. Two adapters sit behind
//! [`Store`]: PostgreSQL for production (shared by many processes) and SQLite
//! for the embedded single-process mode. Callers never know which one they
//! talk to. In both, every change of a job is one conditional UPDATE that
//! bumps its `version`, and each step of a job's life (`insert`, `claim`,
//! `finish`, `cancel`) has its write in one module per adapter.

mod error;
mod postgres;
mod retry;
mod row;
mod sqlite;

use std::time::Duration;

use chrono::{DateTime, Utc};
use jobwire_core::{
    IDEMPOTENCY_KEY_LIFETIME, Job, JobId, MAX_RETAIN_FOR, NewJob, Priority, QueueEntry, Retention,
    Status, TenantId, redact_url,
};
use serde_json::Value;

pub use error::StoreError;
pub use postgres::PgStore;
pub use retry::RetryPolicy;
pub use sqlite::SqliteStore;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    /// Failed, with attempts left: run again (as `scheduled`) at `run_at`.
    Retry {
        error: String,
        run_at: DateTime<Utc>,
    },
    /// Failed for good.
    Failed(String),
}

impl Outcome {
    /// `(status, result, error, run_at)` to store.
    pub(crate) fn columns(
        self,
    ) -> (
        &'static str,
        Option<Value>,
        Option<String>,
        Option<DateTime<Utc>>,
    ) {
        match self {
            Outcome::Succeeded(result) => ("succeeded", Some(result), None, None),
            Outcome::Retry { error, run_at } => ("scheduled", None, Some(error), Some(run_at)),
            Outcome::Failed(error) => ("failed", None, Some(error), None),
        }
    }
}

/// The fencing token of one attempt: only the worker holding it can report
/// progress on, finish or release that attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub String);

impl LeaseToken {
    /// A fresh token, made by the worker before it claims, so that it can
    /// track the attempt before the claim's answer arrives.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl Default for LeaseToken {
    fn default() -> Self {
        Self::new()
    }
}

/// One attempt to end: the job, the lease it ran under, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub id: JobId,
    pub lease: LeaseToken,
    pub outcome: Outcome,
}

/// A job a worker now runs, and the token that proves it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job: Job,
    pub token: LeaseToken,
}

/// What [`Store::insert`] did with one requested job.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    Created(Job),
    /// The tenant had used this idempotency key, with the same request: the first job.
    Existing(Job),
}

impl Inserted {
    pub fn job(&self) -> &Job {
        match self {
            Inserted::Created(job) | Inserted::Existing(job) => job,
        }
    }
}

/// The error a job gets when its worker's lease ran out.
pub const LEASE_LOST: &str = "the worker running this attempt was lost (its lease expired)";

/// Matches each requested job with what the insert did: created, or an
/// earlier job with the same idempotency key (same request), or a conflict.
pub(crate) fn settle_idempotent<I: row::RowId>(
    requested: &[NewJob],
    created: Vec<Job>,
    earlier: Vec<row::JobRow<I>>,
) -> Result<Vec<Inserted>, StoreError> {
    let earlier = earlier
        .into_iter()
        .map(|row| {
            let hash = row.request_hash.clone();
            Ok((Job::try_from(row)?, hash))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut created: std::collections::HashMap<JobId, Job> =
        created.into_iter().map(|job| (job.id, job)).collect();
    requested
        .iter()
        .map(|new| {
            if let Some(job) = created.remove(&new.id) {
                return Ok(Inserted::Created(job));
            }
            let key = new.idempotency.as_ref().ok_or_else(|| {
                StoreError::Corrupt(format!("job {} was neither inserted nor found", new.id))
            })?;
            let (job, hash) = earlier
                .iter()
                .find(|(job, _)| job.idempotency_key.as_deref() == Some(key.key.as_str()))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("idempotency key `{}` vanished", key.key))
                })?;
            if hash.as_deref() == Some(key.request_hash.as_str()) {
                Ok(Inserted::Existing(job.clone()))
            } else {
                Err(StoreError::IdempotencyConflict {
                    key: key.key.clone(),
                })
            }
        })
        .collect()
}

/// A job's own retention as stored, in milliseconds (at most ten years, so it fits).
pub(crate) fn retain_ms(retain_for: Option<Duration>) -> Option<i64> {
    retain_for.map(|retain| millis(retain.min(MAX_RETAIN_FOR)))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The retention of `status`, in milliseconds; at most [`MAX_RETAIN_FOR`],
/// as a job's own, so that the cut-off stays a date the stores can write.
pub(crate) fn retention_ms(retention: &Retention, status: Status) -> i64 {
    let retain = match status {
        Status::Succeeded => retention.succeeded,
        Status::Failed => retention.failed,
        Status::Cancelled => retention.cancelled,
        // Never swept (the steps name final statuses only): as long as can be.
        Status::Scheduled | Status::Queued | Status::Running => MAX_RETAIN_FOR,
    };
    millis(retain.min(MAX_RETAIN_FOR))
}

/// How old a job of `status` with an idempotency key must be, in
/// milliseconds: its status's retention, and at least the key's lifetime.
pub(crate) fn keyed_ms(retention: &Retention, status: Status) -> i64 {
    retention_ms(retention, status).max(millis(IDEMPOTENCY_KEY_LIFETIME))
}

/// The statements of one sweep, each deleting up to a batch: the jobs with
/// a retention of their own, then per final status those kept for its
/// retention, without and with an idempotency key. Each walks an index of
/// its own from its oldest expired row (see the retention migrations).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SweepStep {
    Own,
    Status(Status),
    Keyed(Status),
}

pub(crate) const RETENTION_STEPS: [SweepStep; 7] = [
    SweepStep::Own,
    SweepStep::Status(Status::Succeeded),
    SweepStep::Keyed(Status::Succeeded),
    SweepStep::Status(Status::Failed),
    SweepStep::Keyed(Status::Failed),
    SweepStep::Status(Status::Cancelled),
    SweepStep::Keyed(Status::Cancelled),
];

/// What one [`Store::sweep_expired`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// A statement deleted a whole batch: there may be more to delete now.
    pub more: bool,
    /// Another sweeper was at work (Postgres), so this one stopped; what it
    /// deleted before that is counted.
    pub busy: bool,
}

impl Swept {
    /// Jobs deleted, of any status.
    pub fn total(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled
    }

    /// Counts one statement's `(status, jobs deleted)`, out of a `batch`.
    pub(crate) fn add(&mut self, counts: Vec<(String, i64)>, batch: u32) -> Result<(), StoreError> {
        let mut deleted = 0;
        for (status, jobs) in counts {
            let jobs = u64::try_from(jobs).unwrap_or_default();
            deleted += jobs;
            match status.parse() {
                Ok(Status::Succeeded) => self.succeeded += jobs,
                Ok(Status::Failed) => self.failed += jobs,
                Ok(Status::Cancelled) => self.cancelled += jobs,
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "the sweep deleted {jobs} jobs of status `{status}`, which is not final"
                    )));
                }
            }
        }
        self.more |= deleted >= u64::from(batch);
        Ok(())
    }
}

/// How big the `jobs` table is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSize {
    /// Rows: Postgres's estimate (`pg_class.reltuples`, as of the last vacuum
    /// or analyze), SQLite's count.
    pub rows: i64,
    /// Bytes on disk: the table with its indexes and TOAST (Postgres), the
    /// database file (SQLite).
    pub bytes: i64,
}

/// A queued job's [`QueueEntry`], from its stored columns.
pub(crate) fn queued_entry(
    id: JobId,
    priority: &str,
    tenant: &str,
    job_type: &str,
) -> Result<QueueEntry, StoreError> {
    let corrupt = |e: jobwire_core::InvalidValue| StoreError::Corrupt(format!("job {id}: {e}"));
    Ok(QueueEntry {
        id,
        priority: priority.parse().map_err(corrupt)?,
        tenant: tenant.parse().map_err(corrupt)?,
        job_type: job_type.parse().map_err(corrupt)?,
    })
}

/// What to list: one tenant's jobs, newest first, optionally narrowed.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub status: Option<jobwire_core::Status>,
    pub job_type: Option<jobwire_core::JobType>,
    /// Only jobs older than this one (the previous page's `next_cursor`).
    pub before: Option<JobId>,
    pub limit: u32,
}

/// A job's current state as its update, at its place in the change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub place: i64,
    pub update: jobwire_core::JobUpdate,
}

/// How many of a tenant's jobs wait or run, for one status, priority and
/// job type: the queue depth a dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveCount {
    pub status: Status,
    pub priority: Priority,
    pub job_type: String,
    pub jobs: i64,
}

impl ActiveCount {
    pub(crate) fn from_row(
        (status, priority, job_type, jobs): (String, String, String, i64),
    ) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("{what} in an active count"));
        Ok(Self {
            status: status.parse().map_err(|_| corrupt("unknown status"))?,
            priority: priority.parse().map_err(|_| corrupt("unknown priority"))?,
            job_type,
            jobs,
        })
    }
}

/// One tenant's unfinished jobs, by status: a row of the operators' view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCounts {
    pub tenant: TenantId,
    pub scheduled: i64,
    pub queued: i64,
    pub running: i64,
}

/// The tenants with unfinished jobs, most queued first, at most the limit
/// asked for, and how many there are in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPage {
    pub tenants: Vec<TenantCounts>,
    /// Every tenant with an unfinished job, listed or not.
    pub total: i64,
}

impl TenantPage {
    /// From rows of `(tenant, scheduled, queued, running, total)`, the
    /// total repeated on each row (a window count over the groups).
    pub(crate) fn from_rows(rows: Vec<(String, i64, i64, i64, i64)>) -> Result<Self, StoreError> {
        let total = rows.first().map_or(0, |row| row.4);
        let tenants = rows
            .into_iter()
            .map(|(tenant, scheduled, queued, running, _)| {
                Ok(TenantCounts {
                    tenant: tenant.parse().map_err(|_| {
                        StoreError::Corrupt(format!("tenant {tenant:?} in a tenant count"))
                    })?,
                    scheduled,
                    queued,
                    running,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self { tenants, total })
    }
}

/// The unfinished jobs of every tenant in one tenant bucket
/// ([`TenantId::bucket`]), by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketCounts {
    pub scheduled: i64,
    pub queued: i64,
    pub running: i64,
}

/// Folds rows of `(bucket, tenant, status, jobs)` into one [`BucketCounts`]
/// per bucket, indexed by bucket. A row without a bucket counts jobs inserted
/// before buckets were stored: its tenant (which the query gives for those
/// rows only) says which bucket.
pub(crate) fn fold_buckets(
    rows: Vec<(Option<i64>, Option<String>, String, i64)>,
) -> Result<Vec<BucketCounts>, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(format!("{what} in a bucket count"));
    let mut buckets = vec![BucketCounts::default(); usize::from(jobwire_core::TENANT_BUCKETS)];
    for (bucket, tenant, status, jobs) in rows {
        let bucket = match (bucket, tenant) {
            (Some(bucket), _) => u8::try_from(bucket)
                .ok()
                .filter(|b| *b < jobwire_core::TENANT_BUCKETS)
                .ok_or_else(|| corrupt(format!("bucket {bucket}")))?,
            (None, Some(tenant)) => tenant
                .parse::<TenantId>()
                .map_err(|_| corrupt(format!("tenant {tenant:?}")))?
                .bucket(),
            (None, None) => return Err(corrupt("a row with neither bucket nor tenant".into())),
        };
        let counts = &mut buckets[usize::from(bucket)];
        match status.parse::<Status>() {
            Ok(Status::Scheduled) => counts.scheduled += jobs,
            Ok(Status::Queued) => counts.queued += jobs,
            Ok(Status::Running) => counts.running += jobs,
            _ => return Err(corrupt(format!("status {status:?}"))),
        }
    }
    Ok(buckets)
}

/// A connection pool's state, for the `jobwire_db_pool_*` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections running a query or held by a transaction.
    pub busy: u32,
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_cursor: Option<JobId>,
}

impl Page {
    /// From up to `limit + 1` jobs: the extra one only says another page exists.
    pub(crate) fn from_overfetch(mut jobs: Vec<Job>, limit: u32) -> Self {
        let limit = limit as usize;
        let next_cursor = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|job| job.id)
        } else {
            None
        };
        Self { jobs, next_cursor }
    }
}

/// Why a transition found nothing to change, from the job's current status.
pub(crate) fn not_changed(id: JobId, status: Option<String>, action: &'static str) -> StoreError {
    match status {
        None => StoreError::NotFound { id },
        Some(status) => match status.parse() {
            Ok(status) => StoreError::InvalidTransition { id, status, action },
            Err(e) => StoreError::Corrupt(format!("job {id}: {e}")),
        },
    }
}

/// The store, whichever adapter holds it. Cheap to clone (a pool).
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

/// Calls the same method on whichever adapter this is.
macro_rules! delegate {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Store::Postgres(store) => store.$method($($arg),*).await,
            Store::Sqlite(store) => store.$method($($arg),*).await,
        }
    };
}

/// What a store URL names, told by its scheme before anything connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreUrl<'a> {
    /// `postgres://…` or `postgresql://…`: the whole URL.
    Postgres(&'a str),
    /// `sqlite:<file>`, `sqlite://<file>` or `sqlite::memory:`: the file.
    Sqlite(&'a str),
}

impl<'a> StoreUrl<'a> {
    /// The engine `url` names; [`StoreError::UnknownUrl`] for any other scheme
    /// (`mysql://…`), so that it is not taken for an unreachable Postgres.
    pub fn parse(url: &'a str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(path.trim_start_matches("//")))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url))
        } else {
            Err(StoreError::UnknownUrl {
                url: redact_url(url),
                scheme: url
                    .split_once(':')
                    .map_or_else(String::new, |(scheme, _)| scheme.to_owned()),
            })
        }
    }
}

impl Store {
    /// Opens the store `url` names: `postgres://…` or `sqlite:<file>` /
    /// `sqlite::memory:`. Creates the database if missing and migrates it.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        match StoreUrl::parse(url)? {
            StoreUrl::Sqlite(path) => Ok(Self::Sqlite(SqliteStore::open(path).await?)),
            StoreUrl::Postgres(url) => Ok(Self::Postgres(
                PgStore::connect(url, max_connections).await?,
            )),
        }
    }

    /// What this store is, for people: `Postgres postgres://…`, `SQLite ./jobwire.db`.
    pub fn describe(&self) -> String {
        match self {
            Store::Postgres(store) => format!("Postgres {}", store.url()),
            Store::Sqlite(store) => format!("SQLite {} (embedded)", store.path()),
        }
    }

    /// Whether the store answers (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self.ping())
    }

    /// Inserts the jobs (`queued`, or `scheduled` when due later), all or
    /// none, in the order given. A job whose idempotency key the tenant used
    /// before yields the first job instead, or [`StoreError::IdempotencyConflict`]
    /// when the first request differed.
    ///
    /// A job scheduled outside years 1 to 9999 is refused
    /// ([`StoreError::TimeOutOfRange`]) and nothing is written: SQLite keeps
    /// times as fixed-width text, which orders like the times themselves only
    /// within those years (year 20000 would sort before 2026, and run at once).
    pub async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<Inserted>, StoreError> {
        if let Some(job) = jobs.iter().find(|job| {
            job.run_at
                .is_some_and(|at| !(1..=9999).contains(&chrono::Datelike::year(&at)))
        }) {
            return Err(StoreError::TimeOutOfRange {
                id: job.id,
                run_at: job.run_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
            });
        }
        delegate!(self.insert(jobs))
    }

    /// Moves a `queued` job to `running` for `worker`, counts the attempt and
    /// leases it for `lease`. `None` when the job is not queued, so an ID
    /// popped twice runs once.
    pub async fn claim(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        Ok(self
            .claim_many(&[(id, LeaseToken::new())], worker, lease)
            .await?
            .pop())
    }

    /// [`Store::claim`] for many jobs in one write, each under the token
    /// given with it. Returns the claims of the jobs that were queued; the
    /// others are not claimed.
    pub async fn claim_many(
        &self,
        jobs: &[(JobId, LeaseToken)],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<Claim>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        delegate!(self.claim_many(jobs, worker, lease))
    }

    /// Extends the leases of `jobs` that `worker` still holds, and returns
    /// those (any other of them was cancelled or lost, and must stop). A job
    /// the worker does not know it holds (its claim's answer was lost) is not
    /// renewed, so its lease runs out and it runs again.
    pub async fn heartbeat(
        &self,
        worker: &str,
        jobs: &[JobId],
        lease: Duration,
    ) -> Result<Vec<(JobId, LeaseToken)>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        delegate!(self.heartbeat(worker, jobs, lease))
    }

    /// Ends an attempt; `None` when `lease` no longer holds the job (it was
    /// cancelled, or its lease expired and another attempt took over).
    /// An attempt that failed (a retry or a failure) is appended to the
    /// job's `attempt_errors` by the same write.
    pub async fn finish(
        &self,
        id: JobId,
        lease: &LeaseToken,
        outcome: Outcome,
    ) -> Result<Option<Job>, StoreError> {
        let finish = Finish {
            id,
            lease: lease.clone(),
            outcome,
        };
        Ok(self.finish_many(vec![finish]).await?.pop())
    }

    /// [`Store::finish`] for many attempts in one write. Returns the jobs
    /// that changed; an attempt whose lease no longer holds is left out.
    pub async fn finish_many(&self, batch: Vec<Finish>) -> Result<Vec<Job>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        delegate!(self.finish_many(batch))
    }

    /// Records an attempt's progress; `None` when `lease` no longer holds the job.
    pub async fn report_progress(
        &self,
        id: JobId,
        lease: &LeaseToken,
        progress: &Value,
    ) -> Result<Option<Job>, StoreError> {
        delegate!(self.report_progress(id, lease, progress))
    }

    /// Extends the lease of one attempt by `ttl`, as its holder (a remote
    /// worker) asks; `None` when `lease` no longer holds the job. Changes
    /// nothing a client sees, so it bumps no version.
    pub async fn renew(
        &self,
        id: JobId,
        lease: &LeaseToken,
        ttl: Duration,
    ) -> Result<Option<Job>, StoreError> {
        delegate!(self.renew(id, lease, ttl))
    }

    /// Hands an unfinished attempt back (`queued` again) at once, as a
    /// stopping worker does; `None` when `lease` no longer holds the job.
    pub async fn release(&self, id: JobId, lease: &LeaseToken) -> Result<Option<Job>, StoreError> {
        delegate!(self.release(id, lease))
    }

    /// Of `ids`, popped but not claimed, the jobs that are not running:
    /// their tenants' running slots (taken by the pop) are to be freed at
    /// once. A job running elsewhere (a duplicate ID) keeps its slot; one
    /// that cannot be read is left to the broker's sweep of stale slots.
    pub async fn not_running(&self, ids: &[JobId]) -> Vec<QueueEntry> {
        let mut entries = Vec::new();
        for id in ids {
            match self.find(*id).await {
                Ok(Some(job)) if job.status != Status::Running => {
                    entries.push(QueueEntry::from(&job))
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(job_id = %id, error = %e, "cannot read a popped job to free its running slot")
                }
            }
        }
        entries
    }

    /// A job by its ID alone, whatever its tenant: for a worker holding (or
    /// having held) one of its attempts, never for a tenant's request.
    pub async fn find(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        delegate!(self.find(id))
    }

    /// Cancels a tenant's unfinished job (scheduled, queued or running).
    pub async fn cancel(&self, tenant: &TenantId, id: JobId) -> Result<Job, StoreError> {
        delegate!(self.cancel(tenant, id))
    }

    /// Queues a tenant's failed or cancelled job again, with a fresh attempt
    /// count; its history of failed attempts (`attempt_errors`) stays.
    pub async fn retry(&self, tenant: &TenantId, id: JobId) -> Result<Job, StoreError> {
        delegate!(self.retry(tenant, id))
    }

    /// A tenant's job; `None` for an unknown ID and another tenant's job alike.
    pub async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Option<Job>, StoreError> {
        delegate!(self.get(tenant, id))
    }

    /// Those of `ids` that are the tenant's jobs.
    pub async fn get_many(&self, tenant: &TenantId, ids: &[JobId]) -> Result<Vec<Job>, StoreError> {
        delegate!(self.get_many(tenant, ids))
    }

    /// A tenant's jobs, newest first.
    pub async fn list(&self, tenant: &TenantId, filter: &ListFilter) -> Result<Page, StoreError> {
        delegate!(self.list(tenant, filter))
    }

    /// The tenant's scheduled, queued and running jobs counted by status and
    /// priority (pairs with none are left out).
    pub async fn active_counts(&self, tenant: &TenantId) -> Result<Vec<ActiveCount>, StoreError> {
        delegate!(self.active_counts(tenant))
    }

    /// Every tenant with scheduled, queued or running jobs, with those
    /// counts, most queued first (then most running, most scheduled, and by
    /// ID), at most `limit` of them: the operators' view. One grouped count
    /// of the unfinished jobs, whatever the number of tenants; only `limit`
    /// rows come back.
    pub async fn tenant_counts(&self, limit: u32) -> Result<TenantPage, StoreError> {
        delegate!(self.tenant_counts(limit))
    }

    /// Every tenant's scheduled, queued and running jobs, summed per tenant
    /// bucket: one [`BucketCounts`] per bucket, indexed by bucket, empty ones
    /// included. One grouped count over the unfinished jobs by their stored
    /// bucket, never a row per tenant (except jobs stored before buckets
    /// were, grouped by tenant until they finish).
    pub async fn bucket_counts(&self) -> Result<Vec<BucketCounts>, StoreError> {
        delegate!(self.bucket_counts())
    }

    /// The query plans of [`Store::tenant_counts`] and
    /// [`Store::bucket_counts`], in that order: to check that they read the
    /// unfinished jobs through indexes, never the whole table of finished
    /// ones (Postgres's `EXPLAIN`, SQLite's `EXPLAIN QUERY PLAN`).
    pub async fn explain_counts(&self) -> Result<Vec<String>, StoreError> {
        delegate!(self.explain_counts())
    }

    /// The query plans of the worker maintenance's reads, by name: `sweep`
    /// (a batch of the lost-ID sweep) on both engines, `reap` (the lease
    /// reaper) and `heartbeat` on Postgres; to check that a backlog does not
    /// make them walk every queued job or every dead index entry.
    pub async fn explain_maintenance(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        delegate!(self.explain_maintenance())
    }

    /// The current state of the tenant's jobs changed after `after` (a
    /// `change_seq`), in the order of their last change, at most `limit`;
    /// as updates, without payloads.
    pub async fn changes_since(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Change>, StoreError> {
        delegate!(self.changes_since(tenant, after, limit))
    }

    /// How many of the tenant's jobs changed after `after`, counting up to
    /// `limit` at most (so it stays cheap however far behind `after` is).
    pub async fn count_changes_since(
        &self,
        tenant: &TenantId,
        after: i64,
        limit: u32,
    ) -> Result<u32, StoreError> {
        delegate!(self.count_changes_since(tenant, after, limit))
    }

    /// The current state of those of `ids` that are the tenant's jobs, as
    /// updates, without payloads.
    pub async fn changes_of(
        &self,
        tenant: &TenantId,
        ids: &[JobId],
    ) -> Result<Vec<Change>, StoreError> {
        delegate!(self.changes_of(tenant, ids))
    }

    /// The place just before the tenant's `n` most recent changes (`None`:
    /// it has no more than `n`), so that `changes_since` from there reads them.
    pub async fn nth_latest_change(
        &self,
        tenant: &TenantId,
        n: u32,
    ) -> Result<Option<i64>, StoreError> {
        delegate!(self.nth_latest_change(tenant, n))
    }

    /// The newest place in the change feed that has committed (`None`: no
    /// job yet): a change there whose update never arrived is missing too,
    /// even if nothing changes after it. It never goes back when retention
    /// deletes the newest jobs, so the places of deleted jobs never look like
    /// changes that went missing.
    pub async fn latest_change(&self) -> Result<Option<i64>, StoreError> {
        delegate!(self.latest_change())
    }

    /// Deletes the finished jobs whose retention has passed, in statements
    /// of at most `batch` rows, each in a short transaction of its own, each
    /// walking an index (never the table). A job's retention is its own
    /// (`retain_for`, counted from when it finished) or its final status's in
    /// `retention`; a job with an idempotency key stays at least
    /// [`IDEMPOTENCY_KEY_LIFETIME`] after its creation, so a repeat gets it.
    /// Retentions beyond [`MAX_RETAIN_FOR`] count as that.
    ///
    /// On Postgres one sweeper works at a time across every process: each
    /// transaction first takes [`PgStore::SWEEP_LOCK`], and a sweeper that
    /// finds it taken stops and says so (`busy`). Call again at once while
    /// `more` says a statement deleted a whole batch.
    ///
    /// Records for each tenant the newest place of its deleted jobs
    /// ([`Store::swept_through`]).
    pub async fn sweep_expired(
        &self,
        retention: &Retention,
        batch: u32,
    ) -> Result<Swept, StoreError> {
        delegate!(self.sweep_expired(retention, batch.max(1)))
    }

    /// The query plan of each statement of [`Store::sweep_expired`], as the
    /// database would run it now with these settings: to check that each
    /// walks an index (Postgres's `EXPLAIN`, SQLite's `EXPLAIN QUERY PLAN`).
    pub async fn explain_sweep(
        &self,
        retention: &Retention,
        batch: u32,
    ) -> Result<Vec<String>, StoreError> {
        delegate!(self.explain_sweep(retention, batch.max(1)))
    }

    /// The newest place in the change feed of a tenant's job deleted by
    /// retention (`None`: none was): a client resuming from before it may
    /// have missed a change that no replay can show any more.
    pub async fn swept_through(&self, tenant: &TenantId) -> Result<Option<i64>, StoreError> {
        delegate!(self.swept_through(tenant))
    }

    /// How big the `jobs` table is, for the operators' gauges.
    pub async fn table_size(&self) -> Result<TableSize, StoreError> {
        delegate!(self.table_size())
    }

    /// The jobs (of any tenant) whose last change is one of `seqs`: what an
    /// update subscriber that saw a gap in the change feed missed.
    pub async fn changes_at(&self, seqs: &[i64]) -> Result<Vec<Change>, StoreError> {
        delegate!(self.changes_at(seqs))
    }

    /// Jobs whose lease ran out: `queued` again while attempts are left,
    /// else `failed`; either way with [`LEASE_LOST`] as the error, and the
    /// attempt in their history of failed attempts.
    pub async fn reap_expired(&self) -> Result<Vec<Job>, StoreError> {
        delegate!(self.reap_expired())
    }

    /// Scheduled jobs now due become `queued`.
    pub async fn promote_due(&self) -> Result<Vec<Job>, StoreError> {
        delegate!(self.promote_due())
    }

    /// Jobs `queued` for longer than `age`, in ID order after `after`: the
    /// candidates for re-dispatch when their ID may have been lost.
    pub async fn queued_older_than(
        &self,
        age: Duration,
        after: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        delegate!(self.queued_older_than(age, after, limit))
    }

    /// Those of `ids` still `queued` for longer than `age`: re-dispatch
    /// checks its candidates again after asking the broker, since a job
    /// claimed (and its ID acknowledged) in between is not lost.
    pub async fn queued_among(
        &self,
        ids: &[JobId],
        age: Duration,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        delegate!(self.queued_among(ids, age))
    }

    /// Puts every `running` job back to `queued`: only for a process that
    /// owns every worker (embedded mode), at startup, when none can be running.
    /// Like [`Store::release`], this sets no error and adds nothing to the
    /// jobs' history of failed attempts.
    pub async fn requeue_running(&self) -> Result<Vec<Job>, StoreError> {
        delegate!(self.requeue_running())
    }

    /// Scheduled jobs whose time has come and that are not queued yet,
    /// counted up to `limit` (so a scrape stays cheap whatever the backlog):
    /// a number that stays high means the maintenance loops fall behind.
    pub async fn count_due(&self, limit: u32) -> Result<u64, StoreError> {
        delegate!(self.count_due(limit))
    }

    /// The Postgres pool's connections now; `None` for SQLite, whose one
    /// connection is not pooled work.
    pub fn pool_stats(&self) -> Option<PoolStats> {
        match self {
            Store::Postgres(store) => Some(store.pool_stats()),
            Store::Sqlite(_) => None,
        }
    }

    /// Every `queued` job, oldest first, to hand to the queue again.
    pub async fn queued(&self) -> Result<Vec<QueueEntry>, StoreError> {
        delegate!(self.queued())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails right there")]

    use super::*;

    /// Jobs stored before buckets were (no `tenant_bucket`) come back
    /// grouped by tenant, and land in their tenant's bucket all the same.
    #[test]
    fn rows_without_a_stored_bucket_are_bucketed_by_their_tenant() {
        let acme: TenantId = "acme".parse().unwrap();
        let bucket = i64::from(acme.bucket());
        let rows = vec![
            (Some(bucket), None, "queued".to_owned(), 2),
            (None, Some("acme".to_owned()), "queued".to_owned(), 3),
            (None, Some("acme".to_owned()), "running".to_owned(), 1),
        ];
        let buckets = fold_buckets(rows).unwrap();
        let at = usize::from(acme.bucket());
        assert_eq!(
            buckets[at],
            BucketCounts {
                scheduled: 0,
                queued: 5,
                running: 1
            }
        );
        assert_eq!(
            buckets.iter().map(|b| b.queued + b.running).sum::<i64>(),
            6,
            "nothing counted elsewhere"
        );
        assert!(fold_buckets(vec![(Some(16), None, "queued".into(), 1)]).is_err());
        assert!(fold_buckets(vec![(Some(0), None, "succeeded".into(), 1)]).is_err());
    }
}
