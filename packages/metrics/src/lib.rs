//! Every Prometheus series jobwire exports, in one list ([`SERIES`]): its
//! name, kind, labels and meaning. The libraries record through the
//! [`metrics`] facade with these names; only the binaries install a recorder
//! (so a library used in a test, or in another program, records nothing).
//!
//! Labels stay bounded: priorities, statuses and operation names are fixed
//! sets; job types are user strings, so only the first [`MAX_TYPE_LABELS`]
//! distinct types seen by a process get a label of their own, the rest are
//! counted as `other` ([`type_label`]). No job ID or tenant ID is ever a label:
//! WebSocket connections are counted per bucket of their number
//! ([`connections_bucket`]), and jobs per tenant bucket, a stable hash of the
//! tenant ID into 16 (`tenant_bucket="00"` to `"15"`, [`count_created`],
//! [`record_tenant_buckets`]; `TenantId::bucket` in jobwire-core).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, OnceLock, RwLock};

/// Jobs created (an idempotent repeat is not), by `type` and `priority`.
pub const JOBS_CREATED: &str = "jobwire_jobs_created_total";
/// Jobs created, by `tenant_bucket`.
pub const TENANT_JOBS_CREATED: &str = "jobwire_tenant_jobs_created_total";
/// Creates refused by a tenant's quota, by `tenant_bucket` and `reason`.
pub const TENANT_REFUSED: &str = "jobwire_tenant_creates_refused_total";
/// Every tenant's unfinished jobs, by `tenant_bucket` and `status`.
pub const TENANT_JOBS: &str = "jobwire_tenant_jobs";
/// Jobs that ended, by `type` and final `status`.
pub const JOBS_FINISHED: &str = "jobwire_jobs_finished_total";
/// Attempts started (claims), by `type`.
pub const JOB_ATTEMPTS: &str = "jobwire_job_attempts_total";
/// Attempts that failed with attempts left, or whose lease ran out, by `type`.
pub const JOB_RETRIES: &str = "jobwire_job_retries_total";
/// How long a handler ran, per attempt, by `type`.
pub const JOB_DURATION: &str = "jobwire_job_duration_seconds";
/// From a job's creation to the start of its first attempt.
pub const JOB_QUEUE_WAIT: &str = "jobwire_job_queue_wait_seconds";
/// Attempts running in this process now.
pub const JOBS_RUNNING: &str = "jobwire_jobs_running";
/// IDs waiting in the broker's queue, by `priority`.
pub const QUEUE_DEPTH: &str = "jobwire_queue_depth";
/// Scheduled jobs whose time has come but that are not queued yet.
pub const SCHEDULED_DUE: &str = "jobwire_scheduled_due_jobs";
/// Scheduled jobs (delayed, or retries after backoff) queued when due.
pub const JOBS_PROMOTED: &str = "jobwire_jobs_promoted_total";
/// Queued jobs whose ID the broker lost, enqueued again.
pub const JOBS_REDISPATCHED: &str = "jobwire_jobs_redispatched_total";
/// Running jobs whose lease ran out (their worker died or stalled).
pub const LEASE_EXPIRIES: &str = "jobwire_lease_expiries_total";
/// Changes whose update never arrived, read from the store and passed on.
pub const GAP_FILLS: &str = "jobwire_gap_fills_total";
/// WebSocket sessions open on this API instance.
pub const WS_CONNECTIONS: &str = "jobwire_ws_connections";
/// Tenants with a number of open sessions in the `connections` bucket.
pub const WS_TENANTS: &str = "jobwire_ws_tenants";
/// Text frames written to WebSocket clients (updates and events).
pub const WS_FRAMES_SENT: &str = "jobwire_ws_frames_sent_total";
/// Clients closed with 4008 because they did not keep up.
pub const WS_SLOW_CONSUMER_KICKS: &str = "jobwire_ws_slow_consumer_kicks_total";
/// Reconnections with `?cursor=` answered by a replay and `resumed`.
pub const WS_RESUMES: &str = "jobwire_ws_resumes_total";
/// Reconnections with `?cursor=` answered by `reset` and a snapshot.
pub const WS_RESETS: &str = "jobwire_ws_resets_total";
/// Times the update subscription was lost and restored.
pub const SUBSCRIBER_RECONNECTS: &str = "jobwire_subscriber_reconnects_total";
/// From an update's commit time (`at`) to its arrival at this API's hub.
pub const UPDATE_LAG: &str = "jobwire_update_lag_seconds";
/// Failed store queries, by `operation`.
pub const STORE_ERRORS: &str = "jobwire_store_errors_total";
/// Failed broker (Redis) commands, by `operation`.
pub const BROKER_ERRORS: &str = "jobwire_broker_errors_total";
/// Time to get a Postgres connection from the pool.
pub const DB_POOL_WAIT: &str = "jobwire_db_pool_wait_seconds";
/// Postgres connections of this process, by `state` (`idle`, `busy`).
pub const DB_POOL_CONNECTIONS: &str = "jobwire_db_pool_connections";
/// Most Postgres connections this process opens.
pub const DB_POOL_MAX: &str = "jobwire_db_pool_max_connections";
/// Finished jobs the retention sweeper deleted, by `status`.
pub const RETENTION_DELETED: &str = "jobwire_retention_deleted_total";
/// Rows of the `jobs` table (Postgres: the planner's estimate).
pub const JOBS_TABLE_ROWS: &str = "jobwire_jobs_table_rows";
/// Bytes of the `jobs` table with its indexes.
pub const JOBS_TABLE_BYTES: &str = "jobwire_jobs_table_bytes";

/// What kind of series a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Which processes export a series: the API (`jobwire-api`), the worker
/// (`jobwire-worker`), or both; the all-in-one `jobwire` exports all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
    Both,
}

impl Role {
    /// Whether a process in role `self` exports a series of role `series`.
    pub fn exports(self, series: Role) -> bool {
        self == Role::Both || series == Role::Both || self == series
    }
}

/// One series: what the README's table shows and `/metrics` describes.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub from: Role,
    pub help: &'static str,
}

const fn series(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    from: Role,
    help: &'static str,
) -> Series {
    Series {
        name,
        kind,
        labels,
        from,
        help,
    }
}

/// Every series, in the order of the README's table.
#[rustfmt::skip]
pub const SERIES: &[Series] = &[
    series(JOBS_CREATED, Kind::Counter, &["type", "priority"], Role::Api,
        "Jobs created (an idempotent repeat is not counted)."),
    series(TENANT_JOBS_CREATED, Kind::Counter, &["tenant_bucket"], Role::Api,
        "Jobs created per tenant bucket, `00` to `15`: a stable hash of the tenant ID (`tenantBucket` in /v1/stats and /v1/tenants)."),
    series(TENANT_REFUSED, Kind::Counter, &["tenant_bucket", "reason"], Role::Api,
        "Create requests refused by the tenant's quota, per tenant bucket: `queue_full` and `rate` (429), `burst` and `over_queue` (422)."),
    series(TENANT_JOBS, Kind::Gauge, &["tenant_bucket", "status"], Role::Api,
        "Scheduled, queued and running jobs of every tenant per tenant bucket (one grouped count), read at scrape time."),
    series(JOBS_FINISHED, Kind::Counter, &["type", "status"], Role::Both,
        "Jobs that ended: succeeded or failed (worker, or API for remote workers), cancelled (API)."),
    series(JOB_ATTEMPTS, Kind::Counter, &["type"], Role::Both,
        "Attempts started (jobs claimed by a worker, or leased by the API to remote workers)."),
    series(JOB_RETRIES, Kind::Counter, &["type"], Role::Both,
        "Failed attempts scheduled to run again, and lease-expired attempts queued again."),
    series(JOB_DURATION, Kind::Histogram, &["type"], Role::Worker,
        "How long a handler ran, per attempt, in seconds."),
    series(JOB_QUEUE_WAIT, Kind::Histogram, &[], Role::Worker,
        "From a job's creation to the start of its first attempt, in seconds (a delayed job's delay included)."),
    series(JOBS_RUNNING, Kind::Gauge, &[], Role::Worker,
        "Attempts running in this process."),
    series(QUEUE_DEPTH, Kind::Gauge, &["priority"], Role::Both,
        "Job IDs waiting in the broker's queues, every tenant and type (one Lua script), read at scrape time."),
    series(SCHEDULED_DUE, Kind::Gauge, &[], Role::Both,
        "Scheduled jobs past their time, not queued yet (counted up to 100000), read at scrape time."),
    series(JOBS_PROMOTED, Kind::Counter, &[], Role::Both,
        "Scheduled jobs (delayed, or retries after their backoff) queued when due."),
    series(JOBS_REDISPATCHED, Kind::Counter, &[], Role::Both,
        "Queued jobs whose ID the broker had lost, enqueued again."),
    series(LEASE_EXPIRIES, Kind::Counter, &[], Role::Both,
        "Running jobs whose lease ran out (their worker died or stalled)."),
    series(GAP_FILLS, Kind::Counter, &[], Role::Api,
        "Changes whose update never arrived, read from the store and passed on."),
    series(WS_CONNECTIONS, Kind::Gauge, &[], Role::Api,
        "WebSocket sessions open on this API instance."),
    series(WS_TENANTS, Kind::Gauge, &["connections"], Role::Api,
        "Tenants whose number of open sessions is in the bucket (1, 2-10, 11-100, 101-1000, >1000)."),
    series(WS_FRAMES_SENT, Kind::Counter, &[], Role::Api,
        "Text frames written to WebSocket clients: updates and events."),
    series(WS_SLOW_CONSUMER_KICKS, Kind::Counter, &[], Role::Api,
        "WebSocket clients closed with 4008 because they did not keep up."),
    series(WS_RESUMES, Kind::Counter, &[], Role::Api,
        "Reconnections with ?cursor= answered by a replay and `resumed`."),
    series(WS_RESETS, Kind::Counter, &[], Role::Api,
        "Reconnections with ?cursor= answered by `reset` and a snapshot."),
    series(SUBSCRIBER_RECONNECTS, Kind::Counter, &[], Role::Api,
        "Times the update subscription was lost and restored."),
    series(UPDATE_LAG, Kind::Histogram, &[], Role::Api,
        "From an update's commit time (`at`) to its arrival at this API's hub, in seconds."),
    series(STORE_ERRORS, Kind::Counter, &["operation"], Role::Both,
        "Failed store queries (Postgres, or SQLite embedded)."),
    series(BROKER_ERRORS, Kind::Counter, &["operation"], Role::Both,
        "Failed Redis commands."),
    series(DB_POOL_WAIT, Kind::Histogram, &[], Role::Both,
        "Time to get a Postgres connection from the pool, in seconds."),
    series(DB_POOL_CONNECTIONS, Kind::Gauge, &["state"], Role::Both,
        "Postgres connections of this process, idle or busy, read at scrape time."),
    series(DB_POOL_MAX, Kind::Gauge, &[], Role::Both,
        "Most Postgres connections this process opens (JOBWIRE_DB_MAX_CONNECTIONS)."),
    series(RETENTION_DELETED, Kind::Counter, &["status"], Role::Worker,
        "Finished jobs the retention sweeper deleted."),
    series(JOBS_TABLE_ROWS, Kind::Gauge, &[], Role::Worker,
        "Rows of the jobs table (Postgres: the planner's estimate), after each sweep."),
    series(JOBS_TABLE_BYTES, Kind::Gauge, &[], Role::Worker,
        "Bytes of the jobs table with its indexes, after each sweep."),
];

/// Histogram buckets, in seconds: from a millisecond (update lag, pool
/// waits) to ten minutes (long handlers).
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

/// Describes every series a process in `role` exports to the installed
/// recorder (the `# HELP` lines), and sets its unlabelled counters and the
/// running-jobs gauge to zero, so that they are scraped from the start
/// rather than after their first event (the gauges read at scrape time are
/// set by the scrape; the pool's only where there is a Postgres pool).
/// Call once, after installing the recorder.
pub fn describe(role: Role) {
    for series in SERIES.iter().filter(|series| role.exports(series.from)) {
        match series.kind {
            Kind::Counter => metrics::describe_counter!(series.name, series.help),
            Kind::Gauge => metrics::describe_gauge!(series.name, series.help),
            Kind::Histogram => metrics::describe_histogram!(series.name, series.help),
        }
        if series.labels.is_empty() && series.kind == Kind::Counter {
            metrics::counter!(series.name).increment(0);
        }
    }
    if role.exports(Role::Worker) {
        metrics::gauge!(JOBS_RUNNING).set(0.0);
    }
}

/// Distinct job types that get a label of their own, per process.
pub const MAX_TYPE_LABELS: usize = 100;
/// The label of every job type past the first [`MAX_TYPE_LABELS`].
pub const OTHER_TYPE: &str = "other";

static TYPES: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(RwLock::default);

/// The `type` label of a job type: itself for the first [`MAX_TYPE_LABELS`]
/// distinct types this process sees, [`OTHER_TYPE`] after that. Job types
/// are user strings; this keeps the number of series bounded however many
/// a client invents.
pub fn type_label(job_type: &str) -> String {
    // A poisoned lock only means a panic between two set calls; the set is intact.
    if TYPES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(job_type)
    {
        return job_type.to_owned();
    }
    let mut types = TYPES.write().unwrap_or_else(|e| e.into_inner());
    if types.contains(job_type) || types.len() < MAX_TYPE_LABELS {
        types.insert(job_type.to_owned());
        job_type.to_owned()
    } else {
        OTHER_TYPE.to_owned()
    }
}

/// The per-type series a job's life touches, each registered on its first
/// use and then held: recording through a held handle skips building and
/// hashing the series' key, which per job cost the embedded engine about 7%
/// of its throughput. Get it with [`type_series`].
#[derive(Debug, Default)]
pub struct TypeSeries {
    label: String,
    attempts: OnceLock<metrics::Counter>,
    retries: OnceLock<metrics::Counter>,
    duration: OnceLock<metrics::Histogram>,
    finished: [OnceLock<metrics::Counter>; 3],
}

/// The final statuses [`TypeSeries::finished`] counts, in its order.
const FINAL_STATUSES: [&str; 3] = ["succeeded", "failed", "cancelled"];

impl TypeSeries {
    /// [`JOB_ATTEMPTS`] of this type.
    pub fn attempts(&self) -> &metrics::Counter {
        self.attempts
            .get_or_init(|| metrics::counter!(JOB_ATTEMPTS, "type" => self.label.clone()))
    }

    /// [`JOB_RETRIES`] of this type.
    pub fn retries(&self) -> &metrics::Counter {
        self.retries
            .get_or_init(|| metrics::counter!(JOB_RETRIES, "type" => self.label.clone()))
    }

    /// [`JOB_DURATION`] of this type.
    pub fn duration(&self) -> &metrics::Histogram {
        self.duration
            .get_or_init(|| metrics::histogram!(JOB_DURATION, "type" => self.label.clone()))
    }

    /// Counts a stored attempt outcome by the job's status after it: a final
    /// status in [`JOBS_FINISHED`], `scheduled` or `queued` (a failed attempt
    /// to be retried) in [`JOB_RETRIES`].
    pub fn ended(&self, status: &str) {
        if let Some(at) = FINAL_STATUSES.iter().position(|s| *s == status) {
            self.finished[at]
                .get_or_init(|| {
                    metrics::counter!(JOBS_FINISHED, "type" => self.label.clone(), "status" => FINAL_STATUSES[at])
                })
                .increment(1);
        } else if matches!(status, "scheduled" | "queued") {
            self.retries().increment(1);
        }
    }
}

/// Held series by job type, at most [`MAX_TYPE_LABELS`] of them (types past
/// those share the [`OTHER_TYPE`] series, and are not kept one by one).
static TYPE_SERIES: LazyLock<RwLock<HashMap<String, Arc<TypeSeries>>>> =
    LazyLock::new(RwLock::default);
static OTHER_SERIES: LazyLock<Arc<TypeSeries>> = LazyLock::new(|| {
    Arc::new(TypeSeries {
        label: OTHER_TYPE.to_owned(),
        ..TypeSeries::default()
    })
});

/// The series of `job_type` (labelled by [`type_label`]). Take it after the
/// binary installs its recorder: a handle is bound to the recorder of when
/// it was first used.
pub fn type_series(job_type: &str) -> Arc<TypeSeries> {
    // A poisoned lock only means a panic between two map calls; the map is intact.
    if let Some(series) = TYPE_SERIES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(job_type)
    {
        return Arc::clone(series);
    }
    let label = type_label(job_type);
    if label == OTHER_TYPE && job_type != OTHER_TYPE {
        return Arc::clone(&OTHER_SERIES);
    }
    let mut map = TYPE_SERIES.write().unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(job_type.to_owned()).or_insert_with(|| {
        Arc::new(TypeSeries {
            label,
            ..TypeSeries::default()
        })
    }))
}

/// Counts a job created for a tenant of bucket `bucket` (its
/// `TenantId::bucket`) in [`TENANT_JOBS_CREATED`], through a handle held
/// per bucket (as [`TypeSeries`] does per type: this is on every create).
pub fn count_created(bucket: u8) {
    static HELD: [OnceLock<metrics::Counter>; jobwire_core::TENANT_BUCKETS as usize] =
        [const { OnceLock::new() }; jobwire_core::TENANT_BUCKETS as usize];
    let label = jobwire_core::bucket_label(bucket);
    let at = usize::from(bucket % jobwire_core::TENANT_BUCKETS);
    HELD[at]
        .get_or_init(|| metrics::counter!(TENANT_JOBS_CREATED, "tenant_bucket" => label))
        .increment(1);
}

/// The statuses [`TENANT_JOBS`] counts, in the order
/// [`record_tenant_buckets`] takes them.
pub const UNFINISHED_STATUSES: [&str; 3] = ["scheduled", "queued", "running"];

/// Sets [`TENANT_JOBS`] from the scheduled, queued and running jobs of each
/// tenant bucket, indexed by bucket; every bucket and status is set, empty
/// ones to zero, so that a bucket that emptied shows 0 rather than its last
/// value.
pub fn record_tenant_buckets(per_bucket: &[[i64; 3]]) {
    for (bucket, label) in jobwire_core::TENANT_BUCKET_LABELS.iter().enumerate() {
        let counts = per_bucket.get(bucket).copied().unwrap_or_default();
        for (status, jobs) in UNFINISHED_STATUSES.iter().zip(counts) {
            metrics::gauge!(TENANT_JOBS, "tenant_bucket" => *label, "status" => *status)
                .set(jobs as f64);
        }
    }
}

/// The buckets of [`WS_TENANTS`], smallest first.
pub const CONNECTION_BUCKETS: [&str; 5] = ["1", "2-10", "11-100", "101-1000", ">1000"];

/// The bucket of a tenant with `sessions` open (at least one).
pub fn connections_bucket(sessions: usize) -> &'static str {
    match sessions {
        0..=1 => CONNECTION_BUCKETS[0],
        2..=10 => CONNECTION_BUCKETS[1],
        11..=100 => CONNECTION_BUCKETS[2],
        101..=1000 => CONNECTION_BUCKETS[3],
        _ => CONNECTION_BUCKETS[4],
    }
}

/// Sets [`WS_CONNECTIONS`] and [`WS_TENANTS`] from the open sessions of each
/// tenant (every bucket is set, empty ones to zero).
pub fn record_connections(per_tenant: impl IntoIterator<Item = usize>) {
    let mut buckets = [0_usize; CONNECTION_BUCKETS.len()];
    let mut total = 0;
    for sessions in per_tenant {
        total += sessions;
        let bucket = connections_bucket(sessions);
        if let Some(index) = CONNECTION_BUCKETS.iter().position(|b| *b == bucket) {
            buckets[index] += 1;
        }
    }
    metrics::gauge!(WS_CONNECTIONS).set(total as f64);
    for (bucket, tenants) in CONNECTION_BUCKETS.iter().zip(buckets) {
        metrics::gauge!(WS_TENANTS, "connections" => *bucket).set(tenants as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_counts_fall_in_their_bucket() {
        let cases = [
            (1, "1"),
            (2, "2-10"),
            (10, "2-10"),
            (11, "11-100"),
            (100, "11-100"),
            (101, "101-1000"),
            (1000, "101-1000"),
            (1001, ">1000"),
        ];
        for (sessions, bucket) in cases {
            assert_eq!(connections_bucket(sessions), bucket, "{sessions}");
        }
    }

    #[test]
    fn job_types_past_the_cap_are_labelled_other() {
        let own: Vec<String> = (0..MAX_TYPE_LABELS).map(|n| format!("t{n}")).collect();
        for name in &own {
            assert_eq!(type_label(name), *name);
        }
        assert_eq!(type_label("one-too-many"), OTHER_TYPE);
        assert_eq!(type_label("t7"), "t7", "a type seen before keeps its label");
    }

    #[test]
    fn names_are_prometheus_names_with_the_suffix_of_their_kind() {
        let mut seen = HashSet::new();
        for series in SERIES {
            assert!(seen.insert(series.name), "{} twice", series.name);
            assert!(series.name.starts_with("jobwire_"), "{}", series.name);
            assert!(
                series
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                series.name
            );
            let total = series.name.ends_with("_total");
            assert_eq!(total, series.kind == Kind::Counter, "{}", series.name);
            if series.kind == Kind::Histogram {
                assert!(series.name.ends_with("_seconds"), "{}", series.name);
            }
        }
    }
}
