//! The job store: the one truth about every job. Two adapters sit behind
//! [`Store`]: PostgreSQL for production (shared by many processes) and SQLite
//! for the embedded single-process mode. Callers never know which one they
//! talk to. In both, every change of a job is one conditional UPDATE that
//! bumps its `version`, and each step of a job's life (`insert`, `claim`,
//! `finish`, `cancel`) has its write in one module per adapter.

mod error;
mod postgres;
mod sqlite;

use jobwire_core::{Job, JobId, NewJob, Priority, TenantId};
use serde_json::Value;

pub use error::StoreError;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    Failed(String),
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

/// Puts freshly inserted jobs back in the order they were given (a multi-row
/// `returning` promises no order).
pub(crate) fn in_given_order(mut inserted: Vec<Job>, given: &[NewJob]) -> Vec<Job> {
    let position: std::collections::HashMap<JobId, usize> = given
        .iter()
        .enumerate()
        .map(|(i, job)| (job.id, i))
        .collect();
    inserted.sort_by_key(|job| position.get(&job.id).copied());
    inserted
}

/// Why a cancel found nothing to cancel, from the job's current status.
pub(crate) fn not_cancellable(id: JobId, status: Option<String>) -> StoreError {
    match status {
        None => StoreError::NotFound { id },
        Some(status) => match status.parse() {
            Ok(status) => StoreError::NotCancellable { id, status },
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

impl Store {
    /// Opens the store `url` names: `postgres://…` or `sqlite:<file>` /
    /// `sqlite::memory:`. Creates the database if missing and migrates it.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite:") {
            Ok(Self::Sqlite(
                SqliteStore::open(path.trim_start_matches("//")).await?,
            ))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(
                PgStore::connect(url, max_connections).await?,
            ))
        } else {
            Err(StoreError::UnknownUrl(redact(url)))
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

    /// Inserts the jobs as `queued`, all or none; returns them in the order given.
    pub async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<Job>, StoreError> {
        delegate!(self.insert(jobs))
    }

    /// Moves a `queued` job to `running` and counts the attempt. `None` when
    /// the job is not queued, so an ID popped twice runs once.
    pub async fn claim(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        delegate!(self.claim(id))
    }

    /// Ends a `running` job; `None` when it is no longer running.
    pub async fn finish(&self, id: JobId, outcome: Outcome) -> Result<Option<Job>, StoreError> {
        delegate!(self.finish(id, outcome))
    }

    /// Records a running job's progress; `None` when it is no longer running.
    pub async fn report_progress(
        &self,
        id: JobId,
        progress: &Value,
    ) -> Result<Option<Job>, StoreError> {
        delegate!(self.report_progress(id, progress))
    }

    /// Cancels a tenant's `queued` job so that it never runs.
    pub async fn cancel(&self, tenant: &TenantId, id: JobId) -> Result<Job, StoreError> {
        delegate!(self.cancel(tenant, id))
    }

    /// A tenant's job; `None` for an unknown ID and another tenant's job alike.
    pub async fn get(&self, tenant: &TenantId, id: JobId) -> Result<Option<Job>, StoreError> {
        delegate!(self.get(tenant, id))
    }

    /// A tenant's jobs, newest first.
    pub async fn list(&self, tenant: &TenantId, filter: &ListFilter) -> Result<Page, StoreError> {
        delegate!(self.list(tenant, filter))
    }

    /// Puts every `running` job back to `queued`: only for a process that
    /// owns every worker (embedded mode), at startup, when none can be running.
    pub async fn requeue_running(&self) -> Result<Vec<Job>, StoreError> {
        delegate!(self.requeue_running())
    }

    /// Every `queued` job, oldest first, to hand to the queue again.
    pub async fn queued(&self) -> Result<Vec<(JobId, Priority)>, StoreError> {
        delegate!(self.queued())
    }
}

/// The URL without its password, fit for logs and error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            super::redact("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
        assert_eq!(super::redact("redis://h:6379"), "redis://h:6379");
    }
}
